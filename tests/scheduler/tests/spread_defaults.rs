//! PodTopologySpread's cluster default constraints and the nominated-node fast path,
//! against the real API server (no controllers run: ReplicaSets and Services are plain
//! objects, their pods are created by the test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use rkube_scheduler::SchedulerConfig;
use rkube_scheduler_tests::{Cluster, start, start_with};
use serde_json::{Value, json};

/// The default profile without the scores that prefer emptier nodes anyway
/// (NodeResourcesFit, NodeResourcesBalancedAllocation) or that differ by image
/// (ImageLocality): on equal nodes, only PodTopologySpread is left to tell them apart, so
/// the placement shows its default constraints at work and nothing else.
fn spreading_only() -> SchedulerConfig {
    SchedulerConfig::from_yaml(
        r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
  plugins:
    score:
      disabled:
      - name: NodeResourcesFit
      - name: NodeResourcesBalancedAllocation
      - name: ImageLocality
"#,
    )
    .unwrap()
}

/// Three equal nodes, labelled with their hostname only (no zones).
async fn three_hosts(c: &Cluster) {
    for name in ["h1", "h2", "h3"] {
        c.node(
            name,
            "8",
            json!({"kubernetes.io/hostname": name}),
            json!([]),
        )
        .await;
    }
}

/// Creates a pod in `default` from `metadata`, requesting 100m.
async fn create_pod(c: &Cluster, metadata: Value) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": metadata,
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c",
            "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}]},
    }))
    .unwrap();
    c.pods().create(&PostParams::default(), &pod).await.unwrap();
}

/// How many of `names` each node got.
async fn per_node(c: &Cluster, names: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        *counts.entry(c.bound(name).await).or_default() += 1;
    }
    counts
}

fn balanced() -> BTreeMap<String, usize> {
    BTreeMap::from([("h1".into(), 2), ("h2".into(), 2), ("h3".into(), 2)])
}

#[tokio::test]
async fn a_replica_sets_pods_spread_across_hosts_without_constraints_of_their_own() {
    let c = start_with(spreading_only()).await;
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}},
    }))
    .unwrap();
    let rs = Api::<ReplicaSet>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &rs)
        .await
        .unwrap();
    let uid = rs.metadata.uid.unwrap();
    three_hosts(&c).await;
    let names: Vec<String> = (0..6).map(|i| format!("web-{i}")).collect();
    for name in &names {
        create_pod(
            &c,
            json!({"name": name, "labels": {"app": "web"}, "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": uid,
                "controller": true}]}),
        )
        .await;
    }
    // The system default (hostname, maxSkew 3, ScheduleAnyway) scores down the hosts that
    // already run more of the ReplicaSet's pods: without it, the tie is broken at random.
    assert_eq!(per_node(&c, &names).await, balanced());
}

#[tokio::test]
async fn pods_a_service_selects_spread_across_hosts() {
    let c = start_with(spreading_only()).await;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "api", "namespace": "default"},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    Api::<Service>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    three_hosts(&c).await;
    // Pods the Service does not select are not counted: these all land somewhere first.
    for i in 0..3 {
        create_pod(
            &c,
            json!({"name": format!("batch-{i}"), "labels": {"app": "batch"}}),
        )
        .await;
        c.bound(&format!("batch-{i}")).await;
    }
    let names: Vec<String> = (0..6).map(|i| format!("api-{i}")).collect();
    for name in &names {
        create_pod(&c, json!({"name": name, "labels": {"app": "api"}})).await;
    }
    assert_eq!(per_node(&c, &names).await, balanced());
}

#[tokio::test]
async fn a_nominated_pod_lands_on_its_nominated_node() {
    let c = start().await;
    // `busy` has less room left, so scoring alone would pick `idle`.
    c.node("busy", "4", json!({}), json!([])).await;
    c.node("idle", "4", json!({}), json!([])).await;
    c.pod("resident", "3", json!({"nodeName": "busy"}), json!({}))
        .await;
    c.pod(
        "nominee",
        "500m",
        json!({"schedulingGates": [{"name": "example.com/hold"}]}),
        json!({}),
    )
    .await;
    let status = json!({"status": {"nominatedNodeName": "busy"}});
    c.pods()
        .patch_status("nominee", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let ungate = json!({"spec": {"schedulingGates": null}});
    c.pods()
        .patch("nominee", &PatchParams::default(), &Patch::Merge(&ungate))
        .await
        .unwrap();
    assert_eq!(c.bound("nominee").await, "busy");
    // The same pod without a nomination goes where there is most room.
    c.pod("plain", "500m", json!({}), json!({})).await;
    assert_eq!(c.bound("plain").await, "idle");
}
