//! Server-side apply.

use serde_json::json;

use super::*;

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

/// Upstream's own merge cases for a set of strings (structured-merge-diff's
/// `typed/merge_test.go`, "struct grab bag"): live, configuration, merged.
#[test]
fn associative_lists_merge_in_upstreams_order() {
    let finalizers = schema::for_kind("", "Pod")
        .field("metadata")
        .field("finalizers");
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (&["a", "b", "c"], &["a", "b"], &["a", "b", "c"]),
        (&["a", "b"], &["a", "b", "c"], &["a", "b", "c"]),
        (&["a", "b", "c"], &[], &["a", "b", "c"]),
        (&["a", "b"], &["b", "a"], &["b", "a"]),
        (
            &["a", "b", "c"],
            &["c", "d", "e", "f"],
            &["a", "b", "c", "d", "e", "f"],
        ),
        (
            &["a", "b", "c", "g", "f"],
            &["c", "d", "e", "f"],
            &["a", "b", "c", "g", "d", "e", "f"],
        ),
        (
            &["c", "d", "e", "f"],
            &["a", "c", "e"],
            &["a", "c", "d", "e", "f"],
        ),
        (
            &["a", "b", "c", "x", "y", "z"],
            &["d", "e", "f", "x", "y", "z"],
            &["a", "b", "c", "d", "e", "f", "x", "y", "z"],
        ),
        (
            &["c", "a", "g", "f"],
            &["c", "f", "a", "g"],
            &["c", "f", "a", "g"],
        ),
        (
            &["a", "b", "c", "d"],
            &["d", "e", "f", "a"],
            &["b", "c", "d", "e", "f", "a"],
        ),
        (
            &["c", "d", "e", "f", "g", "h", "i", "j"],
            &["2", "h", "3", "e", "4", "k", "l"],
            &[
                "c", "d", "f", "g", "2", "h", "i", "j", "3", "e", "4", "k", "l",
            ],
        ),
        (
            &["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"],
            &["1", "b", "2", "h", "3", "e", "4", "k", "l"],
            &[
                "a", "1", "b", "c", "d", "f", "g", "2", "h", "i", "j", "3", "e", "4", "k", "l",
            ],
        ),
    ];
    for (live, config, merged) in cases {
        let got = typed::merge(Some(&json!(live)), Some(&json!(config)), finalizers);
        assert_eq!(got, Ok(Some(json!(merged))), "{live:?} + {config:?}");
    }
}
