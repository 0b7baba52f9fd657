//! The scheduler against the real API server: nodes are plain Node objects (no kubelets),
//! and what the scheduler does is read back through the API as a user would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use rkube_scheduler::SchedulerConfig;
use rkube_scheduler_tests::start;
use serde_json::json;

#[tokio::test]
async fn a_pod_goes_to_the_node_with_room_for_it() {
    let c = start().await;
    c.node("small", "1", json!({}), json!([])).await;
    c.node("large", "8", json!({}), json!([])).await;
    c.pod("big", "3", json!({}), json!({})).await;
    assert_eq!(c.bound("big").await, "large");
    let scheduled = c.scheduled_condition("big").await.unwrap();
    assert_eq!(scheduled.status, "True");
    let events = c.events("big", "Scheduled").await;
    assert_eq!(
        events[0].message.as_deref(),
        Some("Successfully assigned default/big to large")
    );
}

#[tokio::test]
async fn taints_keep_pods_away_unless_tolerated() {
    let c = start().await;
    c.node(
        "gpu",
        "8",
        json!({}),
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
    )
    .await;
    c.node("plain", "1", json!({}), json!([])).await;
    c.pod("ordinary", "500m", json!({}), json!({})).await;
    assert_eq!(c.bound("ordinary").await, "plain");
    // The plain node is now too full; only the tolerating pod can take the gpu node.
    c.pod(
        "tolerant",
        "600m",
        json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
        json!({}),
    )
    .await;
    assert_eq!(c.bound("tolerant").await, "gpu");
}

#[tokio::test]
async fn the_failed_scheduling_message_reads_as_upstream() {
    let c = start().await;
    // Three nodes too full for the pod, with nothing of lower priority to preempt.
    for i in 0..3 {
        let name = format!("small-{i}");
        c.node(&name, "2", json!({}), json!([])).await;
        c.pod(
            &format!("resident-{i}"),
            "1500m",
            json!({"nodeName": name}),
            json!({}),
        )
        .await;
    }
    for i in 0..2 {
        c.node(
            &format!("tainted-{i}"),
            "8",
            json!({}),
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
        )
        .await;
    }
    c.pod("huge", "1", json!({}), json!({})).await;
    let want = "0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}, \
                3 Insufficient cpu. preemption: 0/5 nodes are available: \
                2 Preemption is not helpful for scheduling, \
                3 No preemption victims found for incoming pod..";
    assert_eq!(
        c.unschedulable("huge").await,
        ("Unschedulable".to_owned(), want.to_owned())
    );
    let events = c.events("huge", "FailedScheduling").await;
    assert_eq!(events[0].message.as_deref(), Some(want));
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    assert_eq!(c.node_of("huge").await, None);
}

#[tokio::test]
async fn a_pending_pod_is_scheduled_when_a_node_is_added() {
    let c = start().await;
    c.node("small", "1", json!({}), json!([])).await;
    c.pod("waiting", "2", json!({}), json!({})).await;
    c.unschedulable("waiting").await;
    c.node("big", "4", json!({}), json!([])).await;
    assert_eq!(c.bound("waiting").await, "big");
}

#[tokio::test]
async fn a_cluster_without_nodes_says_so_and_schedules_once_one_registers() {
    let c = start().await;
    c.pod("early", "100m", json!({}), json!({})).await;
    let (reason, message) = c.unschedulable("early").await;
    assert_eq!(
        (reason.as_str(), message.as_str()),
        ("Unschedulable", "no nodes available to schedule pods")
    );
    let events = c.events("early", "FailedScheduling").await;
    assert_eq!(
        events[0].message.as_deref(),
        Some("no nodes available to schedule pods")
    );
    c.node("first", "2", json!({}), json!([])).await;
    assert_eq!(c.bound("early").await, "first");
}

#[tokio::test]
async fn pods_for_another_scheduler_are_left_alone() {
    let c = start().await;
    c.node("n", "4", json!({}), json!([])).await;
    c.pod(
        "custom",
        "100m",
        json!({"schedulerName": "my-scheduler"}),
        json!({}),
    )
    .await;
    c.pod("marker", "100m", json!({}), json!({})).await;
    // The marker was created after the custom pod and is bound: the scheduler has seen both.
    c.bound("marker").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pod = c.pods().get("custom").await.unwrap();
    assert_eq!(pod.spec.unwrap().node_name, None);
    assert!(
        pod.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn node_affinity_and_selectors_pick_labelled_nodes() {
    let c = start().await;
    c.node("a", "4", json!({"disk": "ssd"}), json!([])).await;
    c.node("b", "4", json!({"disk": "hdd"}), json!([])).await;
    c.pod(
        "selector",
        "100m",
        json!({"nodeSelector": {"disk": "hdd"}}),
        json!({}),
    )
    .await;
    c.pod(
        "affinity",
        "100m",
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}}),
        json!({}),
    )
    .await;
    assert_eq!(c.bound("selector").await, "b");
    assert_eq!(c.bound("affinity").await, "a");
}

