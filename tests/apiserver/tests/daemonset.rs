//! The DaemonSet controller against the real API server, in process, with Node objects and
//! pods marked ready as their kubelet would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod workload_support;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rkube_apiserver_tests::start;
use rkube_controllers::daemonset::DaemonSetController;
use serde_json::{Value, json};
use workload_support::{eventually, mark_ready, pods, spawn};

async fn node(client: &kube::Client, name: &str, labels: Value, taints: Value) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
}

async fn daemon_set(client: &kube::Client, spec: Value) -> Api<DaemonSet> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let mut spec = spec;
    spec["selector"] = json!({"matchLabels": {"app": "agent"}});
    spec["template"]["metadata"] = json!({"labels": {"app": "agent"}});
    spec["template"]["spec"]["containers"] = json!([{"name": "agent", "image": "agent:1"}]);
    let ds = serde_json::from_value(json!({"metadata": {"name": "agent"}, "spec": spec})).unwrap();
    api.create(&PostParams::default(), &ds).await.unwrap();
    api
}

/// The node each live daemon pod is pinned to, by pod name.
fn pinned(pod: &Pod) -> String {
    let affinity = pod.spec.as_ref().unwrap().affinity.as_ref().unwrap();
    let terms = &affinity
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    assert_eq!(terms.len(), 1);
    let field = &terms[0].match_fields.as_ref().unwrap()[0];
    assert_eq!(
        (field.key.as_str(), field.operator.as_str()),
        ("metadata.name", "In")
    );
    field.values.as_ref().unwrap()[0].clone()
}

async fn by_node(client: &kube::Client) -> BTreeMap<String, Vec<Pod>> {
    let mut out: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for pod in pods(client).await {
        if pod.metadata.deletion_timestamp.is_none() {
            out.entry(pinned(&pod)).or_default().push(pod);
        }
    }
    out
}

async fn nodes_with_pods(client: &kube::Client, expected: &[&str]) -> BTreeMap<String, Vec<Pod>> {
    eventually(&format!("daemon pods on {expected:?}"), 10, || {
        let client = client.clone();
        async move {
            let map = by_node(&client).await;
            let nodes: Vec<&str> = map.keys().map(String::as_str).collect();
            (nodes == expected && map.values().all(|p| p.len() == 1)).then_some(map)
        }
    })
    .await
}

async fn status_when(
    api: &Api<DaemonSet>,
    what: &str,
    check: impl Fn(&DaemonSetStatus) -> bool,
) -> DaemonSetStatus {
    eventually(what, 10, || {
        let api = api.clone();
        let check = &check;
        async move { api.get("agent").await.unwrap().status.filter(|s| check(s)) }
    })
    .await
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap()
}

#[tokio::test]
async fn one_pod_runs_on_every_eligible_node_and_follows_node_changes() {
    let t = start().await;
    let _controller = spawn(DaemonSetController::new(t.client.clone()).run());
    node(&t.client, "n1", json!({"os": "linux"}), json!([])).await;
    node(
        &t.client,
        "n2",
        json!({"os": "linux"}),
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
    )
    .await;
    node(&t.client, "n3", json!({"os": "windows"}), json!([])).await;
    // Cordoned and not ready: daemons tolerate both by default.
    node(
        &t.client,
        "n4",
        json!({"os": "linux"}),
        json!([
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}
        ]),
    )
    .await;
    let api = daemon_set(
        &t.client,
        json!({"template": {"spec": {"nodeSelector": {"os": "linux"}}}}),
    )
    .await;

    let placed = nodes_with_pods(&t.client, &["n1", "n4"]).await;
    let pod = &placed["n1"][0];
    let labels = pod.metadata.labels.as_ref().unwrap();
    assert!(labels.contains_key("controller-revision-hash"));
    assert_eq!(labels["pod-template-generation"], "1");
    assert!(name(pod).starts_with("agent-"));
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.controller,
            owner.block_owner_deletion
        ),
        ("DaemonSet", Some(true), Some(true))
    );
    let tolerations: Vec<String> = pod
        .spec
        .as_ref()
        .unwrap()
        .tolerations
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| format!("{}:{}", t.key.clone().unwrap(), t.effect.clone().unwrap()))
        .collect();
    for expected in [
        "node.kubernetes.io/not-ready:NoExecute",
        "node.kubernetes.io/unreachable:NoExecute",
        "node.kubernetes.io/disk-pressure:NoSchedule",
        "node.kubernetes.io/memory-pressure:NoSchedule",
        "node.kubernetes.io/pid-pressure:NoSchedule",
        "node.kubernetes.io/unschedulable:NoSchedule",
    ] {
        assert!(
            tolerations.contains(&expected.to_owned()),
            "{expected} in {tolerations:?}"
        );
    }
    for pods in placed.values() {
        mark_ready(&t.client, &name(&pods[0])).await;
    }
    let status = status_when(&api, "two ready", |s| s.number_ready == 2).await;
    assert_eq!(
        (
            status.desired_number_scheduled,
            status.current_number_scheduled,
            status.number_misscheduled
        ),
        (2, 2, 0)
    );
    assert_eq!(
        (status.number_available, status.updated_number_scheduled),
        (Some(2), Some(2))
    );
    assert_eq!(status.observed_generation, Some(1));

    // A new eligible node gets a pod; a node that stops matching loses its pod.
    node(&t.client, "n5", json!({"os": "linux"}), json!([])).await;
    nodes_with_pods(&t.client, &["n1", "n4", "n5"]).await;
    let nodes: Api<Node> = Api::all(t.client.clone());
    nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"os": "windows"}}})),
        )
        .await
        .unwrap();
    nodes_with_pods(&t.client, &["n4", "n5"]).await;
    // A deleted pod is replaced.
    let pods_api: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let on_n5 = name(&by_node(&t.client).await["n5"][0]);
    pods_api.delete(&on_n5, &Default::default()).await.unwrap();
    eventually("n5's pod replaced", 10, || {
        let client = t.client.clone();
        let old = on_n5.clone();
        async move {
            let map = by_node(&client).await;
            map.get("n5")
                .filter(|p| p.len() == 1 && name(&p[0]) != old)
                .map(|_| ())
        }
    })
    .await;
}

