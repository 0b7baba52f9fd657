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

async fn owner_and_dependent(
    client: &kube::Client,
    owner: &str,
    dependent: &str,
) -> Api<ConfigMap> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": owner}})).unwrap(),
        )
        .await
        .unwrap();
    let reference = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": created.metadata.uid.unwrap()});
    let dep = json!({"metadata": {"name": dependent, "ownerReferences": [reference]}});
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(dep).unwrap(),
    )
    .await
    .unwrap();
    cms
}

#[tokio::test]
async fn the_garbage_collector_orphans_cascades_and_cleans_up() {
    use rkube_controllers::GarbageCollector;

    let t = start().await;
    let gc = GarbageCollector::new(t.client.clone());

    // Orphan: the dependent stays, without its owner reference; the owner goes.
    let cms = owner_and_dependent(&t.client, "o1", "d1").await;
    cms.delete("o1", &DeleteParams::orphan()).await.unwrap();
    gc.sweep().await.unwrap();
    assert_eq!(api_error(cms.get("o1").await.unwrap_err()).code, 404);
    assert!(
        cms.get("d1")
            .await
            .unwrap()
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );

    // Foreground: dependents first, then the owner.
    owner_and_dependent(&t.client, "o2", "d2").await;
    cms.delete("o2", &DeleteParams::foreground()).await.unwrap();
    gc.sweep().await.unwrap();
    assert_eq!(api_error(cms.get("d2").await.unwrap_err()).code, 404);
    assert!(
        cms.get("o2")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some(),
        "the owner waits for its dependents"
    );
    gc.sweep().await.unwrap();
    assert_eq!(api_error(cms.get("o2").await.unwrap_err()).code, 404);

    // Background: the owner goes at once, the dependent at the next sweep.
    owner_and_dependent(&t.client, "o3", "d3").await;
    cms.delete("o3", &DeleteParams::background()).await.unwrap();
    gc.sweep().await.unwrap();
    assert_eq!(api_error(cms.get("d3").await.unwrap_err()).code, 404);

    // A dependent of a live owner is left alone.
    owner_and_dependent(&t.client, "o4", "d4").await;
    let report = gc.sweep().await.unwrap();
    assert_eq!(report.deleted, 0);
    assert!(cms.get("d4").await.is_ok());
}