fn host(name: &str, zone: &str) -> serde_json::Value {
    json!({"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone})
}

#[tokio::test]
async fn pod_anti_affinity_puts_replicas_on_different_nodes() {
    let c = start().await;
    c.node("n1", "4", host("n1", "a"), json!([])).await;
    c.node("n2", "4", host("n2", "b"), json!([])).await;
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    c.pod("db-0", "100m", anti.clone(), json!({"app": "db"}))
        .await;
    let first = c.bound("db-0").await;
    c.pod("db-1", "100m", anti.clone(), json!({"app": "db"}))
        .await;
    let second = c.bound("db-1").await;
    assert_ne!(first, second);
    c.pod("db-2", "100m", anti, json!({"app": "db"})).await;
    let (_, message) = c.unschedulable("db-2").await;
    assert!(
        // Existing pods' anti-affinity is checked first, as upstream does.
        message.starts_with(
            "0/2 nodes are available: 2 node(s) didn't satisfy existing pods anti-affinity rules."
        ),
        "{message}"
    );
}

#[tokio::test]
async fn match_label_keys_limit_anti_affinity_to_the_pods_own_revision() {
    let c = start().await;
    c.node("n1", "4", host("n1", "a"), json!([])).await;
    c.node("n2", "4", host("n2", "b"), json!([])).await;
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "matchLabelKeys": ["rev"],
         "topologyKey": "kubernetes.io/hostname"}]}}});
    // Two pods of revision 1 take both nodes; a pod of revision 2 repels only its own
    // revision, so it still finds room.
    for name in ["old-0", "old-1"] {
        c.pod(name, "100m", anti.clone(), json!({"app": "db", "rev": "1"}))
            .await;
        c.bound(name).await;
    }
    c.pod("new-0", "100m", anti, json!({"app": "db", "rev": "2"}))
        .await;
    c.bound("new-0").await;
    // The API server widened the selector with the pod's own value, as upstream does.
    let pod = c.pods().get("new-0").await.unwrap();
    let term = &pod
        .spec
        .unwrap()
        .affinity
        .unwrap()
        .pod_anti_affinity
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .unwrap()[0];
    let expressions = term
        .label_selector
        .as_ref()
        .unwrap()
        .match_expressions
        .clone();
    let expressions = expressions.unwrap();
    assert_eq!(
        (
            expressions[0].key.as_str(),
            expressions[0].operator.as_str()
        ),
        ("rev", "In")
    );
    assert_eq!(expressions[0].values, Some(vec!["2".to_owned()]));
}

#[tokio::test]
async fn pod_affinity_follows_the_selected_pods_zone() {
    let c = start().await;
    c.node("a1", "4", host("a1", "a"), json!([])).await;
    c.node("b1", "4", host("b1", "b"), json!([])).await;
    c.node("b2", "4", host("b2", "b"), json!([])).await;
    c.pod(
        "cache",
        "100m",
        json!({"nodeName": "b2"}),
        json!({"app": "cache"}),
    )
    .await;
    for i in 0..4 {
        c.pod(
            &format!("web-{i}"),
            "100m",
            json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}}),
            json!({"app": "web"}),
        )
        .await;
    }
    for i in 0..4 {
        let node = c.bound(&format!("web-{i}")).await;
        assert!(node == "b1" || node == "b2", "web-{i} on {node}");
    }
}

#[tokio::test]
async fn topology_spread_balances_zones() {
    let c = start().await;
    c.node("a1", "8", host("a1", "a"), json!([])).await;
    c.node("a2", "8", host("a2", "a"), json!([])).await;
    c.node("b1", "8", host("b1", "b"), json!([])).await;
    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}}]});
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..6 {
        let name = format!("web-{i}");
        c.pod(&name, "100m", spread.clone(), json!({"app": "web"}))
            .await;
        let node = c.bound(&name).await;
        *per_zone.entry(node[..1].to_owned()).or_default() += 1;
    }
    assert_eq!(per_zone, BTreeMap::from([("a".into(), 3), ("b".into(), 3)]));
}