#[tokio::test]
async fn a_rolling_update_replaces_one_node_at_a_time() {
    let t = start().await;
    let _controller = spawn(DaemonSetController::new(t.client.clone()).run());
    for n in ["n1", "n2", "n3"] {
        node(&t.client, n, json!({}), json!([])).await;
    }
    let api = daemon_set(&t.client, json!({"template": {"spec": {}}})).await;
    for pods in nodes_with_pods(&t.client, &["n1", "n2", "n3"])
        .await
        .values()
    {
        mark_ready(&t.client, &name(&pods[0])).await;
    }
    status_when(&api, "all ready", |s| s.number_available == Some(3)).await;

    let change = json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}});
    api.patch("agent", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap();
    let image = |p: &Pod| {
        p.spec.as_ref().unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    };
    let mut done = 0;
    while done < 3 {
        // Exactly one node is being replaced at a time; the others keep an available pod.
        let fresh = eventually("a new pod", 10, || {
            let client = t.client.clone();
            async move {
                let map = by_node(&client).await;
                let fresh: Vec<Pod> = map
                    .values()
                    .flatten()
                    .filter(|p| {
                        image(p) == "agent:2"
                            && p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running")
                    })
                    .cloned()
                    .collect();
                (!fresh.is_empty()).then_some(fresh)
            }
        })
        .await;
        assert_eq!(fresh.len(), 1, "maxUnavailable is 1");
        let map = by_node(&t.client).await;
        let old_ready = map
            .values()
            .flatten()
            .filter(|p| image(p) == "agent:1")
            .count();
        assert_eq!(old_ready + done, 2, "the other nodes keep their pods");
        mark_ready(&t.client, &name(&fresh[0])).await;
        done += 1;
    }
    let status = status_when(&api, "updated", |s| {
        s.updated_number_scheduled == Some(3) && s.number_available == Some(3)
    })
    .await;
    assert_eq!(status.observed_generation, Some(2));
    let revisions: Api<ControllerRevision> = Api::namespaced(t.client.clone(), "default");
    assert_eq!(
        revisions
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

#[tokio::test]
async fn max_surge_starts_the_new_pod_before_removing_the_old_one() {
    let t = start().await;
    let _controller = spawn(DaemonSetController::new(t.client.clone()).run());
    node(&t.client, "n1", json!({}), json!([])).await;
    let api = daemon_set(
        &t.client,
        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, "template": {"spec": {}}}),
    )
    .await;
    let old = name(&nodes_with_pods(&t.client, &["n1"]).await["n1"][0]);
    mark_ready(&t.client, &old).await;
    status_when(&api, "ready", |s| s.number_available == Some(1)).await;
    let change = json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}});
    api.patch("agent", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap();
    let both = eventually("a surge pod beside the old one", 10, || {
        let client = t.client.clone();
        async move { by_node(&client).await.remove("n1").filter(|p| p.len() == 2) }
    })
    .await;
    let new = both.iter().map(name).find(|n| *n != old).unwrap();
    mark_ready(&t.client, &new).await;
    eventually("the old pod gone", 10, || {
        let client = t.client.clone();
        let new = new.clone();
        async move {
            let map = by_node(&client).await;
            let names: Vec<String> = map.get("n1")?.iter().map(name).collect();
            (names == [new]).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn a_failed_daemon_pod_is_replaced() {
    let t = start().await;
    let _controller = spawn(DaemonSetController::new(t.client.clone()).run());
    node(&t.client, "n1", json!({}), json!([])).await;
    daemon_set(&t.client, json!({"template": {"spec": {}}})).await;
    let mut failed = name(&nodes_with_pods(&t.client, &["n1"]).await["n1"][0]);
    // Twice: the second replacement waits out a short backoff.
    for _ in 0..2 {
        workload_support::mark_finished(&t.client, &failed, "Failed", 1).await;
        failed = eventually("a replacement", 10, || {
            let client = t.client.clone();
            let failed = failed.clone();
            async move {
                let map = by_node(&client).await;
                let pods = map.get("n1")?;
                (pods.len() == 1 && name(&pods[0]) != failed).then(|| name(&pods[0]))
            }
        })
        .await;
    }
    let events = workload_support::events(&t.client).await;
    assert!(
        events
            .iter()
            .any(|(reason, message)| reason == "FailedDaemonPod"
                && message.contains("on node n1, will try to kill it"))
    );
}
