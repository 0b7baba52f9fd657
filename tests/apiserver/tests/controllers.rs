//! Controllers against the real API server, in process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
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

/// Waits up to 10 s for `check` to hold.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn create_map(cms: &Api<ConfigMap>, metadata: serde_json::Value) -> ConfigMap {
    let cm = serde_json::from_value(json!({ "metadata": metadata })).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap()
}

/// A reference to `owner`, blocking its foreground deletion if `block`.
fn reference_to(owner: &ConfigMap, block: bool) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name,
           "uid": owner.metadata.uid, "blockOwnerDeletion": block})
}

/// Creates `owner` and `dependent` (which names it as its owner).
async fn owner_and_dependent(cms: &Api<ConfigMap>, owner: &str, dependent: &str) -> ConfigMap {
    let created = create_map(cms, json!({"name": owner})).await;
    let reference = reference_to(&created, false);
    create_map(
        cms,
        json!({"name": dependent, "ownerReferences": [reference]}),
    )
    .await;
    created
}

async fn gone(cms: &Api<ConfigMap>, name: &str) -> bool {
    matches!(cms.get(name).await, Err(kube::Error::Api(s)) if s.code == 404)
}

#[tokio::test]
async fn the_garbage_collector_orphans_cascades_and_cleans_up() {
    use rkube_controllers::GarbageCollector;

    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    // Objects from before the collector started are collected too.
    let ghost = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "never",
                       "uid": "00000000-0000-0000-0000-000000000000"});
    create_map(&cms, json!({"name": "d0", "ownerReferences": [ghost]})).await;
    let _gc = tokio::spawn(GarbageCollector::new(t.client.clone()).run());
    eventually("a dependent of a vanished owner goes", || gone(&cms, "d0")).await;

    // Orphan: the dependent stays, without its owner reference; the owner goes.
    owner_and_dependent(&cms, "o1", "d1").await;
    cms.delete("o1", &DeleteParams::orphan()).await.unwrap();
    eventually("the orphaning owner goes", || gone(&cms, "o1")).await;
    let d1 = cms.get("d1").await.unwrap();
    assert!(d1.metadata.owner_references.unwrap_or_default().is_empty());

    // Foreground: a blocking dependent goes first (held here by a finalizer), then the owner.
    let o2 = create_map(&cms, json!({"name": "o2"})).await;
    create_map(
        &cms,
        json!({"name": "d2", "finalizers": ["example.com/hold"],
               "ownerReferences": [reference_to(&o2, true)]}),
    )
    .await;
    cms.delete("o2", &DeleteParams::foreground()).await.unwrap();
    eventually("the blocking dependent is being deleted", || async {
        cms.get("d2")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let o2 = cms.get("o2").await.unwrap();
    assert!(
        o2.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_owned()),
        "the owner waits for its blocking dependent"
    );
    let release = json!({"metadata": {"finalizers": null}});
    cms.patch("d2", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    eventually("the dependent goes", || gone(&cms, "d2")).await;
    eventually("then the owner", || gone(&cms, "o2")).await;

    // Background: the owner goes at once, the dependent after it.
    owner_and_dependent(&cms, "o3", "d3").await;
    cms.delete("o3", &DeleteParams::background()).await.unwrap();
    eventually("the dependent of a deleted owner goes", || gone(&cms, "d3")).await;

    // A reference whose uid is not the named owner's is dangling.
    let o5 = create_map(&cms, json!({"name": "o5"})).await;
    let mut wrong = reference_to(&o5, false);
    wrong["uid"] = json!("11111111-1111-1111-1111-111111111111");
    create_map(&cms, json!({"name": "d5", "ownerReferences": [wrong]})).await;
    eventually("a dependent naming the wrong uid goes", || gone(&cms, "d5")).await;
    assert!(cms.get("o5").await.is_ok());

    // A dependent with a live owner and a vanished one keeps the live one only.
    let o6 = create_map(&cms, json!({"name": "o6"})).await;
    let ghost = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "never",
                       "uid": "22222222-2222-2222-2222-222222222222"});
    create_map(
        &cms,
        json!({"name": "d6", "ownerReferences": [reference_to(&o6, false), ghost]}),
    )
    .await;
    eventually("the dangling reference is dropped", || async {
        cms.get("d6")
            .await
            .unwrap()
            .metadata
            .owner_references
            .unwrap_or_default()
            .len()
            == 1
    })
    .await;

    // Dependents of a live owner, or of an owner of a kind the server does not serve, stay.
    owner_and_dependent(&cms, "o4", "d4").await;
    let unserved = json!({"apiVersion": "example.com/v1", "kind": "Widget", "name": "w",
                          "uid": "33333333-3333-3333-3333-333333333333"});
    create_map(&cms, json!({"name": "d7", "ownerReferences": [unserved]})).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(cms.get("d4").await.is_ok());
    assert!(cms.get("d6").await.is_ok());
    assert!(cms.get("d7").await.is_ok());
}

