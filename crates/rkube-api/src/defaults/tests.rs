use serde_json::{Value, json};

use super::apply_defaults;
use super::pod::pull_policy_for;
use super::qos_class;

fn defaulted(group: &str, kind: &str, mut object: Value) -> Value {
    apply_defaults(group, kind, &mut object);
    object
}

/// The container defaults upstream stores for `{"name": name, "image": image}`.
fn stored_container(name: &str, image: &str, pull: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "imagePullPolicy": pull,
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    })
}

/// The pod spec defaults every template gets.
fn stored_template_spec(containers: Value) -> Value {
    json!({
        "containers": containers,
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
    })
}

fn template(labels: Value) -> Value {
    json!({
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
    })
}

fn stored_template(labels: Value) -> Value {
    json!({
        "metadata": {"labels": labels},
        "spec": stored_template_spec(json!([stored_container("web", "nginx:1.27", "IfNotPresent")])),
    })
}

#[test]
fn a_minimal_pod_gets_every_default_upstream_stores() {
    let pod = defaulted(
        "",
        "Pod",
        json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}),
    );
    let expected = json!({
        "metadata": {"name": "web"},
        "spec": {
            "containers": [stored_container("web", "nginx", "Always")],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "serviceAccount": "default",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready",
                 "operator": "Exists", "tolerationSeconds": 300},
                {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable",
                 "operator": "Exists", "tolerationSeconds": 300},
            ],
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    });
    assert_eq!(pod, expected);
}

#[test]
fn a_pods_qos_class_follows_its_requests_and_limits() {
    let qos = |resources: Vec<Value>| {
        let containers: Vec<Value> = resources
            .into_iter()
            .map(|r| json!({"name": "c", "image": "x:1", "resources": r}))
            .collect();
        defaulted("", "Pod", json!({"spec": {"containers": containers}}))["status"]["qosClass"]
            .clone()
    };
    assert_eq!(qos(vec![json!({})]), "BestEffort");
    assert_eq!(
        qos(vec![json!({"limits": {"cpu": "1", "memory": "1Gi"}})]),
        "Guaranteed"
    );
    assert_eq!(
        qos(vec![
            json!({"limits": {"cpu": "1000m", "memory": "1Gi"}, "requests": {"cpu": "1"}})
        ]),
        "Guaranteed"
    );
    assert_eq!(qos(vec![json!({"requests": {"cpu": "100m"}})]), "Burstable");
    assert_eq!(
        qos(vec![
            json!({"limits": {"cpu": "1", "memory": "1Gi"}}),
            json!({})
        ]),
        "Burstable"
    );
}

#[test]
fn the_qos_class_of_a_spec_is_the_same_before_and_after_defaults() {
    let cases = [
        (json!({}), "BestEffort"),
        // Zero amounts and resources other than cpu and memory do not count.
        (
            json!({"requests": {"cpu": "0", "nvidia.com/gpu": "1"}}),
            "BestEffort",
        ),
        (
            json!({"limits": {"cpu": "1", "memory": "1Gi"}}),
            "Guaranteed",
        ),
        (
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m"}}),
            "Guaranteed",
        ),
        (
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}),
            "Burstable",
        ),
        (json!({"limits": {"cpu": "1"}}), "Burstable"),
        (json!({"requests": {"memory": "1Gi"}}), "Burstable"),
    ];
    for (resources, want) in cases {
        let spec = json!({"containers": [{"name": "c", "image": "x:1", "resources": resources}]});
        assert_eq!(qos_class(&spec), want, "{resources}");
        let pod = defaulted("", "Pod", json!({"spec": spec}));
        assert_eq!(qos_class(&pod["spec"]), want, "{resources} defaulted");
        assert_eq!(pod["status"]["qosClass"], want, "{resources} on create");
    }
    // Init containers count as containers do.
    let spec = json!({
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}}],
        "containers": [{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
    });
    assert_eq!(qos_class(&spec), "Burstable");
}

#[test]
fn pull_policy_follows_the_image_tag() {
    let cases = [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        ("registry.local:5000/team/app", "Always"),
        ("registry.local:5000/team/app:v2", "IfNotPresent"),
        ("nginx@sha256:abcd", "IfNotPresent"),
        ("nginx:latest@sha256:abcd", "Always"),
        ("", "IfNotPresent"),
    ];
    for (image, policy) in cases {
        assert_eq!(pull_policy_for(image), policy, "image {image:?}");
    }
}

