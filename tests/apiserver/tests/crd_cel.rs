//! CRD validation rules (`x-kubernetes-validations`) on custom resources: a failed rule
//! refuses the write with a 422 naming the rule's field and message, transition rules compare
//! with the stored object on update, messageExpression builds the message, status updates
//! run the rules too, and a rule that does not compile refuses the definition.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use rkube_apiserver_tests::real_crds::invalid_causes as causes;
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
         "messageExpression": "'replicas may not decrease, was %d'.format([oldSelf.replicas])"},
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
        "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    );
    assert!(
        cause.message.contains(
            "compilation failed: ERROR: <input>:1:17: undeclared reference to 'other' (in container '')"
        ),
        "{}",
        cause.message
    );
}

/// A definition whose `spec` has the given properties, for the cost checks.
fn definition_with_spec(properties: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("gadgets.{GROUP}")},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "kind": "Gadget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": properties},
                }}},
            }],
        },
    })
}

const QUADRATIC: &str = "self.all(x, self.all(y, x == y))";
const TAGS_RULE: &str = "spec.validation.openAPIV3Schema.properties[spec].properties[tags].x-kubernetes-validations[0].rule";
const ADVICE: &str = "(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)";

async fn create_definition(
    client: &kube::Client,
    crd: Value,
) -> Result<CustomResourceDefinition, kube::core::Status> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(crd).unwrap();
    crds.create(&PostParams::default(), &crd)
        .await
        .map_err(api_error)
}

#[tokio::test]
async fn a_rule_over_the_cost_budget_refuses_the_definition() {
    let t = start().await;
    let spec = json!({"tags": {"type": "array", "items": {"type": "string"},
        "x-kubernetes-validations": [{"rule": QUADRATIC}]}});
    let status = create_definition(&t.client, definition_with_spec(spec))
        .await
        .unwrap_err();
    let causes = causes(&status);
    assert!(
        causes.contains(&format!(
            "{TAGS_RULE}: Forbidden: estimated rule cost exceeds budget by factor of more than 100x {ADVICE}"
        )),
        "{causes:#?}"
    );
}

#[tokio::test]
async fn bounds_on_the_list_and_its_strings_let_the_same_rule_through() {
    let t = start().await;
    let spec = json!({"tags": {"type": "array", "maxItems": 10,
        "items": {"type": "string", "maxLength": 10},
        "x-kubernetes-validations": [{"rule": QUADRATIC}]}});
    create_definition(&t.client, definition_with_spec(spec))
        .await
        .unwrap();
}

#[tokio::test]
async fn rules_that_together_exceed_the_definition_budget_refuse_it() {
    let t = start().await;
    // Each match on an unbounded string is estimated at 8,808,045, under the budget of one
    // rule; twelve of them are 105,696,540, over the budget of a schema.
    let pattern = format!("^{}$", "a".repeat(110));
    let rules: Vec<Value> = (0..12)
        .map(|_| json!({"rule": format!("self.matches('{pattern}')")}))
        .collect();
    let spec = json!({"name": {"type": "string", "x-kubernetes-validations": rules}});
    let status = create_definition(&t.client, definition_with_spec(spec))
        .await
        .unwrap_err();
    let causes = causes(&status);
    assert!(
        causes.contains(&format!(
            "spec.validation.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of 1.056965x {ADVICE}"
        )),
        "{causes:#?}"
    );
    let contributors = causes
        .iter()
        .filter(|c| c.ends_with("Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema"))
        .count();
    assert_eq!(contributors, 4, "{causes:#?}");
}

