//! Controllers against the real API server, in process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, PostParams};
use rkube_apiserver_tests::{api_error, start};
use rkube_controllers::namespace::{NamespaceController, Outcome};
use serde_json::json;

#[tokio::test]
async fn a_deleted_namespace_is_emptied_then_finalized() {
    let t = start().await;
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": "gone"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "gone");
    for name in ["a", "b"] {
        let cm = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let controller = NamespaceController::new(t.client.clone());

    // A live namespace is left alone.
    assert_eq!(
        controller
            .reconcile(&namespaces.get("gone").await.unwrap())
            .await
            .unwrap(),
        Outcome::Idle
    );

    namespaces
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = namespaces.get("gone").await.unwrap();
    assert_eq!(
        controller.reconcile(&terminating).await.unwrap(),
        Outcome::Waiting(2)
    );
    assert!(
        cms.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let terminating = namespaces.get("gone").await.unwrap();
    assert_eq!(
        controller.reconcile(&terminating).await.unwrap(),
        Outcome::Finalized
    );
    assert_eq!(
        api_error(namespaces.get("gone").await.unwrap_err()).code,
        404
    );
}
