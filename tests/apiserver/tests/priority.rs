//! Priority admission against the real API server, in process: pods get their priority
//! from their PriorityClass, the global default class, or zero.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rkube_apiserver_tests::start;
use serde_json::{Value, json};

async fn create_class(
    api: &Api<PriorityClass>,
    class: Value,
) -> Result<PriorityClass, kube::Error> {
    api.create(
        &PostParams::default(),
        &serde_json::from_value(class).unwrap(),
    )
    .await
}

async fn create_pod(api: &Api<Pod>, name: &str, spec: Value) -> Result<Pod, kube::Error> {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "c", "image": "registry.k8s.io/pause:3.10"}]);
    let pod = json!({"metadata": {"name": name}, "spec": spec});
    api.create(
        &PostParams::default(),
        &serde_json::from_value(pod).unwrap(),
    )
    .await
}

fn forbidden(result: Result<Pod, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => status.message,
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

fn priority_of(pod: &Pod) -> (Option<i32>, Option<String>, Option<String>) {
    let spec = pod.spec.as_ref().unwrap();
    (
        spec.priority,
        spec.preemption_policy.clone(),
        spec.priority_class_name.clone(),
    )
}

#[tokio::test]
async fn pods_take_their_priority_from_their_class() {
    let t = start().await;
    let classes: Api<PriorityClass> = Api::all(t.client.clone());
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");

    // The system classes exist from the start, as upstream.
    let critical = classes.get("system-node-critical").await.unwrap();
    assert_eq!(critical.value, 2_000_001_000);
    assert_eq!(
        classes.get("system-cluster-critical").await.unwrap().value,
        2_000_000_000
    );

    create_class(
        &classes,
        json!({"metadata": {"name": "batch"}, "value": 1000, "preemptionPolicy": "Never"}),
    )
    .await
    .unwrap();
    let pod = create_pod(&pods, "a", json!({"priorityClassName": "batch"}))
        .await
        .unwrap();
    assert_eq!(
        priority_of(&pod),
        (Some(1000), Some("Never".into()), Some("batch".into()))
    );
    let pod = create_pod(&pods, "b", json!({})).await.unwrap();
    assert_eq!(
        priority_of(&pod),
        (Some(0), Some("PreemptLowerPriority".into()), None)
    );
    let pod = create_pod(
        &pods,
        "c",
        json!({"priorityClassName": "system-cluster-critical"}),
    )
    .await
    .unwrap();
    assert_eq!(pod.spec.unwrap().priority, Some(2_000_000_000));

    assert_eq!(
        forbidden(create_pod(&pods, "d", json!({"priorityClassName": "nope"})).await),
        "pods \"d\" is forbidden: no PriorityClass with name nope was found"
    );
    assert_eq!(
        forbidden(create_pod(&pods, "e", json!({"priority": 5})).await),
        "pods \"e\" is forbidden: the integer value of priority (5) must not be provided in pod \
         spec; priority admission controller computed 0 from the given PriorityClass name"
    );
}

#[tokio::test]
async fn one_global_default_class_applies_to_pods_without_a_class() {
    let t = start().await;
    let classes: Api<PriorityClass> = Api::all(t.client.clone());
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    create_class(
        &classes,
        json!({"metadata": {"name": "normal"}, "value": 50, "globalDefault": true}),
    )
    .await
    .unwrap();
    let pod = create_pod(&pods, "a", json!({})).await.unwrap();
    assert_eq!(
        priority_of(&pod),
        (
            Some(50),
            Some("PreemptLowerPriority".into()),
            Some("normal".into())
        )
    );

    let second = create_class(
        &classes,
        json!({"metadata": {"name": "other"}, "value": 60, "globalDefault": true}),
    )
    .await;
    match second {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert_eq!(
                status.message,
                "priorityclasses.scheduling.k8s.io \"other\" is forbidden: PriorityClass normal \
                 is already marked as default. Only one default can exist"
            );
        }
        other => panic!("a second default must be refused: {other:?}"),
    }
    // Nor may an existing class become a second default.
    create_class(
        &classes,
        json!({"metadata": {"name": "other"}, "value": 60}),
    )
    .await
    .unwrap();
    let marked = classes
        .patch(
            "other",
            &PatchParams::default(),
            &Patch::Merge(json!({"globalDefault": true})),
        )
        .await;
    assert!(
        matches!(&marked, Err(kube::Error::Api(s)) if s.code == 403),
        "{marked:?}"
    );
}
