use serde_json::{Value, json};

use super::fieldset::{FieldSet, PathElement};
use super::*;

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

#[test]
fn a_deployment_applied_by_kubectl_is_owned_in_upstreams_exact_fields_v1() {
    let write = deployment_write("kubectl", T0);
    let object = applied(&write, None, &nginx_config(2, "nginx:1.25"), false);
    assert_eq!(
        entries(&object),
        vec![json!({
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                ".": {},
                                "f:containerPort": {},
                            }},
                        }}},
                    },
                },
            },
        })]
    );
    assert_eq!(object["spec"]["replicas"], 2);
    assert_eq!(object["metadata"]["name"], "nginx");
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
fn reapplying_without_a_field_removes_it() {
    let write = deployment_write("kubectl", T0);
    let mut config = nginx_config(2, "nginx:1.25");
    config["metadata"]["labels"]["tier"] = json!("web");
    let first = applied(&write, None, &config, false);
    assert_eq!(first["metadata"]["labels"]["tier"], "web");

    let second = applied(
        &deployment_write("kubectl", T1),
        Some(&first),
        &nginx_config(2, "nginx:1.25"),
        false,
    );
    assert_eq!(second["metadata"]["labels"], json!({"app": "nginx"}));
    assert!(!fields(&second, "kubectl").has(&path(&["metadata", "labels", "tier"])));
    assert_eq!(
        entry(&second, "kubectl").map(|e| e["time"].clone()),
        Some(json!(T1))
    );
}

#[test]
fn a_field_dropped_from_the_config_stays_when_another_manager_owns_it() {
    let mut config = nginx_config(2, "nginx:1.25");
    config["metadata"]["labels"]["tier"] = json!("web");
    let first = applied(&deployment_write("kubectl", T0), None, &config, false);
    let shared = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "labels": {"tier": "web"}},
    });
    let second = applied(
        &deployment_write("labeller", T1),
        Some(&first),
        &shared,
        false,
    );
    let third = applied(
        &deployment_write("kubectl", T2),
        Some(&second),
        &nginx_config(2, "nginx:1.25"),
        false,
    );
    assert_eq!(third["metadata"]["labels"]["tier"], "web");
}

#[test]
fn reapplying_an_unchanged_config_keeps_the_entry_time() {
    let first = applied(
        &deployment_write("kubectl", T0),
        None,
        &nginx_config(2, "nginx:1.25"),
        false,
    );
    let again = applied(
        &deployment_write("kubectl", T1),
        Some(&first),
        &nginx_config(2, "nginx:1.25"),
        false,
    );
    assert_eq!(again, first);
}

