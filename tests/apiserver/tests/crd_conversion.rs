//! Custom resources in several versions: objects are stored in the storage version and
//! every request sees them in the version it names — by strategy None (only apiVersion
//! changes) or through a conversion webhook served here over HTTPS with its own CA, reached
//! by URL or through a Service's endpoints. A failing webhook fails the request with
//! upstream's message, and status.storedVersions follows the storage version.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use rkube_apiserver_tests::{api_error, start};
use serde_json::{Value, json};

/// A version of the test definition: `field` is what its spec calls the schedule.
fn version(name: &str, field: &str, storage: bool) -> Value {
    json!({
        "name": name, "served": true, "storage": storage,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                field: {"type": "string"},
                "replicas": {"type": "integer", "default": 1},
            }},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
        }}},
        "subresources": {"status": {}},
    })
}

fn definition(group: &str, versions: Vec<Value>, conversion: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("crontabs.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab"},
            "versions": versions,
            "conversion": conversion,
        },
    })
}

fn crontabs(client: &kube::Client, group: &str, version: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, "CronTab"),
        "crontabs",
    );
    Api::namespaced_with(client.clone(), "default", &resource)
}

fn crontab(group: &str, version: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("{group}/{version}"), "kind": "CronTab",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

/// Creates (or replaces the spec of) a definition and waits until `version` is served.
async fn establish(client: &kube::Client, crd: Value, version: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd["metadata"]["name"].as_str().unwrap().to_owned();
    let group = crd["spec"]["group"].as_str().unwrap().to_owned();
    match crds.get_opt(&name).await.unwrap() {
        None => {
            let crd: CustomResourceDefinition = serde_json::from_value(crd).unwrap();
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        Some(_) => {
            let patch = json!({"spec": crd["spec"]});
            crds.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    }
    let path = format!("/apis/{group}/{version}");
    for _ in 0..200 {
        let request = http::Request::get(path.as_str()).body(Vec::new()).unwrap();
        if let Ok(text) = client.request_text(request).await
            && text.contains("crontabs")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{group}/{version} was not served");
}

fn schedule(object: &DynamicObject, field: &str) -> String {
    object.data["spec"][field]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn objects_created_in_one_version_are_served_in_every_version() {
    let t = start().await;
    let group = "none.example.com";
    let crd = definition(
        group,
        vec![
            version("v1", "cronSpec", true),
            version("v2", "cronSpec", false),
        ],
        json!({"strategy": "None"}),
    );
    establish(&t.client, crd, "v2").await;
    let (v1, v2) = (
        crontabs(&t.client, group, "v1"),
        crontabs(&t.client, group, "v2"),
    );
    let spec = json!({"cronSpec": "* * * * */5"});
    let created = v1
        .create(
            &PostParams::default(),
            &crontab(group, "v1", "a", spec.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        created.types.as_ref().unwrap().api_version,
        "none.example.com/v1"
    );

    let read = v2.get("a").await.unwrap();
    assert_eq!(
        read.types.as_ref().unwrap().api_version,
        "none.example.com/v2"
    );
    assert_eq!(schedule(&read, "cronSpec"), "* * * * */5");
    assert_eq!(read.data["spec"]["replicas"], 1);
    let read = v1.get("a").await.unwrap();
    assert_eq!(
        read.types.as_ref().unwrap().api_version,
        "none.example.com/v1"
    );

    // Created through v2: answered in v2, read back in v1.
    let created = v2
        .create(
            &PostParams::default(),
            &crontab(group, "v2", "b", spec.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        created.types.as_ref().unwrap().api_version,
        "none.example.com/v2"
    );
    assert_eq!(
        v1.get("b")
            .await
            .unwrap()
            .types
            .as_ref()
            .unwrap()
            .api_version,
        "none.example.com/v1"
    );

    for (api, wanted) in [(&v1, "none.example.com/v1"), (&v2, "none.example.com/v2")] {
        let list = api.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 2);
        for item in &list.items {
            assert_eq!(item.types.as_ref().unwrap().api_version, wanted);
        }
        let mut events = api
            .watch(&WatchParams::default(), "0")
            .await
            .unwrap()
            .boxed();
        for _ in 0..2 {
            match events.try_next().await.unwrap() {
                Some(WatchEvent::Added(object)) => {
                    assert_eq!(object.types.as_ref().unwrap().api_version, wanted);
                }
                other => panic!("expected an ADDED event, got {other:?}"),
            }
        }
    }

    // A watch through v2 sees a change made through v1 in v2.
    let list = v2.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut events = v2
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let patch = json!({"spec": {"cronSpec": "0 * * * *"}});
    v1.patch("a", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Modified(object)) => {
            assert_eq!(
                object.types.as_ref().unwrap().api_version,
                "none.example.com/v2"
            );
            assert_eq!(schedule(&object, "cronSpec"), "0 * * * *");
        }
        other => panic!("expected a MODIFIED event, got {other:?}"),
    }

    // Updates, patches and status writes through v2.
    let mut current = v2.get("a").await.unwrap();
    current.data["spec"]["replicas"] = json!(3);
    let updated = v2
        .replace("a", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(
        updated.types.as_ref().unwrap().api_version,
        "none.example.com/v2"
    );
    assert_eq!(updated.data["spec"]["replicas"], 3);
    let status = json!({"status": {"ready": true}});
    let patched = v2
        .patch_status("a", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        patched.types.as_ref().unwrap().api_version,
        "none.example.com/v2"
    );
    assert_eq!(patched.data["status"]["ready"], true);
    let read = v1.get("a").await.unwrap();
    assert_eq!(
        (
            read.data["spec"]["replicas"].clone(),
            read.data["status"]["ready"].clone()
        ),
        (json!(3), json!(true))
    );
}

/// A conversion webhook: converts between v1 (`spec.cronSpec`) and v2 (`spec.schedule`),
/// or, when broken, answers a failure.
struct ConversionWebhook {
    addr: SocketAddr,
    ca_pem: String,
}

/// The test's conversion: renames the schedule field and sets the version.
fn rename(object: &Value, desired: &str) -> Value {
    let mut object = object.clone();
    let spec = object["spec"].as_object_mut().unwrap();
    let (from, to) = if desired.ends_with("/v2") {
        ("cronSpec", "schedule")
    } else {
        ("schedule", "cronSpec")
    };
    if let Some(value) = spec.remove(from) {
        spec.insert(to.to_owned(), value);
    }
    object["apiVersion"] = json!(desired);
    // Metadata other than labels and annotations is not the webhook's to change.
    object["metadata"]["resourceVersion"] = json!("1");
    object["metadata"]["labels"] = json!({"converted": "yes"});
    object
}

impl ConversionWebhook {
    async fn start(broken: bool) -> Self {
        let (addr, ca_pem) = rkube_apiserver_tests::json_server(
            "conversion-ca",
            &["127.0.0.1", "converter.default.svc"],
            move |review| {
                let request = &review["request"];
                let desired = request["desiredAPIVersion"].as_str().unwrap();
                let response = if broken {
                    json!({"uid": request["uid"], "result": {
                        "status": "Failure", "message": "the converter is broken"}})
                } else {
                    let converted: Vec<Value> = request["objects"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|o| rename(o, desired))
                        .collect();
                    json!({"uid": request["uid"], "result": {"status": "Success"},
                           "convertedObjects": converted})
                };
                json!({
                    "apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "ConversionReview",
                    "response": response,
                })
            },
        )
        .await;
        Self { addr, ca_pem }
    }

    fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }

    fn by_url(&self) -> Value {
        json!({"strategy": "Webhook", "webhook": {
            "conversionReviewVersions": ["v1", "v1beta1"],
            "clientConfig": {
                "url": format!("https://127.0.0.1:{}/convert", self.addr.port()),
                "caBundle": self.ca_bundle(),
            },
        }})
    }

    /// Through the selector-less Service `default/converter` (created here) on port 8443.
    async fn by_service(&self, client: &kube::Client) -> Value {
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let svc = json!({
            "metadata": {"name": "converter"},
            "spec": {"ports": [{"name": "https", "port": 8443, "targetPort": self.addr.port()}]},
        });
        services
            .create(
                &PostParams::default(),
                &serde_json::from_value(svc).unwrap(),
            )
            .await
            .unwrap();
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
        let slice = json!({
            "metadata": {"name": "converter-1",
                         "labels": {"kubernetes.io/service-name": "converter"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": self.addr.port(), "protocol": "TCP"}],
        });
        slices
            .create(
                &PostParams::default(),
                &serde_json::from_value(slice).unwrap(),
            )
            .await
            .unwrap();
        json!({"strategy": "Webhook", "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": {
                "service": {"namespace": "default", "name": "converter", "path": "/convert",
                            "port": 8443},
                "caBundle": self.ca_bundle(),
            },
        }})
    }
}

fn renaming_definition(group: &str, conversion: Value) -> Value {
    definition(
        group,
        vec![
            version("v1", "cronSpec", true),
            version("v2", "schedule", false),
        ],
        conversion,
    )
}

/// Both versions of a definition whose webhook renames the schedule field work: writes in
/// either, reads, lists and watches in either.
async fn both_versions_work(client: &kube::Client, group: &str) {
    let (v1, v2) = (crontabs(client, group, "v1"), crontabs(client, group, "v2"));
    let created = v2
        .create(
            &PostParams::default(),
            &crontab(group, "v2", "a", json!({"schedule": "*/5 * * * *"})),
        )
        .await
        .unwrap();
    assert_eq!(schedule(&created, "schedule"), "*/5 * * * *");
    assert_eq!(
        created.types.as_ref().unwrap().api_version,
        format!("{group}/v2")
    );
    let stored = v1.get("a").await.unwrap();
    assert_eq!(schedule(&stored, "cronSpec"), "*/5 * * * *");
    assert!(stored.data["spec"].get("schedule").is_none());
    // The webhook's labels are kept, its other metadata is not.
    assert_eq!(stored.metadata.labels.unwrap()["converted"], "yes");
    assert_ne!(stored.metadata.resource_version.as_deref(), Some("1"));

    v1.create(
        &PostParams::default(),
        &crontab(group, "v1", "b", json!({"cronSpec": "0 0 * * *"})),
    )
    .await
    .unwrap();
    let list = v2.list(&ListParams::default()).await.unwrap();
    let mut schedules: Vec<String> = list.items.iter().map(|o| schedule(o, "schedule")).collect();
    schedules.sort();
    assert_eq!(schedules, ["*/5 * * * *", "0 0 * * *"]);

    let patch = json!({"spec": {"schedule": "1 2 3 4 5"}});
    let patched = v2
        .patch("b", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(schedule(&patched, "schedule"), "1 2 3 4 5");
    assert_eq!(
        schedule(&v1.get("b").await.unwrap(), "cronSpec"),
        "1 2 3 4 5"
    );

    let mut events = v2
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    for _ in 0..2 {
        match events.try_next().await.unwrap() {
            Some(WatchEvent::Added(object)) => {
                assert_eq!(
                    object.types.as_ref().unwrap().api_version,
                    format!("{group}/v2")
                );
                assert!(!schedule(&object, "schedule").is_empty());
            }
            other => panic!("expected an ADDED event, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_conversion_webhook_by_url_serves_both_versions() {
    let t = start().await;
    let webhook = ConversionWebhook::start(false).await;
    let group = "url.example.com";
    establish(
        &t.client,
        renaming_definition(group, webhook.by_url()),
        "v2",
    )
    .await;
    both_versions_work(&t.client, group).await;
}

#[tokio::test]
async fn a_conversion_webhook_behind_a_service_serves_both_versions() {
    let t = start().await;
    let webhook = ConversionWebhook::start(false).await;
    let group = "service.example.com";
    let conversion = webhook.by_service(&t.client).await;
    establish(&t.client, renaming_definition(group, conversion), "v2").await;
    both_versions_work(&t.client, group).await;
}

#[tokio::test]
async fn a_failing_conversion_webhook_fails_the_request_with_upstreams_message() {
    let t = start().await;
    let webhook = ConversionWebhook::start(true).await;
    let group = "broken.example.com";
    establish(
        &t.client,
        renaming_definition(group, webhook.by_url()),
        "v2",
    )
    .await;
    let (v1, v2) = (
        crontabs(&t.client, group, "v1"),
        crontabs(&t.client, group, "v2"),
    );
    // The storage version needs no conversion.
    v1.create(
        &PostParams::default(),
        &crontab(group, "v1", "a", json!({"cronSpec": "* * * * *"})),
    )
    .await
    .unwrap();
    let read = api_error(v2.get("a").await.unwrap_err());
    assert_eq!(read.code, 500);
    assert_eq!(
        read.message,
        "conversion webhook for broken.example.com/v1, Kind=CronTab failed: the converter is broken"
    );
    assert_eq!(read.reason, "");
    let list = api_error(v2.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        (list.code, list.message.as_str()),
        (
            500,
            "conversion webhook for broken.example.com/v1, Kind=CronTabList failed: the converter is broken"
        )
    );
    let write = api_error(
        v2.create(
            &PostParams::default(),
            &crontab(group, "v2", "b", json!({"schedule": "* * * * *"})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        (write.code, write.reason.as_str(), write.message.as_str()),
        (
            500,
            "InternalError",
            "Internal error occurred: conversion webhook for broken.example.com/v2, Kind=CronTab failed: the converter is broken"
        )
    );
    assert!(v1.get_opt("b").await.unwrap().is_none());

    // A webhook that cannot be reached.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = json!({"strategy": "Webhook", "webhook": {
        "conversionReviewVersions": ["v1"],
        "clientConfig": {"url": format!("https://127.0.0.1:{port}/convert"),
                         "caBundle": webhook.ca_bundle()},
    }});
    establish(
        &t.client,
        renaming_definition(group, unreachable.clone()),
        "v2",
    )
    .await;
    let wanted = format!(
        "conversion webhook for broken.example.com/v1, Kind=CronTab failed: Post \"https://127.0.0.1:{port}/convert?timeout=30s\": dial tcp 127.0.0.1:{port}"
    );
    for _ in 0..100 {
        let err = api_error(v2.get("a").await.unwrap_err());
        if err.message.starts_with(&wanted) {
            assert_eq!(err.code, 500);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the unreachable webhook was not reported");
}

#[tokio::test]
async fn stored_versions_gain_the_storage_version_when_it_changes() {
    let t = start().await;
    let group = "storage.example.com";
    let crd = definition(
        group,
        vec![
            version("v1", "cronSpec", true),
            version("v2", "cronSpec", false),
        ],
        json!({"strategy": "None"}),
    );
    establish(&t.client, crd, "v2").await;
    let (v1, v2) = (
        crontabs(&t.client, group, "v1"),
        crontabs(&t.client, group, "v2"),
    );
    v1.create(
        &PostParams::default(),
        &crontab(group, "v1", "old", json!({"cronSpec": "* * * * *"})),
    )
    .await
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let name = format!("crontabs.{group}");
    let stored = |crd: CustomResourceDefinition| crd.status.unwrap().stored_versions.unwrap();
    assert_eq!(stored(crds.get(&name).await.unwrap()), ["v1"]);

    let crd = definition(
        group,
        vec![
            version("v1", "cronSpec", false),
            version("v2", "cronSpec", true),
        ],
        json!({"strategy": "None"}),
    );
    establish(&t.client, crd, "v2").await;
    let mut versions = Vec::new();
    for _ in 0..100 {
        versions = stored(crds.get(&name).await.unwrap());
        if versions.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(versions, ["v1", "v2"]);
    // The object stored as v1 is still read in both versions, and written back as v2.
    let old = v2.get("old").await.unwrap();
    assert_eq!(
        old.types.as_ref().unwrap().api_version,
        "storage.example.com/v2"
    );
    let patch = json!({"spec": {"cronSpec": "1 * * * *"}});
    let patched = v2
        .patch("old", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(
        patched.types.as_ref().unwrap().api_version,
        "storage.example.com/v2"
    );
    assert_eq!(
        v1.get("old")
            .await
            .unwrap()
            .types
            .as_ref()
            .unwrap()
            .api_version,
        "storage.example.com/v1"
    );
}

/// A mutating webhook whose rules name only v1 is sent a v2 request's object converted to v1
/// (under matchPolicy Equivalent, the default), told both versions, and its patch, made in
/// v1, reaches the object in v2. One with matchPolicy Exact is not called at all.
#[tokio::test]
async fn an_admission_webhook_gets_the_object_in_the_version_its_rules_name() {
    use std::sync::{Arc, Mutex};
    let t = start().await;
    let converter = ConversionWebhook::start(false).await;
    let group = "equivalent.example.com";
    establish(
        &t.client,
        renaming_definition(group, converter.by_url()),
        "v2",
    )
    .await;
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let record = seen.clone();
    let (addr, ca_pem) =
        rkube_apiserver_tests::json_server("admission-ca", &["127.0.0.1"], move |review| {
            let request = &review["request"];
            let path = request["object"]["metadata"]["name"].to_string();
            record.lock().unwrap().push((path, request.clone()));
            let patch = json!([{"op": "replace", "path": "/spec/cronSpec", "value": "0 0 * * *"}]);
            let patch = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
            let mut response = json!({"uid": request["uid"], "allowed": true});
            if request["kind"]["version"] == "v1" {
                response["patchType"] = json!("JSONPatch");
                response["patch"] = json!(patch);
            }
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                   "response": response})
        })
        .await;
    let hook = |name: &str, policy: &str| {
        json!({
            "name": name,
            "clientConfig": {"url": format!("https://127.0.0.1:{}/{name}", addr.port()),
                             "caBundle": base64::engine::general_purpose::STANDARD.encode(&ca_pem)},
            "rules": [{"operations": ["CREATE"], "apiGroups": [group], "apiVersions": ["v1"],
                       "resources": ["crontabs"]}],
            "matchPolicy": policy,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        })
    };
    let configs: Api<DynamicObject> = Api::all_with(
        t.client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(
                "admissionregistration.k8s.io",
                "v1",
                "MutatingWebhookConfiguration",
            ),
            "mutatingwebhookconfigurations",
        ),
    );
    let config = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "v1-only"},
        "webhooks": [hook("exact.example.com", "Exact"), hook("equivalent.example.com", "Equivalent")],
    });
    configs
        .create(
            &PostParams::default(),
            &serde_json::from_value(config).unwrap(),
        )
        .await
        .unwrap();
    let v2 = crontabs(&t.client, group, "v2");
    let mut created = None;
    for i in 0..100 {
        let name = format!("c-{i}");
        let object = crontab(group, "v2", &name, json!({"schedule": "* * * * *"}));
        let made = v2.create(&PostParams::default(), &object).await.unwrap();
        if !seen.lock().unwrap().is_empty() {
            created = Some(made);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created = created.expect("the webhook was never called");
    let calls = seen.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        1,
        "only the Equivalent webhook is called: {calls:?}"
    );
    let request = &calls[0].1;
    assert_eq!(
        request["kind"],
        json!({"group": group, "version": "v1", "kind": "CronTab"})
    );
    assert_eq!(
        request["requestKind"],
        json!({"group": group, "version": "v2", "kind": "CronTab"})
    );
    assert_eq!(request["resource"]["version"], "v1");
    assert_eq!(request["requestResource"]["version"], "v2");
    assert_eq!(request["object"]["apiVersion"], format!("{group}/v1"));
    assert_eq!(request["object"]["spec"]["cronSpec"], "* * * * *");
    assert!(request["object"]["spec"].get("schedule").is_none());
    // The patch made in v1 is in the v2 object answered and stored.
    assert_eq!(
        created.types.as_ref().unwrap().api_version,
        format!("{group}/v2")
    );
    assert_eq!(created.data["spec"]["schedule"], "0 0 * * *");
    let name = created.metadata.name.clone().unwrap();
    assert_eq!(
        v2.get(&name).await.unwrap().data["spec"]["schedule"],
        "0 0 * * *"
    );
    let v1 = crontabs(&t.client, group, "v1");
    assert_eq!(
        v1.get(&name).await.unwrap().data["spec"]["cronSpec"],
        "0 0 * * *"
    );
}
