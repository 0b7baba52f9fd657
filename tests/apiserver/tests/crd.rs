//! CustomResourceDefinitions: a definition is established and its resources are served
//! (discovery, CRUD, Table columns, field selectors), custom resources are pruned, defaulted
//! and validated by the schema, status and scale are subresources, and deleting the
//! definition deletes its resources first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use rkube_apiserver_tests::{api_error, start};
use serde_json::{Value, json};

fn definition(group: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("crontabs.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["cronSpec"], "properties": {
                        "cronSpec": {"type": "string", "pattern": "^(\\*|\\d+)( (\\*|\\d+)){4}$"},
                        "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                        "color": {"type": "string", "enum": ["red", "blue"]},
                    }},
                    "status": {"type": "object", "properties": {
                        "replicas": {"type": "integer"}, "selector": {"type": "string"}}},
                }}},
                "subresources": {"status": {}, "scale": {
                    "specReplicasPath": ".spec.replicas",
                    "statusReplicasPath": ".status.replicas",
                    "labelSelectorPath": ".status.selector"}},
                "additionalPrinterColumns": [
                    {"name": "Schedule", "type": "string", "jsonPath": ".spec.cronSpec"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}],
                "selectableFields": [{"jsonPath": ".spec.color"}],
            }],
        },
    })
}

fn crontabs(client: &kube::Client, group: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, "v1", "CronTab"),
        "crontabs",
    );
    Api::namespaced_with(client.clone(), "default", &resource)
}

