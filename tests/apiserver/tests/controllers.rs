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

#[tokio::test]
async fn every_namespace_gets_a_default_service_account_and_the_root_ca() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use rkube_controllers::ServiceAccountController;

    let t = start().await;
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let controller = ServiceAccountController::new(t.client.clone(), t.server.ca_cert());
    let team = namespaces.get("team").await.unwrap();
    controller.reconcile(&team).await.unwrap();
    controller.reconcile(&team).await.unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(t.client.clone(), "team");
    assert!(accounts.get("default").await.is_ok());
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "team");
    let ca = cms.get("kube-root-ca.crt").await.unwrap().data.unwrap();
    assert!(ca["ca.crt"].starts_with("-----BEGIN CERTIFICATE-----"));
    // A changed CA is put back.
    let tamper = json!({"data": {"ca.crt": "tampered"}});
    cms.patch(
        "kube-root-ca.crt",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&tamper),
    )
    .await
    .unwrap();
    controller.reconcile(&team).await.unwrap();
    let ca = cms.get("kube-root-ca.crt").await.unwrap().data.unwrap();
    assert_eq!(ca["ca.crt"], t.server.ca_cert());
}
