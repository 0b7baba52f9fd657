//! The disruption controller and the eviction subresource against the real API server, in
//! process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, Patch, PatchParams, PostParams};
use rkube_apiserver_tests::{api_error, start};
use rkube_controllers::Settings;
use rkube_controllers::disruption::DisruptionController;
use serde_json::{Value, json};

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn ready_pod(pods: &Api<Pod>, name: &str, owner: Option<Value>) {
    let mut pod = json!({"metadata": {"name": name, "labels": {"app": "db"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]}});
    if let Some(owner) = owner {
        pod["metadata"]["ownerReferences"] = json!([owner]);
    }
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod).unwrap(),
    )
    .await
    .unwrap();
    let status = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

type Summary = (i32, i32, i32, i32, Option<i64>, String);

fn summary(pdb: &PodDisruptionBudget) -> Option<Summary> {
    let s = pdb.status.as_ref()?;
    let condition = s
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "DisruptionAllowed")?;
    Some((
        s.current_healthy,
        s.desired_healthy,
        s.disruptions_allowed,
        s.expected_pods,
        s.observed_generation,
        format!("{}/{}", condition.status, condition.reason),
    ))
}

#[tokio::test]
async fn a_budget_allows_evictions_until_it_would_be_broken_then_answers_429() {
    let t = start().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    for name in ["db-0", "db-1", "db-2"] {
        ready_pod(&pods, name, None).await;
    }
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(t.client.clone(), "default");
    let pdb = json!({"metadata": {"name": "db"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "db"}}}});
    pdbs.create(
        &PostParams::default(),
        &serde_json::from_value(pdb).unwrap(),
    )
    .await
    .unwrap();
    let _controller =
        tokio::spawn(DisruptionController::new(t.client.clone(), &Settings::default()).run());
    eventually("one disruption allowed", || async {
        let s = summary(&pdbs.get("db").await.unwrap())?;
        (s == (3, 2, 1, 3, Some(1), "True/SufficientPods".into())).then_some(())
    })
    .await;

    pods.evict("db-0", &EvictParams::default()).await.unwrap();
    assert!(pods.get_opt("db-0").await.unwrap().is_none());
    eventually("no disruption allowed", || async {
        let s = summary(&pdbs.get("db").await.unwrap())?;
        (s == (2, 2, 0, 2, Some(1), "False/InsufficientPods".into())).then_some(())
    })
    .await;
    let refused = api_error(
        pods.evict("db-1", &EvictParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (refused.code, refused.reason.as_str()),
        (429, "TooManyRequests")
    );
    assert!(
        refused
            .message
            .contains("needs 2 healthy pods and has 2 currently"),
        "{}",
        refused.message
    );
    assert!(pods.get_opt("db-1").await.unwrap().is_some());

    // Loosening the budget is seen (a new generation) and allows the eviction again.
    let loosen = json!({"spec": {"minAvailable": 1}});
    pdbs.patch("db", &PatchParams::default(), &Patch::Merge(&loosen))
        .await
        .unwrap();
    eventually("the new generation observed", || async {
        let s = summary(&pdbs.get("db").await.unwrap())?;
        (s == (2, 1, 1, 2, Some(2), "True/SufficientPods".into())).then_some(())
    })
    .await;
    pods.evict("db-1", &EvictParams::default()).await.unwrap();
}

#[tokio::test]
async fn max_unavailable_and_percentages_count_against_the_controllers_scale() {
    let t = start().await;
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    let rs = json!({"metadata": {"name": "db"}, "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let rs = sets
        .create(&PostParams::default(), &serde_json::from_value(rs).unwrap())
        .await
        .unwrap();
    let owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "db",
        "uid": rs.metadata.uid.unwrap(), "controller": true});
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    for name in ["db-a", "db-b", "db-c"] {
        ready_pod(&pods, name, Some(owner.clone())).await;
    }
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(t.client.clone(), "default");
    for (name, spec) in [
        ("max-one", json!({"maxUnavailable": 1})),
        ("max-half", json!({"maxUnavailable": "50%"})),
        ("min-half", json!({"minAvailable": "50%"})),
    ] {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "db"}});
        let pdb = json!({"metadata": {"name": name}, "spec": spec});
        pdbs.create(
            &PostParams::default(),
            &serde_json::from_value(pdb).unwrap(),
        )
        .await
        .unwrap();
    }
    let _controller =
        tokio::spawn(DisruptionController::new(t.client.clone(), &Settings::default()).run());
    // Four expected (the ReplicaSet's scale), three healthy.
    for (name, want) in [
        (
            "max-one",
            (3, 3, 0, 4, Some(1), "False/InsufficientPods".to_owned()),
        ),
        (
            "max-half",
            (3, 2, 1, 4, Some(1), "True/SufficientPods".to_owned()),
        ),
        (
            "min-half",
            (3, 2, 1, 4, Some(1), "True/SufficientPods".to_owned()),
        ),
    ] {
        eventually(name, || async {
            let s = summary(&pdbs.get(name).await.unwrap())?;
            (s == want).then_some(())
        })
        .await;
    }
}
