//! Node IPAM, node lifecycle, taint eviction and pod GC against the real API server, in
//! process. The tests play the kubelet: they create Node objects and their Leases, post node
//! status, and stop doing so to make a node go silent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rkube_apiserver_tests::start;
use rkube_controllers::Settings;
use rkube_controllers::nodeipam::NodeIpamController;
use rkube_controllers::nodelifecycle::NodeLifecycleController;
use rkube_controllers::podgc::PodGcController;
use rkube_controllers::tainteviction::TaintEvictionController;
use serde_json::{Value, json};

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..300 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn create_node(nodes: &Api<Node>, name: &str) {
    let node = json!({"metadata": {"name": name}});
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(node).unwrap(),
        )
        .await
        .unwrap();
}

/// What a kubelet does every few seconds: renew its Lease and post Ready=True.
async fn heartbeat(client: &kube::Client, name: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = Timestamp::now();
    let lease = json!({"metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": MicroTime(now)}});
    match leases.get_opt(name).await.unwrap() {
        None => {
            leases
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(lease).unwrap(),
                )
                .await
                .unwrap();
        }
        Some(_) => {
            let patch = json!({"spec": {"renewTime": MicroTime(now)}});
            leases
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let status = json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
         "lastHeartbeatTime": Time(now), "lastTransitionTime": Time(now)},
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
         "lastHeartbeatTime": Time(now), "lastTransitionTime": Time(now)},
    ]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn create_pod(pods: &Api<Pod>, name: &str, node: &str, tolerations: Value) -> Pod {
    let pod = json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "tolerations": tolerations,
            "containers": [{"name": "app", "image": "app:1"}]},
    });
    let created = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(pod).unwrap(),
        )
        .await
        .unwrap();
    let status = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    created
}

/// Whether the pod is gone or being deleted.
async fn deleted(pods: &Api<Pod>, name: &str) -> bool {
    pods.get_opt(name)
        .await
        .unwrap()
        .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
}

fn taint_keys(node: &Node) -> BTreeSet<(String, String)> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.effect))
        .collect()
}

fn condition<'a>(
    node: &'a Node,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn pod_cidr(node: &Node) -> Option<String> {
    node.spec.as_ref()?.pod_cidr.clone()
}

#[tokio::test]
async fn each_node_gets_its_own_pod_cidr_and_allocations_survive_a_restart() {
    let t = start().await;
    let nodes: Api<Node> = Api::all(t.client.clone());
    let ipam =
        || NodeIpamController::new(t.client.clone(), "10.42.0.0/16".parse().unwrap(), 24).unwrap();
    let first = tokio::spawn(ipam().run());
    for name in ["n1", "n2", "n3"] {
        create_node(&nodes, name).await;
    }
    let cidrs: BTreeSet<String> = eventually("three pod CIDRs", || async {
        let list = nodes.list(&ListParams::default()).await.unwrap().items;
        let cidrs: Vec<String> = list.iter().filter_map(pod_cidr).collect();
        (cidrs.len() == 3).then(|| cidrs.into_iter().collect())
    })
    .await;
    assert_eq!(
        cidrs,
        BTreeSet::from([
            "10.42.0.0/24".to_owned(),
            "10.42.1.0/24".to_owned(),
            "10.42.2.0/24".to_owned()
        ])
    );
    let n1 = nodes.get("n1").await.unwrap();
    assert_eq!(
        n1.spec.unwrap().pod_cidrs,
        Some(vec![pod_cidr(&nodes.get("n1").await.unwrap()).unwrap()])
    );

    // A new controller rebuilds what is taken from the nodes themselves.
    first.abort();
    nodes.delete("n2", &DeleteParams::default()).await.unwrap();
    let _second = tokio::spawn(ipam().run());
    create_node(&nodes, "n4").await;
    create_node(&nodes, "n5").await;
    let fresh: BTreeSet<String> = eventually("pod CIDRs for the new nodes", || async {
        let a = pod_cidr(&nodes.get("n4").await.unwrap())?;
        let b = pod_cidr(&nodes.get("n5").await.unwrap())?;
        Some(BTreeSet::from([a, b]))
    })
    .await;
    let n1 = pod_cidr(&nodes.get("n1").await.unwrap()).unwrap();
    let n3 = pod_cidr(&nodes.get("n3").await.unwrap()).unwrap();
    assert!(
        !fresh.contains(&n1) && !fresh.contains(&n3),
        "{fresh:?} reuses a live node's CIDR"
    );
    assert_eq!(fresh.len(), 2);
}