/// The path of a LIST request (a GET of a collection, not a watch), if `request` is one.
fn list_path<B>(request: &http::Request<B>) -> Option<String> {
    if request.method() != http::Method::GET {
        return None;
    }
    let query = request.uri().query().unwrap_or("");
    if query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1")
    {
        return None;
    }
    let path = request.uri().path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut rest = match segments.first() {
        Some(&"api") => segments.get(2..)?,
        Some(&"apis") => segments.get(3..)?,
        _ => return None,
    };
    if rest.len() >= 3 && rest[0] == "namespaces" {
        rest = &rest[2..];
    }
    (rest.len() == 1).then(|| path.to_owned())
}

/// Whether `request` asks for metadata only (PartialObjectMetadata, the garbage collector's).
fn metadata_only<B>(request: &http::Request<B>) -> bool {
    request
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("as=PartialObjectMetadata"))
}

/// A client that passes every request to `inner`, recording the LIST requests (the path,
/// with ` (metadata)` after it for metadata-only lists).
fn counting_lists(inner: kube::Client, lists: Arc<Mutex<Vec<String>>>) -> kube::Client {
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        if let Some(path) = list_path(&request) {
            let what = if metadata_only(&request) {
                format!("{path} (metadata)")
            } else {
                path
            };
            lists.lock().unwrap().push(what);
        }
        let inner = inner.clone();
        async move { inner.send(request).await }
    });
    kube::Client::new(service, "default")
}

#[tokio::test]
async fn idle_controllers_do_not_list() {
    use rkube_controllers::ControllerManager;

    let t = start().await;
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    for n in 0..3 {
        let ns = serde_json::from_value(json!({"metadata": {"name": format!("team{n}")}})).unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &format!("team{n}"));
        for i in 0..300 {
            let owner = create_map(&cms, json!({"name": format!("owner-{i}")})).await;
            if i % 3 == 0 {
                let reference = reference_to(&owner, true);
                create_map(
                    &cms,
                    json!({"name": format!("dependent-{i}"), "ownerReferences": [reference]}),
                )
                .await;
            }
        }
    }
    let lists = Arc::new(Mutex::new(Vec::new()));
    let client = counting_lists(t.client.clone(), lists.clone());
    let _manager = tokio::spawn(ControllerManager::new(client, t.server.ca_cert()).run());

    // Settled: every namespace has its account, and the collector acts on a deletion.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(t.client.clone(), "team2");
    eventually("the service account controller has run", || async {
        accounts.get("default").await.is_ok()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "team0");
    cms.delete("owner-0", &DeleteParams::background())
        .await
        .unwrap();
    eventually("the collector has acted", || gone(&cms, "dependent-0")).await;
    let at_start = lists.lock().unwrap().len();
    assert!(at_start > 0, "the informers listed once");
    // One informer per resource, shared by every controller that reads it: pods, nodes,
    // namespaces and Services are each listed once, however many controllers follow them.
    let listed = lists.lock().unwrap().clone();
    for path in [
        "/api/v1/pods",
        "/api/v1/nodes",
        "/api/v1/namespaces",
        "/api/v1/services",
    ] {
        let times = listed.iter().filter(|p| *p == path).count();
        assert_eq!(times, 1, "{path} listed {times} times: {listed:?}");
    }

    tokio::time::sleep(Duration::from_secs(8)).await;
    let idle: Vec<String> = lists.lock().unwrap()[at_start..].to_vec();
    assert!(idle.is_empty(), "lists while idle: {idle:?}");
}
