use serde_json::{Value, json};

use super::*;

/// One strategic merge patch and the object it must produce.
struct Case {
    what: &'static str,
    group: &'static str,
    kind: &'static str,
    doc: Value,
    patch: Value,
    want: Value,
}

fn case(what: &'static str, kind: &'static str, doc: Value, patch: Value, want: Value) -> Case {
    let group = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps",
        "CronJob" | "Job" => "batch",
        "PodDisruptionBudget" => "policy",
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
            "admissionregistration.k8s.io"
        }
        "Role" => "rbac.authorization.k8s.io",
        _ => "",
    };
    Case {
        what,
        group,
        kind,
        doc,
        patch,
        want,
    }
}

fn run(cases: Vec<Case>) {
    for c in cases {
        match strategic_merge_patch(c.group, c.kind, &c.doc, &c.patch) {
            Ok(got) => assert_eq!(got, c.want, "{}", c.what),
            Err(e) => panic!("{}: {e:?}", c.what),
        }
    }
}

fn pod_spec(containers: Value) -> Value {
    json!({"spec": {"containers": containers}})
}

fn in_template(kind: &str, pod_spec: Value) -> Value {
    match kind {
        "CronJob" => json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec}}}}}),
        _ => json!({"spec": {"template": {"spec": pod_spec}}}),
    }
}

#[test]
fn the_strategic_merge_patch_document_examples_apply() {
    run(vec![
        case(
            "a container is added by name, ahead of the server's (as upstream orders it)",
            "Pod",
            pod_spec(json!([{"name": "nginx", "image": "nginx-1.0"}])),
            pod_spec(json!([{"name": "log-tailer", "image": "log-tailer-1.0"}])),
            pod_spec(json!([
                {"name": "log-tailer", "image": "log-tailer-1.0"},
                {"name": "nginx", "image": "nginx-1.0"}
            ])),
        ),
        case(
            "$patch: replace in a map takes the map literally",
            "Pod",
            json!({"spec": {"containers": [{"name": "a"}], "hostname": "h"}}),
            json!({"spec": {"$patch": "replace", "containers": [{"name": "nginx", "image": "nginx-1.0"}]}}),
            json!({"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}]}}),
        ),
        case(
            "$patch: replace as a list item replaces the list",
            "Pod",
            pod_spec(json!([{"name": "a", "image": "a"}, {"name": "nginx", "image": "old"}])),
            pod_spec(json!([{"name": "nginx", "image": "nginx-1.0"}, {"$patch": "replace"}])),
            pod_spec(json!([{"name": "nginx", "image": "nginx-1.0"}])),
        ),
        case(
            "$patch: delete as a list item deletes the items with that key",
            "Pod",
            pod_spec(json!([{"name": "nginx", "image": "nginx-0.9"}, {"name": "log-tailer"}])),
            pod_spec(json!([
                {"name": "nginx", "image": "nginx-1.0"},
                {"$patch": "delete", "name": "log-tailer"}
            ])),
            pod_spec(json!([{"name": "nginx", "image": "nginx-1.0"}])),
        ),
        case(
            "$patch: delete in a map empties it; null removes it",
            "Deployment",
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}, "type": null}}}),
            json!({"spec": {"strategy": {"rollingUpdate": {}}}}),
        ),
        case(
            "$deleteFromPrimitiveList removes scalars from a set",
            "Pod",
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "c"]}}),
            json!({"metadata": {"finalizers": ["a"]}}),
        ),
        case(
            "$setElementOrder reorders a list of scalars",
            "Pod",
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"]}}),
            json!({"metadata": {"finalizers": ["b", "c", "a"]}}),
        ),
        case(
            "$setElementOrder reorders a list of maps by merge key",
            "Pod",
            pod_spec(json!([{"name": "a", "image": "1"}, {"name": "b"}, {"name": "c"}])),
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}]}}),
            pod_spec(json!([{"name": "b"}, {"name": "c"}, {"name": "a", "image": "1"}])),
        ),
        case(
            "$retainKeys clears the union members it does not list",
            "Deployment",
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
        ),
    ]);
}

