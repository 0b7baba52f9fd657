use serde_json::{Value, json};

use super::fieldset::{FieldSet, PathElement};
use super::*;

mod applying;
mod tracking;

const T0: &str = "2024-05-01T10:00:00Z";
const T1: &str = "2024-05-01T11:00:00Z";
const T2: &str = "2024-05-01T12:00:00Z";

fn deployment_write<'a>(manager: &'a str, now: &'a str) -> Write<'a> {
    Write::new("apps", "v1", "Deployment", manager, now)
}

fn nginx_config(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{
                    "name": "nginx",
                    "image": image,
                    "ports": [{"containerPort": 80}],
                }]},
            },
        },
    })
}

fn entries(object: &Value) -> Vec<Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(object: &'a Value, manager: &str) -> Option<&'a Value> {
    object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
}

fn fields(object: &Value, manager: &str) -> FieldSet {
    let entry = entry(object, manager).expect("entry for manager");
    FieldSet::from_fields_v1(&entry["fieldsV1"]).expect("FieldsV1")
}

fn path(parts: &[&str]) -> Vec<PathElement> {
    parts
        .iter()
        .map(|p| match PathElement::decode(p) {
            Ok(Some(e)) => e,
            _ => PathElement::Field((*p).to_owned()),
        })
        .collect()
}

fn applied(write: &Write<'_>, live: Option<&Value>, config: &Value, force: bool) -> Value {
    match apply(write, live, config, force) {
        Ok(v) => v,
        Err(e) => panic!("apply failed: {e}"),
    }
}

/// A Deployment created by `kubectl create`/client-side apply: an `Update` entry.
fn created_by_client_side_apply() -> Value {
    let write = deployment_write("kubectl-client-side-apply", T0);
    let mut object = nginx_config(2, "nginx:1.25");
    object["metadata"]["uid"] = json!("u-1");
    match track_update(&write, None, &object) {
        Ok(v) => v,
        Err(e) => panic!("track_update failed: {e}"),
    }
}

#[test]
fn fields_v1_round_trips_through_the_field_set() {
    let encoded = json!({
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:image": {}}},
                   "f:finalizers": {"v:\"x\"": {}}, "f:items": {"i:3": {}}},
    });
    let set = FieldSet::from_fields_v1(&encoded).expect("decodes");
    assert!(set.has(&path(&["metadata", "labels"])));
    assert!(!set.has(&path(&["metadata"])));
    assert!(set.has(&path(&[
        "spec",
        "containers",
        "k:{\"name\":\"a\"}",
        "image"
    ])));
    assert_eq!(set.to_fields_v1(), encoded);
    let shown: Vec<String> = set
        .paths()
        .iter()
        .map(|p| fieldset::path_string(p))
        .collect();
    assert!(shown.contains(&".spec.containers[name=\"a\"].image".to_owned()));
    assert!(shown.contains(&".spec.finalizers[=\"x\"]".to_owned()));
}

#[test]
fn malformed_fields_v1_is_an_error_not_a_panic() {
    for bad in [
        json!([]),
        json!({"f:a": 1}),
        json!({"k:{": {}}),
        json!({"q": {}}),
    ] {
        assert!(FieldSet::from_fields_v1(&bad).is_err(), "{bad}");
    }
    // Unknown element kinds are skipped as upstream does.
    assert!(FieldSet::from_fields_v1(&json!({"z:what": {}})).is_ok());
}

#[test]
fn in_place_set_operations_agree_with_the_copying_ones() {
    let set = |v: Value| FieldSet::from_fields_v1(&v).expect("decodes");
    let a = set(
        json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}, "f:name": {}},
                      "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:x": {}}}},
                      "f:status": {"f:phase": {}}}),
    );
    let b = set(
        json!({"f:metadata": {"f:labels": {"f:tier": {}}, "f:uid": {}},
                      "f:spec": {".": {}, "f:template": {"f:spec": {"f:y": {}}}}, "f:data": {}}),
    );
    let mut absorbed = a.clone();
    absorbed.absorb(b.clone());
    assert_eq!(absorbed, a.union(&b));
    for other in [
        &b,
        &set(json!({"f:status": {}, "f:metadata": {"f:labels": {"f:app": {}}}})),
    ] {
        let mut removed = a.clone();
        removed.remove_all(other, false);
        assert_eq!(removed, a.difference(other));
        let mut removed = a.clone();
        removed.remove_all(other, true);
        assert_eq!(removed, a.recursive_difference(other));
    }
}
