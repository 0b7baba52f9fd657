//! Tracking ordinary writes.

use serde_json::json;

use super::*;

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

#[test]
fn odd_inputs_give_errors_or_objects_but_never_panic() {
    let odd = [
        json!(null),
        json!([1, 2]),
        json!("text"),
        json!({"metadata": "not a map"}),
        json!({"metadata": {"managedFields": [{"operation": "Apply", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"k:5": {}, "v:[": {}}}]}}),
        json!({"metadata": {"managedFields": "nope"}, "spec": {"containers": [null, 3, {"image": "x"}]}}),
        json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": {"name": "a"}, "volumes": [{"name": 1}]}}),
    ];
    let write = Write::new("", "v1", "Pod", "m", T0);
    for a in &odd {
        for b in &odd {
            let _ = apply(&write, Some(a), b, false);
            let _ = apply(&write, Some(a), b, true);
            let _ = track_update(&write, Some(a), b);
            let _ = track_update(&write.to_subresource("status"), Some(a), b);
        }
        let _ = apply(&write, None, a, false);
        let _ = track_update(&write, None, a);
    }
}

#[test]
fn objects_nested_up_to_the_limit_are_handled() {
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!({ "a": deep });
    }
    let mut object = nginx_config(1, "x");
    object["spec"]["deep"] = deep;
    let tracked = track_update(&deployment_write("m", T0), None, &object).expect("tracked");
    let config = {
        let mut c = object.clone();
        c["spec"]["replicas"] = json!(1);
        c
    };
    assert!(apply(&deployment_write("m", T1), Some(&tracked), &config, true).is_ok());
}

#[test]
fn a_scale_write_is_recorded_on_the_parent_with_its_subresource() {
    let live = created_by_client_side_apply();
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(4);
    let write = deployment_write("kubectl", T1).to_subresource("scale");
    let object = track_update(&write, Some(&live), &scaled).expect("tracked");
    let entry = object["metadata"]["managedFields"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["subresource"] == "scale"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(entry["manager"], "kubectl");
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert!(!fields(&object, "kubectl-client-side-apply").has(&path(&["spec", "replicas"])));
}

/// A create's fast path records exactly what the general comparison against the kind's
/// empty object records, whatever the object's shape.
#[test]
fn a_create_records_the_same_fields_as_the_general_comparison() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "d", "labels": {"a": "b"}, "annotations": {},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "u"}]},
        "spec": {
            "containers": [
                {"name": "c", "image": "i", "ports": [{"containerPort": 80}, {"containerPort": 80}],
                 "resources": {"requests": {"cpu": "1"}}, "env": [], "args": ["a", "a"]},
                {"name": "d", "image": "j", "securityContext": {}},
            ],
            "initContainers": null,
            "nodeSelector": {},
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "volumes": [{"name": "v", "emptyDir": {}}],
        },
        "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]},
    });
    let cases: Vec<(Write<'_>, Value)> = vec![
        (
            Write::new("", "v1", "Pod", "kubectl-create", T0),
            pod.clone(),
        ),
        (
            Write::new("", "v1", "Pod", "m", T0),
            json!({"metadata": {"name": "p"}, "spec": {}}),
        ),
        (
            Write::new("", "v1", "Pod", "m", T0),
            json!({"metadata": {"name": "p"}, "spec": null, "status": {}}),
        ),
        (
            Write::new("", "v1", "Pod", "m", T0),
            json!({"metadata": {"name": "p"}, "spec": {"containers": []}}),
        ),
        (
            Write::new("", "v1", "Pod", "m", T0),
            json!({"metadata": {"name": "p"}, "spec": "odd"}),
        ),
        (
            Write::new("", "v1", "Pod", "m", T0).to_subresource("status"),
            pod.clone(),
        ),
        (deployment_write("kubectl", T1), nginx_config(3, "nginx:1")),
        (
            Write::new("", "v1", "Node", "kubelet", T0),
            json!({
                "metadata": {"name": "n"}, "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
                "status": {"capacity": {"cpu": "4"}, "nodeInfo": {}, "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}},
            }),
        ),
        (
            Write::new("", "v1", "Service", "m", T0),
            json!({
                "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "selector": {"a": "b"}},
                "status": {"loadBalancer": {}},
            }),
        ),
        (
            Write::new("", "v1", "ConfigMap", "m", T0),
            json!({"metadata": {"name": "c"}, "data": {"k": "v"}}),
        ),
        (
            Write::new("batch", "v1", "CronJob", "m", T0),
            json!({
                "metadata": {"name": "c"},
                "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                    "containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}}}}},
            }),
        ),
        (
            Write::new("example.com", "v1", "Widget", "m", T0),
            json!({"metadata": {"name": "w"}, "spec": {"size": 1}}),
        ),
        // managedFields given with the create: kept, reset, or unreadable.
        (
            Write::new("", "v1", "ConfigMap", "m", T0),
            json!({"metadata": {"name": "c", "managedFields": [
            {"manager": "other", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {"f:x": {}}}}]}, "data": {"k": "v", "x": "y"}}),
        ),
        (
            Write::new("", "v1", "ConfigMap", "m", T0),
            json!({"metadata": {"name": "c", "managedFields": []}, "data": {"k": "v"}}),
        ),
        (
            Write::new("", "v1", "ConfigMap", "m", T0),
            json!({"metadata": {"name": "c", "managedFields": "bad"}, "data": {"k": "v"}}),
        ),
    ];
    for (write, object) in cases {
        let general = track_update(&write, None, &object).unwrap();
        let fast = track_create(&write, object.clone()).unwrap();
        assert_eq!(fast, general, "create of {object}");
    }
}

#[test]
fn creates_of_one_shape_reuse_the_comparison_and_differ_where_their_fields_do() {
    let pod = |name: &str, app: &str, container: &str, port: i64, selector: Value| {
        json!({
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {
                "containers": [{"name": container, "image": "nginx", "ports": [{"containerPort": port}],
                                "env": [{"name": "A", "value": name}]}],
                "nodeSelector": selector,
            },
        })
    };
    let objects = [
        pod("a", "x", "c", 80, json!({"zone": "z1"})),
        // The same shape: another name, label value and env value.
        pod("b", "y", "c", 80, json!({"zone": "z2"})),
        // Values that name paths: a container's name, a port's key.
        pod("c", "x", "d", 80, json!({"zone": "z1"})),
        pod("d", "x", "c", 81, json!({"zone": "z1"})),
        // Another selector key, an empty selector, a null one.
        pod("e", "x", "c", 80, json!({"rack": "r1"})),
        pod("f", "x", "c", 80, json!({})),
        pod("g", "x", "c", 80, Value::Null),
    ];
    for (i, now) in [T0, T1].into_iter().enumerate() {
        for manager in ["m1", "m2"] {
            for object in &objects {
                let write = Write::new("", "v1", "Pod", manager, now);
                let general = track_update(&write, None, object).unwrap();
                let fast = track_create(&write, object.clone()).unwrap();
                assert_eq!(fast, general, "round {i}, {manager}: create of {object}");
                assert_eq!(entry(&fast, manager).unwrap()["time"], now);
            }
        }
    }
    // The remembered result belongs to the write: another kind's schema is not confused
    // with the pod's even for the same object.
    let write = Write::new("example.com", "v1", "Widget", "m1", T0);
    let general = track_update(&write, None, &objects[0]).unwrap();
    assert_eq!(track_create(&write, objects[0].clone()).unwrap(), general);
}