#[test]
fn merging_lists_add_replace_and_delete_items_by_their_merge_key() {
    let container = |env: Value| {
        pod_spec(json!([{"name": "app", "image": "app:1", "env": env,
            "ports": [{"containerPort": 80, "protocol": "TCP"}]}]))
    };
    run(vec![
        case(
            "an item with a known key merges into it",
            "Pod",
            pod_spec(json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}])),
            pod_spec(json!([{"name": "b", "image": "b:2"}])),
            pod_spec(json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}])),
        ),
        case(
            "env inside a merged container merges by name, keeping the rest",
            "Pod",
            container(json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])),
            pod_spec(
                json!([{"name": "app", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]),
            ),
            container(json!([
                {"name": "A", "value": "1"},
                {"name": "B", "value": "3"},
                {"name": "C", "value": "4"}
            ])),
        ),
        case(
            "null inside a merged item deletes the field",
            "Pod",
            container(json!([{"name": "A", "value": "1"}])),
            pod_spec(json!([{"name": "app", "env": [{"name": "A", "value": null}]}])),
            container(json!([{"name": "A"}])),
        ),
        case(
            "container ports merge by containerPort",
            "Pod",
            pod_spec(json!([{"name": "app", "ports": [{"containerPort": 80, "name": "http"}]}])),
            pod_spec(
                json!([{"name": "app", "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]}]),
            ),
            pod_spec(json!([{"name": "app", "ports": [
                {"containerPort": 80, "name": "http", "protocol": "TCP"},
                {"containerPort": 443}
            ]}])),
        ),
        case(
            "volume mounts merge by mountPath and volumes by name",
            "Pod",
            json!({"spec": {
                "volumes": [{"name": "data", "emptyDir": {}}],
                "containers": [{"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]
            }}),
            json!({"spec": {
                "volumes": [{"name": "cfg", "configMap": {"name": "c"}}],
                "containers": [{"name": "app", "volumeMounts": [{"name": "cfg", "mountPath": "/d", "readOnly": true}]}]
            }}),
            json!({"spec": {
                "volumes": [{"name": "cfg", "configMap": {"name": "c"}}, {"name": "data", "emptyDir": {}}],
                "containers": [{"name": "app", "volumeMounts": [{"name": "cfg", "mountPath": "/d", "readOnly": true}]}]
            }}),
        ),
        case(
            "a list without a strategy (tolerations) is replaced",
            "Pod",
            json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}}),
            json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}),
            json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}),
        ),
        case(
            "a new item lands before the server items it was not placed after",
            "Pod",
            pod_spec(json!([{"name": "1"}, {"name": "2", "value": 2}])),
            pod_spec(json!([{"name": "2", "value": 3}, {"name": "3"}])),
            pod_spec(json!([{"name": "1"}, {"name": "2", "value": 3}, {"name": "3"}])),
        ),
        case(
            "$setElementOrder places new and server items together",
            "Pod",
            pod_spec(json!([{"name": "1", "other": "a"}, {"name": "2", "other": "b"}])),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "1"}, {"name": "4"}, {"name": "2"}, {"name": "3"}],
                "containers": [{"name": "4", "value": 4}, {"name": "3", "value": 3}]
            }}),
            pod_spec(json!([
                {"name": "1", "other": "a"},
                {"name": "4", "value": 4},
                {"name": "2", "other": "b"},
                {"name": "3", "value": 3}
            ])),
        ),
        case(
            "a deletion and an addition in one list with an element order",
            "Pod",
            pod_spec(
                json!([{"name": "1"}, {"name": "2", "other": "b"}, {"name": "4", "other": "c"}]),
            ),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "2"}, {"name": "3"}],
                "containers": [{"name": "3"}, {"name": "1", "$patch": "delete"}]
            }}),
            pod_spec(
                json!([{"name": "2", "other": "b"}, {"name": "4", "other": "c"}, {"name": "3"}]),
            ),
        ),
    ]);
}

