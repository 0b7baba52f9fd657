//! CRD validation rules (`x-kubernetes-validations`) on custom resources: a failed rule
//! refuses the write with a 422 naming the rule's field and message, transition rules compare
//! with the stored object on update, messageExpression builds the message, status updates
//! run the rules too, and a rule that does not compile refuses the definition.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use rkube_apiserver_tests::{api_error, start};
use serde_json::{Value, json};

const GROUP: &str = "cel.example.com";

fn definition(rules: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{GROUP}")},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object",
                        "x-kubernetes-validations": rules,
                        "properties": {
                            "replicas": {"type": "integer"},
                            "minReplicas": {"type": "integer"},
                            "maxReplicas": {"type": "integer"},
                        }},
                    "status": {"type": "object", "properties": {
                        "ready": {"type": "integer",
                            "x-kubernetes-validations": [{"rule": "self >= 0", "message": "ready must not be negative"}]},
                    }},
                }}},
            }],
        },
    })
}

fn rules() -> Value {
    json!([
        {"rule": "self.minReplicas <= self.replicas && self.replicas <= self.maxReplicas",
         "message": "replicas should be in the range minReplicas..maxReplicas."},
        {"rule": "self.replicas >= oldSelf.replicas",
         "messageExpression": "'replicas may not decrease, was ' + string(oldSelf.replicas)"},
        {"rule": "self.maxReplicas <= 100", "fieldPath": ".maxReplicas", "reason": "FieldValueForbidden"},
    ])
}

async fn establish(client: &kube::Client) -> Api<DynamicObject> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(definition(rules())).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    for _ in 0..100 {
        let crd = crds.get(&format!("widgets.{GROUP}")).await.unwrap();
        let established = crd
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if established {
            let resource = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(GROUP, "v1", "Widget"),
                "widgets",
            );
            return Api::namespaced_with(client.clone(), "default", &resource);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the definition was not established");
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "Widget",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

#[tokio::test]
async fn a_resource_that_breaks_a_rule_is_refused_with_the_rule_message() {
    let t = start().await;
    let widgets = establish(&t.client).await;
    let bad = widget(
        "w",
        json!({"replicas": 20, "minReplicas": 1, "maxReplicas": 10}),
    );
    let status = api_error(
        widgets
            .create(&PostParams::default(), &bad)
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    assert_eq!(
        status.message,
        "Widget.cel.example.com \"w\" is invalid: spec: Invalid value: \"object\": \
         replicas should be in the range minReplicas..maxReplicas."
    );
    let cause = &status.details.unwrap().causes[0];
    assert_eq!(cause.field, "spec");
    assert_eq!(cause.reason, "FieldValueInvalid");

    let forbidden = widget(
        "w",
        json!({"replicas": 200, "minReplicas": 1, "maxReplicas": 200}),
    );
    let status = api_error(
        widgets
            .create(&PostParams::default(), &forbidden)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        status.message,
        "Widget.cel.example.com \"w\" is invalid: spec.maxReplicas: Forbidden: failed rule: self.maxReplicas <= 100"
    );
}

#[tokio::test]
async fn a_transition_rule_compares_an_update_with_the_stored_object() {
    let t = start().await;
    let widgets = establish(&t.client).await;
    // On create there is no oldSelf, so the transition rule does not run.
    widgets
        .create(
            &PostParams::default(),
            &widget(
                "w",
                json!({"replicas": 5, "minReplicas": 1, "maxReplicas": 10}),
            ),
        )
        .await
        .unwrap();
    let patch = Patch::Merge(json!({"spec": {"replicas": 3}}));
    let status = api_error(
        widgets
            .patch("w", &PatchParams::default(), &patch)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        status.message,
        "Widget.cel.example.com \"w\" is invalid: spec: Invalid value: \"object\": \
         replicas may not decrease, was 5"
    );
    let patch = Patch::Merge(json!({"spec": {"replicas": 7}}));
    widgets
        .patch("w", &PatchParams::default(), &patch)
        .await
        .unwrap();
}

#[tokio::test]
async fn status_updates_run_the_rules_on_status() {
    let t = start().await;
    let widgets = establish(&t.client).await;
    widgets
        .create(
            &PostParams::default(),
            &widget(
                "w",
                json!({"replicas": 5, "minReplicas": 1, "maxReplicas": 10}),
            ),
        )
        .await
        .unwrap();
    let patch = Patch::Merge(json!({"status": {"ready": -1}}));
    let status = api_error(
        widgets
            .patch_status("w", &PatchParams::default(), &patch)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        status.message,
        "Widget.cel.example.com \"w\" is invalid: status.ready: Invalid value: \"integer\": \
         ready must not be negative"
    );
}

#[tokio::test]
async fn a_rule_that_does_not_compile_refuses_the_definition() {
    let t = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let crd: CustomResourceDefinition =
        serde_json::from_value(definition(json!([{"rule": "self.replicas > other"}]))).unwrap();
    let status = api_error(crds.create(&PostParams::default(), &crd).await.unwrap_err());
    assert_eq!(status.code, 422);
    let cause = &status.details.unwrap().causes[0];
    assert_eq!(
        cause.field,
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    );
    assert!(
        cause.message.contains(
            "compilation failed: ERROR: <input>:1:17: undeclared reference to 'other' (in container '')"
        ),
        "{}",
        cause.message
    );
}