#[tokio::test]
async fn an_update_keeps_an_over_budget_rule_it_had_but_may_not_add_one() {
    // A definition stored before its rule's cost was checked: one string match per item of
    // an unbounded list is 5.6 times the budget of a rule, but within a schema's budget.
    let items = json!({"type": "string", "maxLength": 64,
        "x-kubernetes-validations": [{"rule": "self.matches('^[a-z]+$')"}]});
    let spec = json!({"tags": {"type": "array", "items": items}});
    let mut stored = definition_with_spec(spec);
    stored["metadata"]["uid"] = json!("5f0c7d52-0000-4000-8000-000000000001");
    stored["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    stored["metadata"]["generation"] = json!(1);
    stored["spec"]["conversion"] = json!({"strategy": "None"});
    let dir = tempfile::tempdir().unwrap();
    let store = rkube_apiserver_tests::open_store(dir.path()).await;
    store
        .create(
            &format!("/registry/apiextensions.k8s.io/customresourcedefinitions/gadgets.{GROUP}"),
            serde_json::to_vec(&stored).unwrap(),
            None,
        )
        .await
        .unwrap();
    let server =
        rkube_apiserver::ApiServer::start(rkube_apiserver_tests::test_config(dir.path()), store)
            .await
            .unwrap();

    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let name = format!("gadgets.{GROUP}");
    let labelled = json!({"metadata": {"labels": {"team": "a"}}});
    crds.patch(&name, &PatchParams::default(), &Patch::Merge(&labelled))
        .await
        .unwrap();

    let mut crd = serde_json::to_value(crds.get(&name).await.unwrap()).unwrap();
    let rules = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["tags"]["items"]["x-kubernetes-validations"];
    rules
        .as_array_mut()
        .unwrap()
        .push(json!({"rule": "self.matches('^[a-z0-9]+$')"}));
    // A patch rather than a replace: the definition controller may update the status
    // between the read and the write.
    let versions = json!({"spec": {"versions": crd["spec"]["versions"]}});
    let status = api_error(
        crds.patch(&name, &PatchParams::default(), &Patch::Merge(&versions))
            .await
            .unwrap_err(),
    );
    let added = "spec.validation.openAPIV3Schema.properties[spec].properties[tags].items.x-kubernetes-validations[1].rule";
    let causes = causes(&status);
    assert!(
        causes.iter().any(|c| c.starts_with(&format!(
            "{added}: Forbidden: estimated rule cost exceeds budget by factor of"
        ))),
        "{causes:#?}"
    );
}

/// Date-time fields are timestamps in rules, durations durations: `end` at 09:00 UTC follows
/// `start` at 10:00+02:00 (08:00 UTC), though its text sorts first.
#[tokio::test]
async fn rules_see_date_time_fields_as_timestamps_and_durations_as_durations() {
    let t = start().await;
    let spec = json!({
        "start": {"type": "string", "format": "date-time"},
        "end": {"type": "string", "format": "date-time"},
        "grace": {"type": "string", "format": "duration", "maxLength": 16},
    });
    let mut crd = definition_with_spec(spec);
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] = json!([
        {"rule": "self.end > self.start", "message": "end must follow start"},
        {"rule": "!has(self.grace) || self.grace <= duration('1h')",
         "message": "grace is at most an hour"},
    ]);
    create_definition(&t.client, crd).await.unwrap();
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Gadget"), "gadgets");
    let gadgets: Api<DynamicObject> = Api::namespaced_with(t.client.clone(), "default", &resource);
    let gadget = |name: &str, spec: Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": format!("{GROUP}/v1"), "kind": "Gadget",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap()
    };
    let fine = json!({"start": "2024-01-01T10:00:00+02:00", "end": "2024-01-01T09:00:00Z",
                      "grace": "30m"});
    let mut created = None;
    for _ in 0..100 {
        match gadgets
            .create(&PostParams::default(), &gadget("fine", fine.clone()))
            .await
        {
            Ok(made) => {
                created = Some(made);
                break;
            }
            // Served once the definition is established.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(created.is_some(), "the gadget was never created");
    let late = json!({"start": "2024-01-01T10:00:00Z", "end": "2024-01-01T11:00:00+02:00"});
    let status = api_error(
        gadgets
            .create(&PostParams::default(), &gadget("late", late))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        causes(&status),
        ["spec: Invalid value: \"object\": end must follow start"]
    );
    let long = json!({"start": "2024-01-01T10:00:00Z", "end": "2024-01-01T11:00:00Z",
                      "grace": "1h0m1s"});
    let status = api_error(
        gadgets
            .create(&PostParams::default(), &gadget("long", long))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        causes(&status),
        ["spec: Invalid value: \"object\": grace is at most an hour"]
    );
}