#[test]
fn probes_ports_env_and_volumes_get_their_defaults() {
    let pod = defaulted(
        "",
        "Pod",
        json!({"spec": {
            "containers": [{
                "name": "web", "image": "nginx:1", "imagePullPolicy": "Never",
                "ports": [{"containerPort": 80}],
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                "livenessProbe": {"httpGet": {"port": 80}},
                "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 5},
                "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}},
            }],
            "volumes": [
                {"name": "scratch"},
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "sec", "secret": {"secretName": "s"}},
                {"name": "host", "hostPath": {"path": "/var"}},
                {"name": "proj", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
            ],
        }}),
    );
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["imagePullPolicy"], "Never");
    assert_eq!(container["ports"][0]["protocol"], "TCP");
    assert_eq!(
        container["env"][0]["valueFrom"]["fieldRef"]["apiVersion"],
        "v1"
    );
    assert_eq!(
        container["livenessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
               "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(container["readinessProbe"]["periodSeconds"], 5);
    assert_eq!(container["readinessProbe"]["grpc"]["service"], "");
    assert_eq!(
        container["resources"],
        json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1", "memory": "1Gi"}})
    );
    let canonical = defaulted(
        "",
        "Pod",
        json!({"spec": {"containers": [{"name": "a", "image": "a:1",
            "resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"}}}]}}),
    );
    assert_eq!(
        canonical["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}})
    );
    let volumes = &pod["spec"]["volumes"];
    assert_eq!(volumes[0], json!({"name": "scratch", "emptyDir": {}}));
    assert_eq!(volumes[1]["configMap"]["defaultMode"], 420);
    assert_eq!(volumes[2]["secret"]["defaultMode"], 420);
    assert_eq!(volumes[3]["hostPath"]["type"], "");
    assert_eq!(volumes[4]["projected"]["defaultMode"], 420);
    assert_eq!(
        volumes[4]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3600
    );
}

#[test]
fn a_pod_with_a_user_priority_class_is_left_for_the_lookup() {
    let pod = defaulted(
        "",
        "Pod",
        json!({"spec": {"priorityClassName": "batch-low", "containers": []}}),
    );
    assert!(pod["spec"].get("priority").is_none());
    assert!(pod["spec"].get("preemptionPolicy").is_none());
    let critical = defaulted(
        "",
        "Pod",
        json!({"spec": {"priorityClassName": "system-node-critical"}}),
    );
    assert_eq!(critical["spec"]["priority"], 2_000_001_000);
}

#[test]
fn host_network_pods_publish_their_ports_on_the_host() {
    let pod = defaulted(
        "",
        "Pod",
        json!({"spec": {"hostNetwork": true, "containers": [{"name": "a", "image": "x:1",
            "ports": [{"containerPort": 53}]}]}}),
    );
    assert_eq!(pod["spec"]["containers"][0]["ports"][0]["hostPort"], 53);
}

#[test]
fn a_minimal_deployment_defaults_as_upstream_stores_it() {
    let deploy = defaulted(
        "apps",
        "Deployment",
        json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"}))}}),
    );
    let expected = json!({"spec": {
        "progressDeadlineSeconds": 600,
        "replicas": 1,
        "revisionHistoryLimit": 10,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        "template": stored_template(json!({"app": "web"})),
    }});
    assert_eq!(deploy, expected);
}

#[test]
fn a_recreate_deployment_gets_no_rolling_update_block() {
    let deploy = defaulted(
        "apps",
        "Deployment",
        json!({"spec": {"strategy": {"type": "Recreate"}}}),
    );
    assert_eq!(deploy["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn stateful_sets_daemon_sets_and_replica_sets_get_their_defaults() {
    let sts = defaulted(
        "apps",
        "StatefulSet",
        json!({"spec": {"serviceName": "db", "template": template(json!({"app": "db"})),
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}}),
    );
    assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        sts["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        sts["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(sts["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(
        sts["spec"]["template"],
        stored_template(json!({"app": "db"}))
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0],
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"},
               "status": {"phase": "Pending"}})
    );
    let ds = defaulted("apps", "DaemonSet", json!({"spec": {}}));
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
    let rs = defaulted("apps", "ReplicaSet", json!({"spec": {"replicas": 0}}));
    assert_eq!(rs["spec"]["replicas"], 0);
}

#[test]
fn a_job_gets_its_defaults_and_a_generated_selector_once_it_has_a_uid() {
    let job = defaulted(
        "batch",
        "Job",
        json!({"metadata": {"name": "pi", "uid": "u-1"},
               "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl:5"}]}}}}),
    );
    let spec = &job["spec"];
    for (field, value) in [
        ("backoffLimit", json!(6)),
        ("completionMode", json!("NonIndexed")),
        ("completions", json!(1)),
        ("manualSelector", json!(false)),
        ("parallelism", json!(1)),
        ("podReplacementPolicy", json!("TerminatingOrFailed")),
        ("suspend", json!(false)),
        (
            "selector",
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}),
        ),
    ] {
        assert_eq!(spec[field], value, "{field}");
    }
    assert_eq!(
        spec["template"]["metadata"]["labels"],
        json!({"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
               "controller-uid": "u-1", "job-name": "pi"})
    );
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
    let parallel = defaulted("batch", "Job", json!({"spec": {"parallelism": 3}}));
    assert!(parallel["spec"].get("completions").is_none());
    assert!(parallel["spec"].get("selector").is_none());
}