#[test]
fn two_managers_applying_the_same_value_share_it_without_conflict() {
    let first = applied(
        &deployment_write("kubectl", T0),
        None,
        &nginx_config(2, "nginx:1.25"),
        false,
    );
    let mine = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx"}, "spec": {"replicas": 2},
    });
    let second = applied(
        &deployment_write("autoscaler", T1),
        Some(&first),
        &mine,
        false,
    );
    let replicas = path(&["spec", "replicas"]);
    assert!(fields(&second, "kubectl").has(&replicas));
    assert!(fields(&second, "autoscaler").has(&replicas));
    // Nothing changed, so (as upstream) the new entry has no time.
    assert_eq!(
        entry(&second, "autoscaler").map(|e| e.get("time").is_none()),
        Some(true)
    );
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
fn a_different_value_owned_by_another_manager_is_a_conflict_naming_both() {
    let live = created_by_client_side_apply();
    let err = apply(
        &deployment_write("kubectl", T1),
        Some(&live),
        &nginx_config(3, "nginx:1.25"),
        false,
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    assert_eq!(
        err.causes(),
        vec![json!({
            "reason": "FieldManagerConflict",
            "message": "conflict with \"kubectl-client-side-apply\" using apps/v1",
            "field": ".spec.replicas",
        })]
    );
    let status = err.to_status();
    assert_eq!(status["code"], 409);
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(status["details"]["causes"][0]["field"], ".spec.replicas");
}

#[test]
fn several_conflicts_are_listed_by_manager() {
    let live = created_by_client_side_apply();
    let err = apply(
        &deployment_write("kubectl", T1),
        Some(&live),
        &nginx_config(3, "nginx:1.26"),
        false,
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n\
         - .spec.replicas\n\
         - .spec.template.spec.containers[name=\"nginx\"].image"
    );
}

#[test]
fn force_moves_the_conflicting_field_to_the_applier() {
    let live = created_by_client_side_apply();
    let forced = applied(
        &deployment_write("kubectl", T1),
        Some(&live),
        &nginx_config(3, "nginx:1.25"),
        true,
    );
    let replicas = path(&["spec", "replicas"]);
    assert_eq!(forced["spec"]["replicas"], 3);
    assert!(fields(&forced, "kubectl").has(&replicas));
    assert!(!fields(&forced, "kubectl-client-side-apply").has(&replicas));
    // The shared, unchanged image stays owned by both.
    let image = path(&[
        "spec",
        "template",
        "spec",
        "containers",
        "k:{\"name\":\"nginx\"}",
        "image",
    ]);
    assert!(fields(&forced, "kubectl-client-side-apply").has(&image));
}

#[test]
fn kubectl_takes_over_fields_its_last_applied_annotation_describes() {
    let mut object = nginx_config(2, "nginx:1.25");
    let last = format!("{}\n", nginx_config(2, "nginx:1.25"));
    object["metadata"]["annotations"] = json!({ LAST_APPLIED: last });
    let live = track_update(
        &deployment_write("kubectl-client-side-apply", T0),
        None,
        &object,
    )
    .expect("tracked");
    let upgraded = applied(
        &deployment_write("kubectl", T1),
        Some(&live),
        &nginx_config(3, "nginx:1.25"),
        false,
    );
    assert_eq!(upgraded["spec"]["replicas"], 3);
    let annotation = upgraded["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .unwrap_or("");
    assert!(annotation.contains("\"replicas\":3"), "{annotation}");
    // Another manager gets no such pass.
    assert!(
        apply(
            &deployment_write("helm", T1),
            Some(&live),
            &nginx_config(3, "nginx:1.25"),
            false
        )
        .is_err()
    );
}

fn two_container_config(manager_container: &str, image: &str, env: &[(&str, &str)]) -> Value {
    let env: Vec<Value> = env
        .iter()
        .map(|(n, v)| json!({"name": n, "value": v}))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {"containers": [{
            "name": manager_container, "image": image, "env": env,
            "ports": [{"containerPort": 8080, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}],
        }]},
    })
}

#[test]
fn associative_lists_merge_item_by_item_and_ownership_is_per_item() {
    let pod = |m, t| Write::new("", "v1", "Pod", m, t);
    let first = applied(
        &pod("app", T0),
        None,
        &two_container_config("app", "app:1", &[("A", "1")]),
        false,
    );
    let second = applied(
        &pod("mesh", T1),
        Some(&first),
        &two_container_config("sidecar", "proxy:1", &[("B", "2")]),
        false,
    );
    let names: Vec<&str> = second["spec"]["containers"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["app", "sidecar"]);
    let app = path(&["spec", "containers", "k:{\"name\":\"app\"}"]);
    let sidecar = path(&["spec", "containers", "k:{\"name\":\"sidecar\"}"]);
    assert!(fields(&second, "app").has(&app) && !fields(&second, "app").has(&sidecar));
    assert!(fields(&second, "mesh").has(&sidecar) && !fields(&second, "mesh").has(&app));
    let udp = path(&[
        "spec",
        "containers",
        "k:{\"name\":\"app\"}",
        "ports",
        "k:{\"containerPort\":53,\"protocol\":\"UDP\"}",
    ]);
    assert!(fields(&second, "app").has(&udp));

    // The app manager adds an env var: merged into its container only, by name.
    let third = applied(
        &pod("app", T2),
        Some(&second),
        &two_container_config("app", "app:1", &[("A", "1"), ("C", "3")]),
        false,
    );
    assert_eq!(
        third["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
    );
    assert_eq!(
        third["spec"]["containers"][1]["env"],
        json!([{"name": "B", "value": "2"}])
    );

    // Dropping its container removes it, leaving the sidecar alone.
    let gone = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": []}});
    let fourth = applied(&pod("app", T2), Some(&third), &gone, false);
    assert_eq!(
        fourth["spec"]["containers"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(fourth["spec"]["containers"][0]["name"], "sidecar");
}

#[test]
fn a_duplicate_key_in_the_configuration_is_a_bad_request() {
    let mut config = two_container_config("app", "app:1", &[]);
    config["spec"]["containers"] =
        json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]);
    let live = applied(
        &Write::new("", "v1", "Pod", "m", T0),
        None,
        &two_container_config("a", "x", &[]),
        false,
    );
    let err = apply(
        &Write::new("", "v1", "Pod", "m", T1),
        Some(&live),
        &config,
        false,
    )
    .expect_err("refused");
    assert!(matches!(err, ApplyError::BadRequest(_)), "{err:?}");
}

#[test]
fn an_apply_in_the_wrong_version_or_with_managed_fields_is_a_bad_request() {
    let write = deployment_write("kubectl", T0);
    let mut config = nginx_config(1, "x");
    config["apiVersion"] = json!("apps/v1beta1");
    assert_eq!(
        apply(&write, None, &config, false),
        Err(ApplyError::BadRequest(
            "invalid object type: apps/v1beta1, Kind=Deployment".into()
        ))
    );
    let mut config = nginx_config(1, "x");
    config["kind"] = json!("ReplicaSet");
    assert_eq!(
        apply(&write, None, &config, false),
        Err(ApplyError::BadRequest(
            "invalid object type: apps/v1, Kind=ReplicaSet".into()
        ))
    );
    let mut config = nginx_config(1, "x");
    config["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        apply(&write, None, &config, false),
        Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".into()
        ))
    );
}

