use serde_json::{Value, json};

use super::validate;
use crate::defaults::apply_defaults;
use crate::registry;

/// Defaults the object as the server would, then validates it for create.
fn create_errors(group: &str, kind: &str, mut object: Value) -> Vec<String> {
    apply_defaults(group, kind, &mut object);
    validate(group, kind, &object, None)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Defaults both versions, then validates the update.
fn update_errors(group: &str, kind: &str, mut old: Value, mut new: Value) -> Vec<String> {
    apply_defaults(group, kind, &mut old);
    apply_defaults(group, kind, &mut new);
    validate(group, kind, &new, Some(&old))
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default", "uid": "u-1", "resourceVersion": "5"})
}

fn pod_spec() -> Value {
    json!({"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]})
}

fn template(labels: Value) -> Value {
    json!({"metadata": {"labels": labels}, "spec": pod_spec()})
}

fn deployment() -> Value {
    json!({"metadata": meta("web"), "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": template(json!({"app": "web"})),
    }})
}

fn job() -> Value {
    json!({"metadata": meta("pi"), "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl:5"}]}}}})
}

fn service() -> Value {
    json!({"metadata": meta("web"), "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
}

/// A minimal valid object of each kind users write most, as `kubectl apply` sends it.
fn valid_objects() -> Vec<(&'static str, &'static str, Value)> {
    let cluster = |name: &str| json!({"name": name, "uid": "u-1", "resourceVersion": "5"});
    vec![
        (
            "",
            "Pod",
            json!({"metadata": meta("web"), "spec": pod_spec()}),
        ),
        (
            "",
            "PodTemplate",
            json!({"metadata": meta("t"), "template": template(json!({"a": "b"}))}),
        ),
        (
            "",
            "ReplicationController",
            json!({"metadata": meta("rc"), "spec": {"template": template(json!({"app": "rc"}))}}),
        ),
        ("", "Service", service()),
        (
            "",
            "Service",
            json!({"metadata": meta("db"), "spec": {"clusterIP": "None", "selector": {"app": "db"}}}),
        ),
        (
            "",
            "Service",
            json!({"metadata": meta("ext"), "spec": {"type": "ExternalName", "externalName": "example.com."}}),
        ),
        (
            "",
            "Service",
            json!({"metadata": meta("np"), "spec": {"type": "NodePort", "ports": [
            {"name": "http", "port": 80, "targetPort": "http"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
        ),
        (
            "",
            "ConfigMap",
            json!({"metadata": meta("cfg"), "data": {"app.properties": "a=b", "KEY_1": "v"}}),
        ),
        (
            "",
            "Secret",
            json!({"metadata": meta("s"), "data": {"password": "c2VjcmV0"}}),
        ),
        (
            "",
            "Secret",
            json!({"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
        ),
        ("", "Namespace", json!({"metadata": cluster("team-a")})),
        (
            "",
            "Node",
            json!({"metadata": cluster("node-1"), "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
        ),
        ("", "ServiceAccount", json!({"metadata": meta("builder")})),
        (
            "",
            "PersistentVolumeClaim",
            json!({"metadata": meta("data"), "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ),
        (
            "",
            "PersistentVolume",
            json!({"metadata": cluster("pv-1"), "spec": {
            "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/data"}}}),
        ),
        ("apps", "Deployment", deployment()),
        (
            "apps",
            "ReplicaSet",
            json!({"metadata": meta("rs"), "spec": {
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["rs"]}]},
            "template": template(json!({"app": "rs"}))}}),
        ),
        (
            "apps",
            "StatefulSet",
            json!({"metadata": meta("db"), "spec": {"serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}}, "template": template(json!({"app": "db"}))}}),
        ),
        (
            "apps",
            "DaemonSet",
            json!({"metadata": meta("agent"), "spec": {
            "selector": {"matchLabels": {"app": "agent"}}, "template": template(json!({"app": "agent"}))}}),
        ),
        ("batch", "Job", job()),
        (
            "batch",
            "CronJob",
            json!({"metadata": meta("tick"), "spec": {"schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "c", "image": "busybox:1"}]}}}}}}),
        ),
        (
            "rbac.authorization.k8s.io",
            "Role",
            json!({"metadata": meta("reader"), "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            json!({"metadata": cluster("system:reader"), "rules": [
            {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({"metadata": meta("read"),
            "roleRef": {"kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "builder"}, {"kind": "User", "name": "jane"}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            json!({"metadata": cluster("read"),
            "roleRef": {"kind": "ClusterRole", "name": "system:reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}]}),
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"metadata": meta("web"), "spec": {
            "maxReplicas": 5, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}}),
        ),
        (
            "policy",
            "PodDisruptionBudget",
            json!({"metadata": meta("web"), "spec": {
            "minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}}),
        ),
        (
            "networking.k8s.io",
            "Ingress",
            json!({"metadata": meta("web"), "spec": {"rules": [{"host": "*.example.com",
            "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
        ),
        (
            "scheduling.k8s.io",
            "PriorityClass",
            json!({"metadata": cluster("high"), "value": 1000}),
        ),
        (
            "storage.k8s.io",
            "StorageClass",
            json!({"metadata": cluster("fast"), "provisioner": "csi.example.com"}),
        ),
        (
            "coordination.k8s.io",
            "Lease",
            json!({"metadata": meta("leader"), "spec": {"leaseDurationSeconds": 15}}),
        ),
    ]
}

#[test]
fn minimal_valid_objects_of_every_common_kind_pass() {
    for (group, kind, object) in valid_objects() {
        let name = object["metadata"]["name"].clone();
        assert_eq!(
            create_errors(group, kind, object),
            Vec::<String>::new(),
            "{kind} {name}"
        );
    }
}

/// An edit that turns a valid object into a common mistake.
type Change = fn(&mut Value);

/// Applies `change` to a valid object and returns the create errors.
fn mistake(
    group: &str,
    kind: &str,
    mut object: Value,
    change: impl FnOnce(&mut Value),
) -> Vec<String> {
    change(&mut object);
    create_errors(group, kind, object)
}

#[test]
fn common_pod_mistakes_give_upstreams_errors() {
    let pod = || json!({"metadata": meta("web"), "spec": pod_spec()});
    let cases: Vec<(Change, Vec<&str>)> = vec![
        (
            |p| p["spec"]["containers"] = json!([]),
            vec!["spec.containers: Required value"],
        ),
        (
            |p| p["spec"]["containers"][0]["image"] = json!(""),
            vec!["spec.containers[0].image: Required value"],
        ),
        (
            |p| p["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(70000),
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ],
        ),
        (
            |p| p["spec"]["containers"][0]["ports"][0]["protocol"] = json!("HTTP"),
            vec![
                "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ],
        ),
        (
            |p| p["spec"]["restartPolicy"] = json!("Sometimes"),
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ],
        ),
        (
            |p| {
                let first = p["spec"]["containers"][0].clone();
                p["spec"]["containers"] = json!([first.clone(), first]);
            },
            vec!["spec.containers[1].name: Duplicate value: \"web\""],
        ),
        (
            |p| {
                p["spec"]["containers"][0]["volumeMounts"] =
                    json!([{"name": "data", "mountPath": "/data"}])
            },
            vec!["spec.containers[0].volumeMounts[0].name: Not found: \"data\""],
        ),
        (
            |p| {
                p["spec"]["volumes"] = json!([{"name": "cfg", "configMap": {"name": "c"}, "secret": {"secretName": "s"}}])
            },
            vec!["spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type"],
        ),
        (
            |p| p["spec"]["containers"][0]["livenessProbe"] = json!({"periodSeconds": 5}),
            vec!["spec.containers[0].livenessProbe: Required value: must specify a handler type"],
        ),
        (
            |p| {
                p["spec"]["containers"][0]["resources"] =
                    json!({"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}})
            },
            vec![
                "spec.containers[0].resources.requests: Invalid value: \"1\": must be less than or equal to cpu limit of 500m",
            ],
        ),
        (
            |p| {
                p["spec"]["containers"][0]["resources"] = json!({
                    "limits": {"example.com/foo": "2"},
                    "requests": {"example.com/foo": "1", "memory": "-1"}})
            },
            vec![
                "spec.containers[0].resources.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
                "spec.containers[0].resources.requests: Invalid value: \"1\": must be equal to example.com/foo limit of 2",
            ],
        ),
        (
            |p| {
                p["spec"]["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "web"}}}]}});
            },
            vec![
                "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Required value: can not be empty",
            ],
        ),
        (
            // As created: the API server has already added `rev In (…)` for matchLabelKeys.
            |p| {
                p["spec"]["affinity"] = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": "zone", "matchLabelKeys": ["rev", "app"], "mismatchLabelKeys": ["app", "Bad Key"],
                     "labelSelector": {"matchLabels": {"app": "web"},
                        "matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}},
                    {"topologyKey": "zone", "matchLabelKeys": ["rev"]}]}});
            },
            vec![
                "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].mismatchLabelKeys[1]: Invalid value: \"Bad Key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0][1]: Invalid value: \"app\": exists in both matchLabelKeys and labelSelector",
                "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].matchLabelKeys[1]: Invalid value: \"app\": exists in both matchLabelKeys and mismatchLabelKeys",
                "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[1].matchLabelKeys: Forbidden: must not be specified when labelSelector is not set",
            ],
        ),
        (
            |p| {
                p["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In"}]}]}}});
            },
            vec![
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            ],
        ),
        (
            |p| p["spec"]["containers"][0]["resources"] = json!({"limits": {"cpus": "1"}}),
            // Requests were defaulted from the limits, so both are reported.
            vec![
                "spec.containers[0].resources.limits[cpus]: Invalid value: \"cpus\": must be a standard resource for containers",
                "spec.containers[0].resources.requests[cpus]: Invalid value: \"cpus\": must be a standard resource for containers",
            ],
        ),
        (
            |p| p["metadata"]["namespace"] = json!(""),
            vec!["metadata.namespace: Required value"],
        ),
        (
            |p| p["spec"]["tolerations"] = json!([{"operator": "Equal", "value": "x"}]),
            vec![
                "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ],
        ),
    ];
    for (change, expected) in cases {
        assert_eq!(mistake("", "Pod", pod(), change), expected);
    }
}

#[test]
fn names_follow_each_kinds_rule() {
    let bad_name = mistake(
        "",
        "Pod",
        json!({"metadata": meta("Web"), "spec": pod_spec()}),
        |_| {},
    );
    assert_eq!(bad_name.len(), 1);
    assert!(bad_name[0].starts_with(
        "metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain must consist of"
    ));
    let service = mistake("", "Service", service(), |s| {
        s["metadata"]["name"] = json!("1st")
    });
    assert_eq!(service.len(), 1);
    assert!(service[0].starts_with("metadata.name: Invalid value: \"1st\": a DNS-1035 label"));
    let namespace = create_errors("", "Namespace", json!({"metadata": {"name": "a.b"}}));
    assert_eq!(namespace.len(), 1, "{namespace:?}");
    assert!(
        namespace[0]
            .starts_with("metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label")
    );
    let missing = create_errors(
        "",
        "ConfigMap",
        json!({"metadata": {"namespace": "default"}}),
    );
    assert_eq!(
        missing,
        ["metadata.name: Required value: name or generateName is required"]
    );
    let prefix = create_errors(
        "",
        "ConfigMap",
        json!({"metadata": {"generateName": "cfg-", "name": "cfg-x2k9d", "namespace": "default"}}),
    );
    assert_eq!(prefix, Vec::<String>::new());
    let cluster_scoped = create_errors(
        "",
        "Namespace",
        json!({"metadata": {"name": "a", "namespace": "b"}}),
    );
    assert_eq!(
        cluster_scoped,
        ["metadata.namespace: Forbidden: not allowed on this type"]
    );
    let cron = mistake("batch", "CronJob", valid_objects()[20].2.clone(), |c| {
        c["metadata"]["name"] = json!("x".repeat(53));
    });
    assert_eq!(cron.len(), 1);
    assert!(cron[0].ends_with("must be no more than 52 characters"));
}

#[test]
fn labels_and_annotations_are_checked() {
    let labels = mistake("", "ConfigMap", json!({"metadata": meta("c")}), |c| {
        c["metadata"]["labels"] = json!({"app": "bad value"});
    });
    assert_eq!(labels.len(), 1);
    assert!(
        labels[0]
            .starts_with("metadata.labels: Invalid value: \"bad value\": a valid label must be")
    );
    let key = mistake("", "ConfigMap", json!({"metadata": meta("c")}), |c| {
        c["metadata"]["annotations"] = json!({"a/b/c": "x"});
    });
    assert_eq!(key.len(), 1);
    assert!(key[0].starts_with("metadata.annotations: Invalid value: \"a/b/c\""));
    let big = mistake("", "ConfigMap", json!({"metadata": meta("c")}), |c| {
        c["metadata"]["annotations"] = json!({"big": "x".repeat(256 * 1024)});
    });
    assert_eq!(
        big,
        ["metadata.annotations: Too long: may not be more than 262144 bytes"]
    );
    let finalizer = mistake("", "ConfigMap", json!({"metadata": meta("c")}), |c| {
        c["metadata"]["finalizers"] = json!(["cleanup"]);
    });
    assert_eq!(
        finalizer,
        [
            "metadata.finalizers: Invalid value: \"cleanup\": name is neither a standard finalizer name nor is it fully qualified"
        ]
    );
}

#[test]
fn workload_mistakes_give_upstreams_errors() {
    let cases: Vec<(&str, &str, Value, Change, Vec<&str>)> = vec![
        (
            "apps",
            "Deployment",
            deployment(),
            |d| {
                d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
            },
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`",
            ],
        ),
        (
            "apps",
            "Deployment",
            deployment(),
            |d| {
                d["spec"].as_object_mut().map(|s| s.remove("selector"));
            },
            vec![
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
            ],
        ),
        (
            "apps",
            "Deployment",
            deployment(),
            |d| d["spec"]["replicas"] = json!(-1),
            vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            "apps",
            "Deployment",
            deployment(),
            |d| d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never"),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ],
        ),
        (
            "apps",
            "Deployment",
            deployment(),
            |d| {
                d["spec"]["strategy"] =
                    json!({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}})
            },
            vec![
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
            ],
        ),
        (
            "apps",
            "Deployment",
            deployment(),
            |d| d["spec"]["selector"] = json!({}),
            vec!["spec.selector: Invalid value: {}: empty selector is invalid for deployment"],
        ),
        (
            "batch",
            "Job",
            job(),
            |j| j["spec"]["template"]["spec"]["restartPolicy"] = json!(null),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
            ],
        ),
        (
            "batch",
            "Job",
            job(),
            |j| j["spec"]["completionMode"] = json!("Indexed"),
            vec![],
        ),
        (
            "batch",
            "CronJob",
            valid_objects()[20].2.clone(),
            |c| c["spec"]["schedule"] = json!(""),
            vec!["spec.schedule: Required value"],
        ),
        (
            "batch",
            "CronJob",
            valid_objects()[20].2.clone(),
            |c| c["spec"]["schedule"] = json!("every minute"),
            vec![
                "spec.schedule: Invalid value: \"every minute\": expected exactly 5 fields, found 2: [every minute]",
            ],
        ),
    ];
    for (group, kind, object, change, expected) in cases {
        assert_eq!(mistake(group, kind, object, change), expected, "{kind}");
    }
}

#[test]
fn template_labels_are_reported_where_upstream_reports_them() {
    let errors = mistake("apps", "Deployment", deployment(), |d| {
        d["spec"]["template"]["metadata"]["labels"]["bad key!"] = json!("x");
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("spec.template.labels: Invalid value: \"bad key!\""));
}

#[test]
fn a_job_must_keep_its_generated_selector() {
    let errors = mistake("batch", "Job", job(), |j| {
        j["spec"]["selector"] =
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "other"}});
    });
    assert!(errors.contains(&"spec.selector: Invalid value: {\"matchLabels\":{\"batch.kubernetes.io/controller-uid\":\"other\"}}: `selector` not auto-generated".to_owned()), "{errors:?}");
}

#[test]
fn service_config_and_rbac_mistakes_give_upstreams_errors() {
    let cases: Vec<(&str, &str, Value, Vec<&str>)> = vec![
        (
            "",
            "Service",
            json!({"metadata": meta("web"), "spec": {"selector": {"app": "web"}}}),
            vec!["spec.ports: Required value"],
        ),
        (
            "",
            "Service",
            json!({"metadata": meta("web"), "spec": {"ports": [{"port": 0}]}}),
            vec![
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
            ],
        ),
        (
            "",
            "Service",
            json!({"metadata": meta("web"), "spec": {"type": "Bogus", "ports": [{"port": 80}]}}),
            vec![
                "spec.type: Unsupported value: \"Bogus\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ],
        ),
        (
            "",
            "Service",
            json!({"metadata": meta("web"), "spec": {"ports": [{"port": 80}, {"port": 443}]}}),
            vec![
                "spec.ports[0].name: Required value",
                "spec.ports[1].name: Required value",
            ],
        ),
        (
            "",
            "Service",
            json!({"metadata": meta("web"), "spec": {"ports": [{"port": 80, "nodePort": 30080}]}}),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
        ),
        (
            "",
            "Service",
            json!({"metadata": meta("web"), "spec": {"type": "ExternalName"}}),
            vec!["spec.externalName: Required value"],
        ),
        (
            "",
            "Secret",
            json!({"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {}}),
            vec![
                "data[tls.crt]: Required value",
                "data[tls.key]: Required value",
            ],
        ),
        (
            "rbac.authorization.k8s.io",
            "Role",
            json!({"metadata": meta("r"), "rules": [{"apiGroups": [""], "resources": ["pods"]}]}),
            vec!["rules[0].verbs: Required value: verbs must contain at least one value"],
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({"metadata": meta("b"), "roleRef": {"kind": "Pod", "name": "r"}}),
            vec![
                "roleRef.kind: Unsupported value: \"Pod\": supported values: \"Role\", \"ClusterRole\"",
            ],
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "r"},
                   "subjects": [{"kind": "ServiceAccount", "name": "sa"}]}),
            vec!["subjects[0].namespace: Required value"],
        ),
        (
            "",
            "PersistentVolumeClaim",
            json!({"metadata": meta("c"), "spec": {}}),
            vec![
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value",
            ],
        ),
    ];
    for (group, kind, object, expected) in cases {
        assert_eq!(create_errors(group, kind, object), expected, "{kind}");
    }
    let bad_key = create_errors(
        "",
        "ConfigMap",
        json!({"metadata": meta("c"), "data": {"bad key": "v"}}),
    );
    assert_eq!(bad_key.len(), 1);
    assert!(bad_key[0].starts_with(
        "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of"
    ));
}

#[test]
fn no_shape_of_input_makes_validation_panic() {
    let shapes = [
        json!(null),
        json!(5),
        json!("x"),
        json!([]),
        json!({}),
        json!({"metadata": 5, "spec": "x", "data": [1], "rules": {}}),
        json!({"metadata": {"name": 5, "labels": [1], "annotations": "x", "ownerReferences": [5]},
               "spec": {"containers": [5, {"ports": "x", "env": [null]}], "selector": [],
                        "template": {"spec": {"volumes": [{"name": 1}]}}, "ports": [{"port": "x"}]}}),
    ];
    for resource in registry::all().types() {
        for shape in &shapes {
            let _ = validate(resource.group, resource.kind, shape, None);
            let _ = validate(resource.group, resource.kind, shape, Some(shape));
            let mut defaulted = shape.clone();
            apply_defaults(resource.group, resource.kind, &mut defaulted);
            let _ = validate(resource.group, resource.kind, &defaulted, None);
        }
    }
}

mod update;