#[test]
fn a_cron_job_defaults_its_policy_and_history_but_not_its_job_spec() {
    let cron = defaulted(
        "batch",
        "CronJob",
        json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox:1"}]}}}}}}),
    );
    let spec = &cron["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Allow");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["successfulJobsHistoryLimit"], 3);
    assert_eq!(spec["failedJobsHistoryLimit"], 1);
    assert!(spec["jobTemplate"]["spec"].get("backoffLimit").is_none());
    assert_eq!(
        spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
        "ClusterFirst"
    );
}

#[test]
fn a_cluster_ip_service_defaults_as_upstream_stores_it() {
    let svc = defaulted(
        "",
        "Service",
        json!({"spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
    );
    let expected = json!({"spec": {
        "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "selector": {"app": "web"},
        "sessionAffinity": "None",
        "type": "ClusterIP",
    }});
    assert_eq!(svc, expected);
}

#[test]
fn load_balancers_and_external_names_get_their_own_defaults() {
    let lb = defaulted(
        "",
        "Service",
        json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP",
            "ports": [{"port": 443, "targetPort": "https"}]}}),
    );
    assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(lb["spec"]["ports"][0]["targetPort"], "https");
    assert_eq!(
        lb["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );
    let external = defaulted(
        "",
        "Service",
        json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
    );
    assert!(external["spec"].get("ipFamilyPolicy").is_none());
    assert!(external["spec"].get("internalTrafficPolicy").is_none());
    let headless = defaulted(
        "",
        "Service",
        json!({"spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
    );
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
    assert_eq!(headless["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    let headless_with_selector = defaulted(
        "",
        "Service",
        json!({"spec": {"clusterIP": "None", "selector": {"app": "db"}}}),
    );
    assert_eq!(
        headless_with_selector["spec"]["ipFamilyPolicy"],
        "SingleStack"
    );
    assert_eq!(
        headless_with_selector["spec"]["ipFamilies"],
        json!(["IPv4"])
    );
}

#[test]
fn secrets_namespaces_volumes_and_claims_get_their_defaults() {
    assert_eq!(defaulted("", "Secret", json!({}))["type"], "Opaque");
    let secret = defaulted(
        "",
        "Secret",
        json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "hello", "c": "hi!"}}),
    );
    assert_eq!(
        secret,
        json!({"type": "Opaque", "data": {"a": "eA==", "b": "aGVsbG8=", "c": "aGkh"}})
    );
    let ns = defaulted("", "Namespace", json!({"metadata": {"name": "team"}}));
    assert_eq!(
        ns,
        json!({"metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "team"}},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    );
    let pv = defaulted(
        "",
        "PersistentVolume",
        json!({"spec": {"hostPath": {"path": "/d"}}}),
    );
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pv["status"]["phase"], "Pending");
    let pvc = defaulted("", "PersistentVolumeClaim", json!({"spec": {}}));
    assert_eq!(
        pvc,
        json!({"spec": {"volumeMode": "Filesystem"}, "status": {"phase": "Pending"}})
    );
    let node = defaulted("", "Node", json!({"status": {"capacity": {"cpu": "4"}}}));
    assert_eq!(node["status"]["allocatable"], json!({"cpu": "4"}));
}

#[test]
fn replication_controllers_take_selector_and_labels_from_their_template() {
    let rc = defaulted(
        "",
        "ReplicationController",
        json!({"spec": {"template": template(json!({"app": "web"}))}}),
    );
    assert_eq!(rc["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(rc["spec"]["replicas"], 1);
}

#[test]
fn other_groups_get_their_defaults() {
    let binding = defaulted(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        json!({"roleRef": {"kind": "Role", "name": "r"},
               "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "sa"}]}),
    );
    assert_eq!(binding["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(
        binding["subjects"][0]["apiGroup"],
        "rbac.authorization.k8s.io"
    );
    assert!(binding["subjects"][1].get("apiGroup").is_none());
    let sc = defaulted(
        "storage.k8s.io",
        "StorageClass",
        json!({"provisioner": "x"}),
    );
    assert_eq!(
        (
            sc["reclaimPolicy"].as_str(),
            sc["volumeBindingMode"].as_str()
        ),
        (Some("Delete"), Some("Immediate"))
    );
    let netpol = defaulted(
        "networking.k8s.io",
        "NetworkPolicy",
        json!({"spec": {"egress": [{"ports": [{"port": 53}]}]}}),
    );
    assert_eq!(netpol["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(netpol["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
    let hpa = defaulted(
        "autoscaling",
        "HorizontalPodAutoscaler",
        json!({"spec": {"maxReplicas": 3}}),
    );
    assert_eq!(hpa["spec"]["minReplicas"], 1);
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    let pc = defaulted("scheduling.k8s.io", "PriorityClass", json!({"value": 5}));
    assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
}

#[test]
fn defaulting_twice_changes_nothing_more() {
    for (group, kind, object) in [
        (
            "",
            "Pod",
            json!({"spec": {"containers": [{"name": "a", "image": "a"}]}}),
        ),
        (
            "apps",
            "Deployment",
            json!({"spec": {"template": template(json!({"a": "b"}))}}),
        ),
        (
            "",
            "Service",
            json!({"spec": {"type": "NodePort", "ports": [{"port": 1}]}}),
        ),
        (
            "batch",
            "Job",
            json!({"metadata": {"name": "j", "uid": "u"}, "spec": {}}),
        ),
    ] {
        let once = defaulted(group, kind, object);
        assert_eq!(defaulted(group, kind, once.clone()), once, "{kind}");
    }
}

#[test]
fn odd_shapes_and_unknown_kinds_are_left_alone() {
    for object in [
        json!(null),
        json!([1, 2]),
        json!("pod"),
        json!({"spec": 5}),
        json!({"spec": {"containers": "x", "volumes": [1]}}),
    ] {
        let before = object.clone();
        let after = defaulted("", "ConfigMap", object.clone());
        assert_eq!(after, before);
        // Must not panic, whatever it makes of it.
        let _ = defaulted("", "Pod", object.clone());
        let _ = defaulted("apps", "Deployment", object.clone());
        let _ = defaulted("", "Service", object);
    }
}

#[test]
fn every_defaulted_field_survives_the_typed_round_trip() {
    // A field with a misspelt name or a wrong type would be dropped or refused by the
    // k8s-openapi types the registry normalises with.
    let samples = [
        (
            "",
            "Pod",
            json!({"spec": {"hostNetwork": true, "containers": [{"name": "a", "image": "a",
            "ports": [{"containerPort": 80}], "livenessProbe": {"httpGet": {"port": 80}},
            "readinessProbe": {"grpc": {"port": 9}},
            "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "resources": {"limits": {"cpu": "0.5"}}}],
            "volumes": [{"name": "v"}, {"name": "c", "configMap": {"name": "c"}},
                {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
                {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}}]}}),
        ),
        (
            "apps",
            "Deployment",
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": template(json!({"a": "b"}))}}),
        ),
        (
            "apps",
            "StatefulSet",
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": template(json!({"a": "b"})),
            "volumeClaimTemplates": [{"metadata": {"name": "d"}, "spec": {"resources": {"requests": {"storage": "1024Mi"}}}}]}}),
        ),
        (
            "apps",
            "DaemonSet",
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": template(json!({"a": "b"}))}}),
        ),
        (
            "apps",
            "ReplicaSet",
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": template(json!({"a": "b"}))}}),
        ),
        (
            "batch",
            "Job",
            json!({"metadata": {"name": "j", "uid": "u"}, "spec": {"template": template(json!({"a": "b"}))}}),
        ),
        (
            "batch",
            "CronJob",
            json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template(json!({}))}}}}),
        ),
        (
            "",
            "Service",
            json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}),
        ),
        (
            "",
            "Service",
            json!({"spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
        ),
        ("", "Namespace", json!({"metadata": {"name": "n"}})),
        ("", "Secret", json!({"stringData": {"k": "v"}})),
        (
            "",
            "PersistentVolume",
            json!({"spec": {"capacity": {"storage": "1Gi"}, "hostPath": {"path": "/d"}}}),
        ),
        (
            "",
            "PersistentVolumeClaim",
            json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}}),
        ),
        (
            "",
            "ReplicationController",
            json!({"spec": {"template": template(json!({"a": "b"}))}}),
        ),
        (
            "",
            "LimitRange",
            json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}}]}}),
        ),
        (
            "",
            "Node",
            json!({"status": {"capacity": {"cpu": "4", "memory": "8Gi"}}}),
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"spec": {"maxReplicas": 3, "behavior": {},
            "scaleTargetRef": {"kind": "Deployment", "name": "d"}}}),
        ),
        (
            "networking.k8s.io",
            "NetworkPolicy",
            json!({"spec": {"egress": [{"ports": [{"port": 53}]}]}}),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            json!({"roleRef": {"kind": "ClusterRole", "name": "r"},
            "subjects": [{"kind": "Group", "name": "g"}]}),
        ),
        (
            "storage.k8s.io",
            "StorageClass",
            json!({"provisioner": "p"}),
        ),
        ("storage.k8s.io", "CSIDriver", json!({"spec": {}})),
        ("scheduling.k8s.io", "PriorityClass", json!({"value": 1})),
        (
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"addressType": "IPv4", "endpoints": [], "ports": [{"port": 80}]}),
        ),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
            json!({"webhooks": [{"name": "w.example.com",
            "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"name": "s", "namespace": "n"}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]}]}),
        ),
    ];
    for (group, kind, mut object) in samples {
        let resource = crate::registry::all()
            .by_kind(group, kind)
            .expect("a served kind");
        let mut meta = json!({"name": "x", "namespace": "default"});
        if let Some(given) = object.get("metadata").and_then(Value::as_object) {
            for (k, v) in given {
                meta[k] = v.clone();
            }
        }
        object["apiVersion"] = json!(resource.api_version());
        object["kind"] = json!(kind);
        object["metadata"] = meta;
        let defaulted = defaulted(group, kind, object);
        let round_tripped = (resource.normalize)(&defaulted).expect("types accept it");
        assert_eq!(round_tripped, defaulted, "{kind}");
    }
}

#[test]
fn admission_defaults_after_the_scheme_equal_all_defaults_at_once() {
    use super::{admission_defaults, scheme_defaults};
    let pods = [
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
        json!({"metadata": {"name": "p"}, "spec": {
            "serviceAccount": "old", "priorityClassName": "system-node-critical",
            "hostNetwork": true,
            "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}],
            "initContainers": [{"name": "i", "image": "busybox:1", "resources": {"limits": {"cpu": "0.5"}}}],
            "containers": [{"name": "c", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
            "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}],
        }}),
        json!({"metadata": {"name": "p"}, "spec": {"priorityClassName": "mine", "containers": []},
               "status": {"phase": "Running"}}),
        json!({"metadata": {"name": "p"}}),
        json!({"metadata": {"name": "p"}, "spec": 3}),
    ];
    for pod in pods {
        let all = defaulted("", "Pod", pod.clone());
        let mut staged = pod.clone();
        scheme_defaults("", "Pod", &mut staged);
        admission_defaults("", "Pod", &mut staged);
        assert_eq!(staged, all, "{pod}");

        // An overhead a RuntimeClass adds between the two is made canonical as well.
        let mut with_overhead = pod.clone();
        scheme_defaults("", "Pod", &mut with_overhead);
        if let Some(spec) = with_overhead["spec"].as_object_mut() {
            spec.insert("overhead".into(), json!({"cpu": "0.25"}));
        }
        let mut all = with_overhead.clone();
        super::apply_defaults("", "Pod", &mut all);
        admission_defaults("", "Pod", &mut with_overhead);
        assert_eq!(with_overhead, all, "{pod}");
    }
    // The deprecated field names the account; admission's "default" is for pods naming none.
    let old = defaulted(
        "",
        "Pod",
        json!({"spec": {"serviceAccount": "old", "containers": []}}),
    );
    assert_eq!(old["spec"]["serviceAccountName"], "old");
    assert_eq!(old["spec"]["serviceAccount"], "old");
    // A mirror pod runs as no account (ServiceAccount admission leaves it alone).
    let mirror = defaulted(
        "",
        "Pod",
        json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "h"}}, "spec": {"containers": []}}),
    );
    assert!(mirror["spec"].get("serviceAccountName").is_none());
    let namespace = json!({"metadata": {"name": "n"}});
    let mut staged = namespace.clone();
    scheme_defaults("", "Namespace", &mut staged);
    admission_defaults("", "Namespace", &mut staged);
    assert_eq!(staged, defaulted("", "Namespace", namespace));
}
