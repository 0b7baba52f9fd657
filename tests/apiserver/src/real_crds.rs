//! The real CustomResourceDefinitions of `testdata/crds` (cert-manager, the Prometheus
//! operator, Gateway API; see its README): loading them, a server that serves them all, and
//! the calls the tests of their resources make.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use crate::{TestServer, api_error, start};

/// Every CRD of the test data, in file name order.
pub fn real_definitions() -> Vec<CustomResourceDefinition> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/crds");
    let mut files = Vec::new();
    for project in std::fs::read_dir(&root).unwrap() {
        let project = project.unwrap().path();
        if !project.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(project).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "yaml") {
                files.push(file);
            }
        }
    }
    files.sort();
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        })
        .collect()
}

/// Starts a server and creates every definition of the test data; waits until each is
/// established.
pub async fn server_with_real_definitions() -> TestServer {
    let t = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    for crd in real_definitions() {
        let name = crd.metadata.name.clone().unwrap();
        crds.create(&PostParams::default(), &crd)
            .await
            .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    }
    for crd in real_definitions() {
        let name = crd.metadata.name.clone().unwrap();
        let mut established = false;
        for _ in 0..200 {
            let got = crds.get(&name).await.unwrap();
            let conditions = got.status.and_then(|s| s.conditions).unwrap_or_default();
            if conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
            {
                established = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(established, "{name} was not established");
    }
    t
}

/// The API of one kind of custom resource in the namespace `default` (or cluster-wide).
pub fn resources(
    t: &TestServer,
    group_version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let (group, version) = group_version.split_once('/').unwrap();
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    if kind.starts_with("Cluster") || kind == "GatewayClass" {
        Api::all_with(t.client.clone(), &resource)
    } else {
        Api::namespaced_with(t.client.clone(), "default", &resource)
    }
}

/// Creates `object` and returns what the server stored, as JSON.
pub async fn create(api: &Api<DynamicObject>, object: Value) -> Result<Value, kube::core::Status> {
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    match api.create(&PostParams::default(), &object).await {
        Ok(created) => Ok(serde_json::to_value(created).unwrap()),
        Err(e) => Err(api_error(e)),
    }
}

/// The causes of a refusal as `field: message` lines, after checking it is a 422 Invalid.
pub fn invalid_causes(status: &kube::core::Status) -> Vec<String> {
    assert_eq!(
        (status.code, status.reason.as_str()),
        (422, "Invalid"),
        "{status:?}"
    );
    status
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect()
        })
        .unwrap_or_default()
}

/// A GET of `path` as JSON, with `accept`.
pub async fn get(t: &TestServer, path: &str, accept: &str) -> Value {
    let request = http::Request::get(path)
        .header("Accept", accept)
        .body(Vec::new())
        .unwrap();
    serde_json::from_str(&t.client.request_text(request).await.unwrap()).unwrap()
}

/// The Accept header of a Table.
pub const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