#[tokio::test]
async fn a_silent_node_goes_unknown_is_tainted_and_loses_pods_that_do_not_tolerate_it() {
    let t = start().await;
    let nodes: Api<Node> = Api::all(t.client.clone());
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    create_node(&nodes, "worker").await;
    heartbeat(&t.client, "worker").await;
    // Admission gives this one the default 300 s tolerations.
    let default = create_pod(&pods, "default-tolerations", "worker", json!(null)).await;
    let defaults = default.spec.unwrap().tolerations.unwrap();
    assert!(defaults.iter().any(
        |t| t.key.as_deref() == Some("node.kubernetes.io/unreachable")
            && t.toleration_seconds == Some(300)
            && t.effect.as_deref() == Some("NoExecute")
    ));
    create_pod(
        &pods,
        "short",
        "worker",
        json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}]),
    )
    .await;
    create_pod(
        &pods,
        "forever",
        "worker",
        json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]),
    )
    .await;

    let settings = Settings {
        node_monitor_grace_period: Duration::from_millis(1500),
        node_monitor_period: Duration::from_millis(100),
        ..Settings::default()
    };
    let _lifecycle = tokio::spawn(NodeLifecycleController::new(t.client.clone(), &settings).run());
    let _eviction = tokio::spawn(TaintEvictionController::new(t.client.clone()).run());

    // While the kubelet beats, nothing happens.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        heartbeat(&t.client, "worker").await;
    }
    let node = nodes.get("worker").await.unwrap();
    assert_eq!(condition(&node, "Ready").unwrap().status, "True");
    assert!(taint_keys(&node).is_empty());

    // The kubelet stops.
    let node = eventually("the node marked Unknown and tainted", || async {
        let node = nodes.get("worker").await.unwrap();
        (condition(&node, "Ready")?.status == "Unknown" && taint_keys(&node).len() == 2)
            .then_some(node)
    })
    .await;
    let ready = condition(&node, "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    assert_eq!(
        condition(&node, "MemoryPressure").unwrap().status,
        "Unknown"
    );
    assert_eq!(
        taint_keys(&node),
        BTreeSet::from([
            (
                "node.kubernetes.io/unreachable".to_owned(),
                "NoExecute".to_owned()
            ),
            (
                "node.kubernetes.io/unreachable".to_owned(),
                "NoSchedule".to_owned()
            ),
        ])
    );
    // Its pods are no longer ready.
    eventually("pods marked not ready", || async {
        let p = pods.get("forever").await.unwrap();
        let ready = p
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status == "False").then_some(())
    })
    .await;
    let events: Api<Event> = Api::namespaced(t.client.clone(), "default");
    eventually("a NodeNotReady event", || async {
        let list = events.list(&ListParams::default()).await.unwrap().items;
        list.iter()
            .any(|e| {
                e.reason.as_deref() == Some("NodeNotReady")
                    && e.involved_object.kind.as_deref() == Some("Node")
            })
            .then_some(())
    })
    .await;

    // The pod tolerating it for a second goes; the others stay.
    eventually("the short-toleration pod evicted", || async {
        deleted(&pods, "short").await.then_some(())
    })
    .await;
    assert!(!deleted(&pods, "forever").await);
    assert!(!deleted(&pods, "default-tolerations").await);

    // The kubelet comes back: the taints go.
    heartbeat(&t.client, "worker").await;
    eventually("the taints removed", || async {
        let node = nodes.get("worker").await.unwrap();
        taint_keys(&node).is_empty().then_some(())
    })
    .await;
    assert!(!deleted(&pods, "default-tolerations").await);
}

#[tokio::test]
async fn a_no_execute_taint_evicts_pods_that_do_not_tolerate_it_at_once() {
    let t = start().await;
    let nodes: Api<Node> = Api::all(t.client.clone());
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    create_node(&nodes, "gpu").await;
    create_pod(&pods, "plain", "gpu", json!(null)).await;
    create_pod(
        &pods,
        "tolerant",
        "gpu",
        json!([{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute"}]),
    )
    .await;
    let _eviction = tokio::spawn(TaintEvictionController::new(t.client.clone()).run());
    let taint =
        json!({"spec": {"taints": [{"key": "dedicated", "value": "ml", "effect": "NoExecute"}]}});
    nodes
        .patch("gpu", &PatchParams::default(), &Patch::Merge(&taint))
        .await
        .unwrap();
    eventually("the intolerant pod evicted", || async {
        deleted(&pods, "plain").await.then_some(())
    })
    .await;
    let plain = pods.get_opt("plain").await.unwrap();
    if let Some(plain) = plain {
        let reasons: Vec<String> = plain
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.type_ == "DisruptionTarget")
            .filter_map(|c| c.reason)
            .collect();
        assert_eq!(reasons, ["DeletionByTaintManager"]);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!deleted(&pods, "tolerant").await);
}

#[tokio::test]
async fn pod_gc_removes_pods_of_missing_nodes_and_the_oldest_finished_pods() {
    let t = start().await;
    let nodes: Api<Node> = Api::all(t.client.clone());
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    create_node(&nodes, "alive").await;
    create_pod(&pods, "on-alive", "alive", json!(null)).await;
    create_pod(&pods, "on-ghost", "ghost", json!(null)).await;
    for name in ["done-1", "done-2", "done-3"] {
        let pod = json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "a", "image": "a"}]}});
        pods.create(
            &PostParams::default(),
            &serde_json::from_value(pod).unwrap(),
        )
        .await
        .unwrap();
        let status = json!({"status": {"phase": "Succeeded"}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        // Creation times have one-second resolution: keep them apart.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let settings = Settings {
        terminated_pod_gc_threshold: 1,
        orphan_pod_quarantine: Duration::from_millis(300),
        ..Settings::default()
    };
    let _gc = tokio::spawn(PodGcController::new(t.client.clone(), &settings).run());
    eventually("the pod of the missing node gone", || async {
        pods.get_opt("on-ghost")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    eventually("the two oldest finished pods gone", || async {
        (pods.get_opt("done-1").await.unwrap().is_none()
            && pods.get_opt("done-2").await.unwrap().is_none())
        .then_some(())
    })
    .await;
    assert!(pods.get_opt("done-3").await.unwrap().is_some());
    assert!(pods.get_opt("on-alive").await.unwrap().is_some());

    // A node deleted later orphans its pods too.
    nodes
        .delete("alive", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the pod of the deleted node gone", || async {
        pods.get_opt("on-alive")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}
