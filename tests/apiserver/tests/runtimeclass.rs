//! RuntimeClass admission against the real API server, in process: a pod naming a class
//! gets its overhead and scheduling constraints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, PostParams};
use rkube_apiserver_tests::start;
use serde_json::json;

#[tokio::test]
async fn a_pod_takes_its_runtime_class_overhead_and_scheduling() {
    let t = start().await;
    let classes: Api<RuntimeClass> = Api::all(t.client.clone());
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let class = json!({
        "metadata": {"name": "sandboxed"},
        "handler": "kata",
        "overhead": {"podFixed": {"cpu": "250m", "memory": "120Mi"}},
        "scheduling": {
            "nodeSelector": {"sandbox": "kata"},
            "tolerations": [{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}],
        },
    });
    classes
        .create(
            &PostParams::default(),
            &serde_json::from_value(class).unwrap(),
        )
        .await
        .unwrap();
    let pod = |name: &str, class: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "runtimeClassName": class,
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
            },
        }))
        .unwrap()
    };
    let created = pods
        .create(&PostParams::default(), &pod("a", "sandboxed"))
        .await
        .unwrap();
    let spec = created.spec.unwrap();
    let overhead = spec.overhead.unwrap();
    assert_eq!(overhead["cpu"].0, "250m");
    assert_eq!(overhead["memory"].0, "120Mi");
    assert_eq!(spec.node_selector.unwrap()["sandbox"], "kata");
    assert!(
        spec.tolerations
            .unwrap()
            .iter()
            .any(|t| t.key.as_deref() == Some("sandbox"))
    );

    match pods
        .create(&PostParams::default(), &pod("b", "missing"))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert_eq!(
                status.message,
                "pods \"b\" is forbidden: pod rejected: RuntimeClass \"missing\" not found"
            );
        }
        other => panic!("a missing RuntimeClass must be refused: {other:?}"),
    }

    // The handler is required.
    let bad = classes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "nohandler"}, "handler": ""}))
                .unwrap(),
        )
        .await;
    assert!(
        matches!(&bad, Err(kube::Error::Api(s)) if s.code == 422),
        "{bad:?}"
    );
}