#[test]
fn a_create_is_owned_by_its_update_manager_as_upstream_marks_it() {
    let object = created_by_client_side_apply();
    let entry = entry(&object, "kubectl-client-side-apply")
        .cloned()
        .unwrap_or_default();
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["time"], T0);
    assert_eq!(
        entry["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {
                            ".": {},
                            "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}},
                        },
                    }}},
                },
            },
        })
    );
}

#[test]
fn an_update_moves_the_fields_it_changes_to_its_manager() {
    let live = created_by_client_side_apply();
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(5);
    let object =
        track_update(&deployment_write("kubectl-edit", T1), Some(&live), &edited).expect("tracked");
    let replicas = path(&["spec", "replicas"]);
    assert!(fields(&object, "kubectl-edit").has(&replicas));
    assert!(!fields(&object, "kubectl-client-side-apply").has(&replicas));
    let managers: Vec<Value> = entries(&object)
        .iter()
        .map(|e| e["manager"].clone())
        .collect();
    assert_eq!(
        managers,
        [json!("kubectl-client-side-apply"), json!("kubectl-edit")]
    );

    // A write that changes nothing leaves the entries as they were.
    let same = track_update(
        &deployment_write("kubectl-edit", T2),
        Some(&object),
        &object,
    )
    .expect("tracked");
    assert_eq!(same, object);
}

#[test]
fn removing_a_field_takes_it_from_every_manager() {
    let live = created_by_client_side_apply();
    let mut edited = live.clone();
    if let Some(labels) = edited["metadata"]["labels"].as_object_mut() {
        labels.remove("app");
    }
    let object =
        track_update(&deployment_write("kubectl-edit", T1), Some(&live), &edited).expect("tracked");
    assert!(
        !fields(&object, "kubectl-client-side-apply").has(&path(&["metadata", "labels", "app"]))
    );
    assert!(entry(&object, "kubectl-edit").is_none());
}

#[test]
fn managed_fields_sent_by_the_client_reset_or_are_ignored_when_unreadable() {
    let live = created_by_client_side_apply();
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([]);
    let object =
        track_update(&deployment_write("kubectl-edit", T1), Some(&live), &reset).expect("tracked");
    assert!(object["metadata"].get("managedFields").is_none());

    let mut garbage = live.clone();
    garbage["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Sideways"}]);
    let object = track_update(&deployment_write("kubectl-edit", T1), Some(&live), &garbage)
        .expect("tracked");
    assert_eq!(entries(&object), entries(&live));
}

