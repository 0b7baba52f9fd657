//! The ReplicaSet and ReplicationController controller against the real API server, in
//! process. Without kubelets, the tests mark pods Running and Ready through the status
//! subresource as a node would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod, ReplicationController};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rkube_apiserver_tests::start;
use rkube_controllers::ControllerManager;
use serde_json::json;

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }))
    .unwrap()
}

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn active_pods(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Marks a pod Running and Ready, as its kubelet would.
pub async fn mark_ready(pods: &Api<Pod>, name: &str) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

fn manager(t: &rkube_apiserver_tests::TestServer) -> tokio::task::JoinHandle<()> {
    tokio::spawn(
        ControllerManager::new(t.client.clone(), t.server.ca_cert())
            .with_controllers(&["replicaset", "replicationcontroller"])
            .run(),
    )
}

#[tokio::test]
async fn a_replicaset_creates_owned_pods_and_replaces_deleted_ones() {
    let t = start().await;
    let _manager = manager(&t);
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let rs = sets
        .create(&PostParams::default(), &replicaset("web", 3))
        .await
        .unwrap();

    let created = eventually("three pods exist", async || {
        let p = active_pods(&pods, "web").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    for pod in &created {
        assert!(pod.name_any().starts_with("web-"));
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "ReplicaSet");
        assert_eq!(owner.uid, rs.uid().unwrap());
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        mark_ready(&pods, &pod.name_any()).await;
    }
    eventually("status counts ready pods", async || {
        let s = sets.get("web").await.unwrap().status?;
        (s.ready_replicas == Some(3)
            && s.available_replicas == Some(3)
            && s.replicas == 3
            && s.fully_labeled_replicas == Some(3)
            && s.observed_generation == Some(1))
        .then_some(())
    })
    .await;

    let victim = created[0].name_any();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    // Without a kubelet the pod stays until its grace period ends; remove it as a node would.
    let _ = pods
        .delete(&victim, &DeleteParams::default().grace_period(0))
        .await;
    eventually("the deleted pod is replaced", async || {
        let p = active_pods(&pods, "web").await;
        (p.len() == 3 && p.iter().all(|p| p.name_any() != victim)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        active_pods(&pods, "web").await.len(),
        3,
        "never more than declared"
    );

    let events: Api<Event> = Api::namespaced(t.client.clone(), "default");
    let events = events.list(&ListParams::default()).await.unwrap().items;
    assert!(events.iter().any(|e| {
        e.reason.as_deref() == Some("SuccessfulCreate")
            && e.message
                .as_deref()
                .unwrap_or("")
                .starts_with("Created pod: web-")
            && e.source.as_ref().and_then(|s| s.component.as_deref())
                == Some("replicaset-controller")
    }));
}

#[tokio::test]
async fn scaling_down_deletes_the_least_valuable_pods_first() {
    let t = start().await;
    let _manager = manager(&t);
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    sets.create(&PostParams::default(), &replicaset("web", 4))
        .await
        .unwrap();
    let created = eventually("four pods exist", async || {
        let p = active_pods(&pods, "web").await;
        (p.len() == 4).then_some(p)
    })
    .await;
    let ready: Vec<_> = created[..2].iter().map(|p| p.name_any()).collect();
    for name in &ready {
        mark_ready(&pods, name).await;
    }
    // The controller must have seen the pods turn ready before it chooses whom to delete.
    eventually("the set counts two ready pods", async || {
        let rs = sets.get("web").await.unwrap();
        (rs.status?.ready_replicas == Some(2)).then_some(())
    })
    .await;
    let patch = json!({"spec": {"replicas": 2}});
    sets.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let left = eventually("two pods are left", async || {
        let p = active_pods(&pods, "web").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    let mut left: Vec<_> = left.iter().map(|p| p.name_any()).collect();
    left.sort();
    let mut ready = ready;
    ready.sort();
    assert_eq!(left, ready, "the pods that were not ready go first");
    let events: Api<Event> = Api::namespaced(t.client.clone(), "default");
    let events = events.list(&ListParams::default()).await.unwrap().items;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("SuccessfulDelete"))
    );
}

#[tokio::test]
async fn matching_orphans_are_adopted_and_relabelled_pods_released() {
    let t = start().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    let _manager = manager(&t);
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    let rs = sets
        .create(&PostParams::default(), &replicaset("web", 2))
        .await
        .unwrap();
    eventually("the orphan is adopted and one pod added", async || {
        let p = active_pods(&pods, "web").await;
        let adopted = pods.get("orphan").await.unwrap();
        let owner = adopted.metadata.owner_references.unwrap_or_default();
        (p.len() == 2 && owner.len() == 1 && owner[0].uid == rs.uid().unwrap()).then_some(())
    })
    .await;

    let relabel = json!({"metadata": {"labels": {"app": "elsewhere"}}});
    pods.patch("orphan", &PatchParams::default(), &Patch::Merge(&relabel))
        .await
        .unwrap();
    eventually("the relabelled pod is released and replaced", async || {
        let released = pods.get("orphan").await.unwrap();
        let p = active_pods(&pods, "web").await;
        (released
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
            && p.len() == 2)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_replication_controller_keeps_its_pods_too() {
    let t = start().await;
    let _manager = manager(&t);
    let rcs: Api<ReplicationController> = Api::namespaced(t.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": "old"},
        "spec": {
            "replicas": 2,
            "selector": {"app": "old"},
            "template": {
                "metadata": {"labels": {"app": "old"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }))
    .unwrap();
    rcs.create(&PostParams::default(), &rc).await.unwrap();
    let created = eventually("two pods exist", async || {
        let p = active_pods(&pods, "old").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    assert_eq!(
        created[0].metadata.owner_references.as_ref().unwrap()[0].kind,
        "ReplicationController"
    );
    for pod in &created {
        mark_ready(&pods, &pod.name_any()).await;
    }
    eventually("status counts ready pods", async || {
        let s = rcs.get("old").await.unwrap().status?;
        (s.ready_replicas == Some(2) && s.replicas == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn pods_that_cannot_be_created_are_reported_as_replica_failure() {
    use k8s_openapi::api::core::v1::Namespace;
    let t = start().await;
    let _manager = manager(&t);
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": "closing"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "closing");
    sets.create(&PostParams::default(), &replicaset("web", 0))
        .await
        .unwrap();
    // A terminating namespace refuses new pods (no namespace controller runs to empty it).
    namespaces
        .delete("closing", &DeleteParams::default())
        .await
        .unwrap();
    let patch = json!({"spec": {"replicas": 5}});
    sets.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let condition = eventually("ReplicaFailure is reported", async || {
        let s = sets.get("web").await.unwrap().status?;
        s.conditions?
            .into_iter()
            .find(|c| c.type_ == "ReplicaFailure")
    })
    .await;
    assert_eq!(condition.status, "True");
    assert_eq!(condition.reason.as_deref(), Some("FailedCreate"));
    assert!(condition.message.unwrap().contains("being terminated"));
}

#[tokio::test]
async fn replica_failure_is_set_while_creates_fail_and_removed_once_they_succeed() {
    use k8s_openapi::api::core::v1::ResourceQuota;
    let t = start().await;
    // A quota nobody has counted yet refuses every pod ("status unknown for quota").
    let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), "default");
    let quota: ResourceQuota =
        serde_json::from_value(json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "5"}}}))
            .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    let _manager = manager(&t);
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    sets.create(&PostParams::default(), &replicaset("blocked", 2))
        .await
        .unwrap();
    let condition = eventually("ReplicaFailure is set", async || {
        let status = sets.get("blocked").await.unwrap().status?;
        status
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "ReplicaFailure")
    })
    .await;
    assert_eq!(condition.status, "True");
    assert_eq!(condition.reason.as_deref(), Some("FailedCreate"));
    assert!(
        condition
            .message
            .as_deref()
            .unwrap_or("")
            .contains("forbidden"),
        "{condition:?}"
    );

    quotas.delete("q", &DeleteParams::default()).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    eventually(
        "the pods are created and the condition removed",
        async || {
            let status = sets.get("blocked").await.unwrap().status?;
            let failing = status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "ReplicaFailure");
            (!failing && status.replicas == 2 && active_pods(&pods, "blocked").await.len() == 2)
                .then_some(())
        },
    )
    .await;
}