#[test]
fn directives_work_inside_merged_items_and_nested_maps() {
    run(vec![
        case(
            "$retainKeys in a volume switches its source",
            "Pod",
            json!({"spec": {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "other", "emptyDir": {}}]}}),
            json!({"spec": {"volumes": [{"name": "data", "$retainKeys": ["configMap", "name"], "configMap": {"name": "c"}}]}}),
            json!({"spec": {"volumes": [{"name": "data", "configMap": {"name": "c"}}, {"name": "other", "emptyDir": {}}]}}),
        ),
        case(
            "$patch: replace on labels replaces the map",
            "ConfigMap",
            json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
            json!({"metadata": {"name": "c", "labels": {"c": "3"}}}),
        ),
        case(
            "an owner reference is deleted by uid",
            "ConfigMap",
            json!({"metadata": {"ownerReferences": [{"uid": "1"}, {"uid": "2"}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "1", "$patch": "delete"}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "2"}]}}),
        ),
        case(
            "$deleteFromPrimitiveList also works on a list that is otherwise replaced",
            "Pod",
            pod_spec(json!([{"name": "app", "args": ["-a", "-b", "-a"]}])),
            pod_spec(json!([{"name": "app", "$deleteFromPrimitiveList/args": ["-a"]}])),
            pod_spec(json!([{"name": "app", "args": ["-b"]}])),
        ),
        case(
            "service ports follow $setElementOrder",
            "Service",
            json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}}),
            json!({"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}]}}),
            json!({"spec": {"ports": [{"port": 443}, {"port": 80}]}}),
        ),
        case(
            "pod status conditions merge by type",
            "Pod",
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}], "podIPs": [{"ip": "10.0.0.1"}]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}], "podIPs": [{"ip": "fd00::1"}]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}], "podIPs": [{"ip": "fd00::1"}, {"ip": "10.0.0.1"}]}}),
        ),
        case(
            "a replaced list keeps the patch as sent",
            "Pod",
            json!({"spec": {"tolerations": [{"key": "a"}]}}),
            json!({"spec": {"tolerations": []}}),
            json!({"spec": {"tolerations": []}}),
        ),
    ]);
}

#[test]
fn metadata_sets_and_owner_references_merge_on_every_kind() {
    run(vec![
        case(
            "finalizers form a union without duplicates, new ones first as upstream orders them",
            "Role",
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["c", "a"]}}),
            json!({"metadata": {"finalizers": ["c", "a", "b"]}}),
        ),
        case(
            "owner references merge by uid",
            "ConfigMap",
            json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "x"}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "y"}, {"uid": "1", "controller": true}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "y"}, {"uid": "1", "name": "x", "controller": true}]}}),
        ),
        case(
            "labels merge and null deletes one",
            "ConfigMap",
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}}),
            json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": {"k2": "v2"}}),
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "data": {"k": "v", "k2": "v2"}}),
        ),
        case(
            "a deletion list on a missing field adds nothing",
            "Pod",
            json!({"metadata": {"name": "p"}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            json!({"metadata": {"name": "p"}}),
        ),
    ]);
}

#[test]
fn pod_templates_merge_in_every_workload() {
    let mut cases = Vec::new();
    for kind in [
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
        "ReplicationController",
    ] {
        cases.push(case(
            kind,
            kind,
            in_template(kind, json!({"containers": [{"name": "app", "image": "app:1"}, {"name": "side", "image": "s:1"}]})),
            in_template(kind, json!({"containers": [{"name": "app", "image": "app:2"}]})),
            in_template(kind, json!({"containers": [{"name": "app", "image": "app:2"}, {"name": "side", "image": "s:1"}]})),
        ));
    }
    cases.push(case(
        "PodTemplate",
        "PodTemplate",
        json!({"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}),
        json!({"template": {"spec": {"containers": [{"name": "b", "image": "x"}]}}}),
        json!({"template": {"spec": {"containers": [{"name": "a"}, {"name": "b", "image": "x"}]}}}),
    ));
    run(cases);
}

#[test]
fn kind_specific_lists_merge_by_their_keys() {
    run(vec![
        case(
            "service ports merge by port",
            "Service",
            json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}),
            json!({"spec": {"ports": [{"port": 80, "name": "http", "targetPort": 8080}, {"port": 443, "name": "https"}]}}),
        ),
        case(
            "node addresses and conditions merge by type",
            "Node",
            json!({"status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n"}],
                "conditions": [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}]
            }}),
            json!({"status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
                "conditions": [{"type": "Ready", "status": "True"}]
            }}),
            json!({"status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "n"}],
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}]
            }}),
        ),
        case(
            "workload status conditions merge by type",
            "Deployment",
            json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "Progressing", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "Progressing", "status": "True"}, {"type": "Available", "status": "True"}]}}),
        ),
        case(
            "a disruption budget selector is replaced, not merged",
            "PodDisruptionBudget",
            json!({"spec": {"selector": {"matchLabels": {"a": "1"}}}}),
            json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}}),
            json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}}),
        ),
        case(
            "webhook match conditions merge inside a webhook merged by name",
            "MutatingWebhookConfiguration",
            json!({"webhooks": [{"name": "w", "matchConditions": [{"name": "a", "expression": "1"}]}]}),
            json!({"webhooks": [{"name": "w", "matchConditions": [{"name": "b", "expression": "2"}]}]}),
            json!({"webhooks": [{"name": "w", "matchConditions": [{"name": "b", "expression": "2"}, {"name": "a", "expression": "1"}]}]}),
        ),
        case(
            "a field absent from the object is added without its nulls and directives",
            "Pod",
            json!({"spec": {}}),
            json!({"spec": {"affinity": {"nodeAffinity": null, "podAffinity": {"x": 1}}, "hostAliases": [{"ip": "1", "$patch": "delete"}, {"ip": "2"}]}}),
            json!({"spec": {"affinity": {"podAffinity": {"x": 1}}, "hostAliases": [{"ip": "2"}]}}),
        ),
        case(
            "a value of another type replaces the field",
            "ConfigMap",
            json!({"data": {"k": "v"}}),
            json!({"data": "x"}),
            json!({"data": "x"}),
        ),
        case(
            "a null patch changes nothing",
            "Pod",
            json!({"metadata": {"name": "p"}}),
            Value::Null,
            json!({"metadata": {"name": "p"}}),
        ),
    ]);
}