#[test]
fn status_is_owned_separately_from_the_main_resource() {
    let live = created_by_client_side_apply();
    let mut with_status = live.clone();
    with_status["status"] = json!({"replicas": 2});
    let main = track_update(
        &deployment_write("controller", T1),
        Some(&live),
        &with_status,
    )
    .expect("tracked");
    assert!(entry(&main, "controller").is_none());

    let status_write = deployment_write("controller", T1).to_subresource("status");
    let object = track_update(&status_write, Some(&live), &with_status).expect("tracked");
    let entry = entry(&object, "controller").cloned().unwrap_or_default();
    assert_eq!(entry["subresource"], "status");
    assert_eq!(entry["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
}

#[test]
fn update_entries_are_capped_with_the_oldest_folded_into_ancient_changes() {
    let mut object = created_by_client_side_apply();
    for i in 0..12 {
        let mut next = object.clone();
        next["metadata"]["labels"][format!("l{i}")] = json!("x");
        let manager = format!("m{i:02}");
        let now = format!("2024-05-02T00:00:{i:02}Z");
        object =
            track_update(&deployment_write(&manager, &now), Some(&object), &next).expect("tracked");
    }
    let updates = entries(&object);
    assert_eq!(updates.len(), 10);
    assert!(updates.iter().any(|e| e["manager"] == "ancient-changes"));
    assert!(updates.iter().any(|e| e["manager"] == "m11"));
}

#[test]
fn deeply_nested_input_is_refused_without_overflowing_the_stack() {
    let mut deep = json!(1);
    for _ in 0..300 {
        deep = json!({ "a": deep });
    }
    let mut config = nginx_config(1, "x");
    config["spec"]["deep"] = deep.clone();
    assert!(apply(&deployment_write("m", T0), None, &config, false).is_err());
    let mut object = nginx_config(1, "x");
    object["spec"]["deep"] = deep;
    assert!(track_update(&deployment_write("m", T0), None, &object).is_err());
}

#[test]
fn custom_resources_merge_maps_by_key_and_replace_lists() {
    let write = Write::new("example.com", "v1", "Widget", "kubectl", T0);
    let config = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "finalizers": ["a"]},
        "spec": {"size": 1, "tags": ["a"], "nested": {"x": 1}},
    });
    let object = applied(&write, None, &config, false);
    let entry = entry(&object, "kubectl").cloned().unwrap_or_default();
    assert_eq!(
        entry["fieldsV1"],
        json!({
            "f:metadata": {"f:finalizers": {"v:\"a\"": {}}},
            "f:spec": {"f:nested": {"f:x": {}}, "f:size": {}, "f:tags": {}},
        })
    );
}

#[test]
fn service_ports_default_their_protocol_key_and_finalizers_are_a_set() {
    let write = Write::new("", "v1", "Service", "kubectl", T0);
    let config = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "finalizers": ["example.com/hold"]},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    });
    let object = applied(&write, None, &config, false);
    let entry = entry(&object, "kubectl").cloned().unwrap_or_default();
    assert_eq!(
        entry["fieldsV1"],
        json!({
            "f:metadata": {"f:finalizers": {"v:\"example.com/hold\"": {}}},
            "f:spec": {
                "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {
                    ".": {}, "f:port": {}, "f:targetPort": {},
                }},
                "f:selector": {},
            },
        })
    );
}

#[test]
fn entries_are_sorted_with_applies_first_then_by_time_and_manager() {
    let live = created_by_client_side_apply();
    let mine = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "annotations": {"a": "b"}},
    });
    let object = applied(&deployment_write("zeta", T2), Some(&live), &mine, false);
    let mut edited = object.clone();
    edited["metadata"]["labels"]["x"] = json!("y");
    let object =
        track_update(&deployment_write("alpha", T1), Some(&object), &edited).expect("tracked");
    let order: Vec<(Value, Value)> = entries(&object)
        .iter()
        .map(|e| (e["operation"].clone(), e["manager"].clone()))
        .collect();
    assert_eq!(
        order,
        [
            (json!("Apply"), json!("zeta")),
            (json!("Update"), json!("kubectl-client-side-apply")),
            (json!("Update"), json!("alpha")),
        ]
    );
}

#[test]
fn atomic_selectors_and_key_references_are_owned_whole() {
    let write = Write::new("", "v1", "Pod", "kubectl", T0);
    let config = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "nodeSelector": {"disk": "ssd"},
            "containers": [{"name": "c", "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}],
            "topologySpreadConstraints": [{
                "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "maxSkew": 1,
                "labelSelector": {"matchLabels": {"app": "p"}},
            }],
        },
    });
    let object = applied(&write, None, &config, false);
    let set = fields(&object, "kubectl");
    assert!(set.has(&path(&["spec", "nodeSelector"])));
    assert!(set.has(&path(&[
        "spec",
        "containers",
        "k:{\"name\":\"c\"}",
        "env",
        "k:{\"name\":\"K\"}",
        "valueFrom",
        "secretKeyRef",
    ])));
    assert!(set.has(&path(&[
        "spec",
        "topologySpreadConstraints",
        "k:{\"topologyKey\":\"zone\",\"whenUnsatisfiable\":\"DoNotSchedule\"}",
        "labelSelector",
    ])));
}

#[test]
fn creating_a_custom_resource_owns_its_spec_itself() {
    let write = Write::new("example.com", "v1", "Widget", "kubectl-create", T0);
    let object = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"size": 1},
    });
    let object = track_update(&write, None, &object).expect("tracked");
    let entry = entry(&object, "kubectl-create")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:spec": {".": {}, "f:size": {}}})
    );
}