#[tokio::test]
async fn a_higher_priority_pod_preempts_a_lower_priority_one() {
    let c = start().await;
    c.node("only", "1", json!({}), json!([])).await;
    c.priority_class("low", 1).await;
    c.priority_class("high", 100).await;
    c.pod(
        "low",
        "800m",
        json!({"priorityClassName": "low"}),
        json!({}),
    )
    .await;
    assert_eq!(c.bound("low").await, "only");
    c.pod(
        "high",
        "800m",
        json!({"priorityClassName": "high"}),
        json!({}),
    )
    .await;
    assert_eq!(c.bound("high").await, "only");
    assert!(
        c.pods().get_opt("low").await.unwrap().is_none(),
        "the victim is gone"
    );
    let events = c.events("low", "Preempted").await;
    assert!(
        events[0]
            .message
            .as_deref()
            .unwrap()
            .starts_with("Preempted by pod ")
    );
}

#[tokio::test]
async fn gated_pods_wait_for_their_gates_to_be_removed() {
    let c = start().await;
    c.node("n", "4", json!({}), json!([])).await;
    c.pod(
        "gated",
        "100m",
        json!({"schedulingGates": [{"name": "example.com/hold"}]}),
        json!({}),
    )
    .await;
    c.pod("marker", "100m", json!({}), json!({})).await;
    c.bound("marker").await;
    assert_eq!(c.node_of("gated").await, None);
    // As upstream's create strategy: the gate shows in the PodScheduled condition.
    let condition = c.scheduled_condition("gated").await.unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_deref()),
        ("False", Some("SchedulingGated"))
    );
    let patch = json!({"spec": {"schedulingGates": null}});
    c.pods()
        .patch("gated", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(c.bound("gated").await, "n");
}

#[tokio::test]
async fn deleting_a_pod_frees_room_for_a_waiting_one() {
    let c = start().await;
    c.node("n", "1", json!({}), json!([])).await;
    c.pod("first", "800m", json!({}), json!({})).await;
    c.bound("first").await;
    c.pod("second", "800m", json!({}), json!({})).await;
    c.unschedulable("second").await;
    c.pods()
        .delete("first", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(c.bound("second").await, "n");
}

#[tokio::test]
async fn a_configured_profile_schedules_its_own_pods() {
    let config = SchedulerConfig::from_yaml(
        r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: bin-packer
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
"#,
    )
    .unwrap();
    let c = rkube_scheduler_tests::start_with(config).await;
    c.node("empty", "8", json!({}), json!([])).await;
    c.node("busy", "8", json!({}), json!([])).await;
    c.pod("resident", "4", json!({"nodeName": "busy"}), json!({}))
        .await;
    c.pod(
        "packed",
        "1",
        json!({"schedulerName": "bin-packer"}),
        json!({}),
    )
    .await;
    assert_eq!(c.bound("packed").await, "busy");
    // Its events come from the profile, as upstream's per-profile recorders write them.
    let events = c.events("packed", "Scheduled").await;
    let source = events[0].source.as_ref().unwrap().component.as_deref();
    assert_eq!(source, Some("bin-packer"));
    assert_eq!(events[0].reporting_component.as_deref(), Some("bin-packer"));
    c.pod("default", "100m", json!({}), json!({})).await;
    // No profile is named default-scheduler here: the pod is left alone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.node_of("default").await, None);
}

#[tokio::test]
async fn a_pod_held_back_by_spread_is_retried_when_a_node_goes() {
    let c = start().await;
    // Zone a's only node is cordoned; zone b already runs one matching pod.
    c.node(
        "a1",
        "4",
        json!({"topology.kubernetes.io/zone": "a"}),
        json!([]),
    )
    .await;
    c.node(
        "b1",
        "4",
        json!({"topology.kubernetes.io/zone": "b"}),
        json!([]),
    )
    .await;
    c.pod(
        "first",
        "100m",
        json!({"nodeName": "b1"}),
        json!({"app": "web"}),
    )
    .await;
    Api::<Node>::all(c.client.clone())
        .patch(
            "a1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    let spread = json!({"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}}]});
    c.pod("second", "100m", spread, json!({"app": "web"})).await;
    let (reason, message) = c.unschedulable("second").await;
    assert_eq!(reason, "Unschedulable");
    assert!(
        message.contains("didn't match pod topology spread constraints"),
        "{message}"
    );
    // Without zone a there is one domain, so the skew constraint holds on b1.
    Api::<Node>::all(c.client.clone())
        .delete("a1", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(c.bound("second").await, "b1");
}