/// Applies a patch that must fail and returns the error.
fn fails(group: &str, kind: &str, doc: Value, patch: Value) -> ApiError {
    match strategic_merge_patch(group, kind, &doc, &patch) {
        Ok(v) => panic!("patch {patch} succeeded with {v}"),
        Err(e) => e,
    }
}

#[test]
fn kinds_without_a_schema_are_unsupported_media_type() {
    let err = fails("example.com", "Widget", json!({}), json!({}));
    assert!(matches!(err, ApiError::UnsupportedMediaType(_)), "{err:?}");
    assert!(err.to_string().contains("application/merge-patch+json"));
}

#[test]
fn malformed_patches_and_directives_are_bad_requests() {
    let pod = json!({"metadata": {"finalizers": ["a"]}, "spec": {"containers": [{"name": "a"}]}});
    let patches = [
        json!([{"op": "add"}]),
        json!("x"),
        json!({"metadata": {"$retainKeys": "name"}}),
        json!({"metadata": {"$retainKeys": ["name"], "labels": {"a": "b"}}}),
        json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}),
        json!({"metadata": {"$setElementOrderX/finalizers": ["a"]}}),
    ];
    for patch in patches {
        let err = fails("", "Pod", pod.clone(), patch.clone());
        assert!(matches!(err, ApiError::BadRequest(_)), "{patch}: {err:?}");
    }
}

#[test]
fn lists_of_lists_are_unprocessable() {
    let err = fails(
        "",
        "Pod",
        json!({"metadata": {"finalizers": [["a"]]}}),
        json!({"metadata": {"finalizers": [["b"]]}}),
    );
    assert!(matches!(err, ApiError::Invalid { .. }), "{err:?}");
}

#[test]
fn merge_failures_upstream_leaves_unclassified_are_internal_errors() {
    let pod = pod_spec(json!([{"name": "a"}]));
    let cases = [
        (
            pod_spec(json!([{"image": "x"}])),
            "does not contain declared merge key: name",
        ),
        (
            pod_spec(json!([{"name": "a", "$patch": "merge"}])),
            "merging lists cannot yet",
        ),
        (
            pod_spec(json!([{"name": "a", "$patch": "frob"}])),
            "unknown patch type",
        ),
        (json!({"spec": {"$patch": "merge"}}), "unknown patch type"),
        (
            pod_spec(json!(["x"])),
            "list element types are not identical",
        ),
        (
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "b"}]}}),
            "doesn't match $setElementOrder list",
        ),
    ];
    for (patch, message) in cases {
        let err = fails("", "Pod", pod.clone(), patch.clone());
        assert!(matches!(err, ApiError::Internal(_)), "{patch}: {err:?}");
        assert!(err.to_string().contains(message), "{patch}: {err}");
    }
}

#[test]
fn deeply_nested_input_is_refused_without_overflowing() {
    let mut deep = json!({});
    for _ in 0..1_000 {
        deep = json!({ "a": deep });
    }
    let err = fails("", "ConfigMap", json!({}), deep.clone());
    assert!(matches!(err, ApiError::BadRequest(_)), "{err:?}");
    let err = fails("", "ConfigMap", deep, json!({}));
    assert!(matches!(err, ApiError::Internal(_)), "{err:?}");
}