fn object(group: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1"), "kind": "CronTab",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

/// Creates the definition and waits until its resources are served.
async fn establish(client: &kube::Client, group: &str) -> CustomResourceDefinition {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(definition(group)).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    for _ in 0..100 {
        let crd = crds.get(&format!("crontabs.{group}")).await.unwrap();
        let established = crd
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if established {
            return crd;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the definition was not established");
}

async fn get(client: &kube::Client, path: &str, accept: &str) -> Value {
    let request = http::Request::get(path)
        .header("Accept", accept)
        .body(Vec::new())
        .unwrap();
    serde_json::from_str(&client.request_text(request).await.unwrap()).unwrap()
}

#[tokio::test]
async fn a_definition_is_established_and_its_resources_served() {
    let t = start().await;
    let crd = establish(&t.client, "stable.example.com").await;
    let status = crd.status.unwrap();
    let accepted = status.accepted_names.unwrap();
    assert_eq!(
        (accepted.plural.as_str(), accepted.kind.as_str()),
        ("crontabs", "CronTab")
    );
    assert_eq!(status.stored_versions.unwrap(), ["v1"]);
    let conditions = status.conditions.unwrap();
    let names = conditions
        .iter()
        .find(|c| c.type_ == "NamesAccepted")
        .unwrap();
    assert_eq!(
        (names.status.as_str(), names.reason.as_deref()),
        ("True", Some("NoConflicts"))
    );

    let group = get(&t.client, "/apis/stable.example.com", "application/json").await;
    assert_eq!(
        group["preferredVersion"]["groupVersion"],
        "stable.example.com/v1"
    );
    let list = get(&t.client, "/apis/stable.example.com/v1", "application/json").await;
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["crontabs", "crontabs/scale", "crontabs/status"]);
    assert_eq!(list["resources"][0]["shortNames"], json!(["ct"]));

    let api = crontabs(&t.client, "stable.example.com");
    let created = api
        .create(
            &PostParams::default(),
            &object(
                "stable.example.com",
                "nightly",
                json!({"cronSpec": "0 3 * * *", "color": "red"}),
            ),
        )
        .await
        .unwrap();
    // The schema's default is set, and custom resources carry a generation.
    assert_eq!(created.data["spec"]["replicas"], 1);
    assert_eq!(created.metadata.generation, Some(1));
    api.create(
        &PostParams::default(),
        &object(
            "stable.example.com",
            "hourly",
            json!({"cronSpec": "0 * * * *", "color": "blue"}),
        ),
    )
    .await
    .unwrap();
    let listed = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 2);
    let red = api
        .list(&ListParams::default().fields("spec.color=red"))
        .await
        .unwrap();
    let red: Vec<String> = red
        .items
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    assert_eq!(red, ["nightly"]);

    let table = get(
        &t.client,
        "/apis/stable.example.com/v1/namespaces/default/crontabs",
        "application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    .await;
    let headers: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(headers, ["Name", "Schedule", "Replicas"]);
    assert_eq!(
        table["rows"][1]["cells"],
        json!(["nightly", "0 3 * * *", 1])
    );

    let openapi = get(
        &t.client,
        "/openapi/v3/apis/stable.example.com/v1",
        "application/json",
    )
    .await;
    let schema = &openapi["components"]["schemas"]["com.example.stable.v1.CronTab"];
    assert_eq!(
        schema["properties"]["spec"]["properties"]["replicas"]["maximum"], 10.0,
        "{schema}"
    );
    assert_eq!(
        schema["x-kubernetes-group-version-kind"][0]["kind"],
        "CronTab"
    );
}

#[tokio::test]
async fn custom_resources_are_pruned_defaulted_and_validated_by_the_schema() {
    let t = start().await;
    establish(&t.client, "prune.example.com").await;
    let api = crontabs(&t.client, "prune.example.com");
    let bad = object(
        "prune.example.com",
        "bad",
        json!({"cronSpec": "every minute", "replicas": 11, "color": "green"}),
    );
    let status = api_error(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "CronTab.prune.example.com \"bad\" is invalid: [spec.color: Unsupported value: \"green\": \
         supported values: \"red\", \"blue\", spec.cronSpec: Invalid value: \"every minute\": \
         spec.cronSpec in body should match '^(\\*|\\d+)( (\\*|\\d+)){4}$', spec.replicas: \
         Invalid value: 11: spec.replicas in body should be less than or equal to 10]"
    );
    let missing = object("prune.example.com", "missing", json!({}));
    let status = api_error(
        api.create(&PostParams::default(), &missing)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        status.message,
        "CronTab.prune.example.com \"missing\" is invalid: spec.cronSpec: Required value"
    );

    // Unknown fields are dropped, or refused under Strict.
    let extra = object(
        "prune.example.com",
        "extra",
        json!({"cronSpec": "* * * * *", "unknown": true}),
    );
    let request = http::Request::post(
        "/apis/prune.example.com/v1/namespaces/default/crontabs?fieldValidation=Strict",
    )
    .header("Content-Type", "application/json")
    .body(serde_json::to_vec(&extra).unwrap())
    .unwrap();
    let status = api_error(
        t.client
            .request::<DynamicObject>(request)
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 400);
    assert_eq!(
        status.message,
        "CronTab in version \"v1\" cannot be handled as a CronTab: strict decoding error: \
         unknown field \"spec.unknown\""
    );
    let created = api.create(&PostParams::default(), &extra).await.unwrap();
    assert!(created.data["spec"].get("unknown").is_none());

    // Strategic merge patches are not offered for custom resources.
    let err = api
        .patch(
            "extra",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err).code, 415);
}

#[tokio::test]
async fn status_and_scale_are_subresources_and_generation_follows_the_spec() {
    let t = start().await;
    establish(&t.client, "scale.example.com").await;
    let api = crontabs(&t.client, "scale.example.com");
    api.create(
        &PostParams::default(),
        &object("scale.example.com", "job", json!({"cronSpec": "* * * * *"})),
    )
    .await
    .unwrap();
    // The main resource ignores status; the status subresource changes only status.
    let patched = api
        .patch(
            "job",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 5}, "metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert!(patched.data.get("status").is_none());
    assert_eq!(patched.metadata.generation, Some(1));
    let patched = api
        .patch_status(
            "job",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 2, "selector": "app=job"},
                                 "spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["replicas"], 2);
    assert_eq!(patched.data["spec"]["replicas"], 1);
    assert_eq!(patched.metadata.generation, Some(1));

    let scale = api.get_scale("job").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    let status = scale.status.unwrap();
    assert_eq!(
        (status.replicas, status.selector.as_deref()),
        (2, Some("app=job"))
    );
    api.patch_scale(
        "job",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    let job = api.get("job").await.unwrap();
    assert_eq!(job.data["spec"]["replicas"], 4);
    assert_eq!(job.metadata.generation, Some(2));
}

#[tokio::test]
async fn deleting_a_definition_deletes_its_resources_then_stops_serving_them() {
    let t = start().await;
    establish(&t.client, "gone.example.com").await;
    let api = crontabs(&t.client, "gone.example.com");
    for name in ["a", "b"] {
        api.create(
            &PostParams::default(),
            &object("gone.example.com", name, json!({"cronSpec": "* * * * *"})),
        )
        .await
        .unwrap();
    }
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    crds.delete("crontabs.gone.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let mut gone = false;
    for _ in 0..100 {
        if crds
            .get_opt("crontabs.gone.example.com")
            .await
            .unwrap()
            .is_none()
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the definition stayed");
    // Its objects went with it: a new definition of the same name starts empty.
    establish(&t.client, "gone.example.com").await;
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn bad_definitions_are_refused() {
    let t = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let mut bad = definition("bad.example.com");
    bad["metadata"]["name"] = json!("wrong.bad.example.com");
    bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["color"] =
        json!({"enum": ["red"]});
    let bad: CustomResourceDefinition = serde_json::from_value(bad).unwrap();
    let status = api_error(crds.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "CustomResourceDefinition.apiextensions.k8s.io \"wrong.bad.example.com\" is invalid: [\
         metadata.name: Invalid value: \"wrong.bad.example.com\": must be spec.names.plural+\".\"+spec.group, \
         spec.validation.openAPIV3Schema.properties[spec].properties[color].type: Required value: \
         must not be empty for specified object fields]"
    );
}
