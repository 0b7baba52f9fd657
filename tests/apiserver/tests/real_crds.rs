//! Real CustomResourceDefinitions (cert-manager, Prometheus operator; see
//! `testdata/crds/README.md`) are accepted, established and discoverable, and their custom
//! resources are pruned, defaulted and validated as on upstream Kubernetes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use rkube_apiserver_tests::{TestServer, api_error, start};
use serde_json::{Value, json};

/// Every CRD of the test data, in file name order.
fn real_definitions() -> Vec<CustomResourceDefinition> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/crds");
    let mut files = Vec::new();
    for project in std::fs::read_dir(&root).unwrap() {
        let project = project.unwrap().path();
        if !project.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(project).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "yaml") {
                files.push(file);
            }
        }
    }
    files.sort();
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        })
        .collect()
}

/// Starts a server and creates every definition of the test data; waits until each is
/// established.
async fn server_with_real_definitions() -> TestServer {
    let t = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    for crd in real_definitions() {
        let name = crd.metadata.name.clone().unwrap();
        crds.create(&PostParams::default(), &crd)
            .await
            .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    }
    for crd in real_definitions() {
        let name = crd.metadata.name.clone().unwrap();
        let mut established = false;
        for _ in 0..200 {
            let got = crds.get(&name).await.unwrap();
            let conditions = got.status.and_then(|s| s.conditions).unwrap_or_default();
            if conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
            {
                established = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(established, "{name} was not established");
    }
    t
}

/// The API of one kind of custom resource in the namespace `default` (or cluster-wide).
fn resources(t: &TestServer, group_version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let (group, version) = group_version.split_once('/').unwrap();
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    if kind.starts_with("Cluster") || kind == "GatewayClass" {
        Api::all_with(t.client.clone(), &resource)
    } else {
        Api::namespaced_with(t.client.clone(), "default", &resource)
    }
}

/// Creates `object` and returns what the server stored, as JSON.
async fn create(api: &Api<DynamicObject>, object: Value) -> Result<Value, kube::core::Status> {
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    match api.create(&PostParams::default(), &object).await {
        Ok(created) => Ok(serde_json::to_value(created).unwrap()),
        Err(e) => Err(api_error(e)),
    }
}

/// The causes of a refusal as `field: message` lines, after checking it is a 422 Invalid.
fn invalid_causes(status: &kube::core::Status) -> Vec<String> {
    assert_eq!(
        (status.code, status.reason.as_str()),
        (422, "Invalid"),
        "{status:?}"
    );
    status
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect()
        })
        .unwrap_or_default()
}

/// A GET of `path` as JSON, with `accept`.
async fn get(t: &TestServer, path: &str, accept: &str) -> Value {
    let request = http::Request::get(path)
        .header("Accept", accept)
        .body(Vec::new())
        .unwrap();
    serde_json::from_str(&t.client.request_text(request).await.unwrap()).unwrap()
}

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

#[tokio::test]
async fn every_real_definition_is_established_and_discoverable() {
    let t = server_with_real_definitions().await;
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let names: Vec<String> = crds
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names.len(), real_definitions().len(), "{names:?}");

    let certs = get(&t, "/apis/cert-manager.io/v1", "application/json").await;
    let certificate = certs["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "certificates")
        .unwrap();
    assert_eq!(certificate["kind"], "Certificate");
    assert_eq!(certificate["namespaced"], true);
    assert_eq!(certificate["shortNames"], json!(["cert", "certs"]));
    assert_eq!(certificate["categories"], json!(["cert-manager"]));
    let monitoring = get(&t, "/apis/monitoring.coreos.com/v1", "application/json").await;
    let resources: Vec<&str> = monitoring["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for name in [
        "alertmanagers",
        "alertmanagers/scale",
        "podmonitors",
        "prometheuses",
        "prometheuses/scale",
        "prometheuses/status",
        "prometheusrules",
        "servicemonitors",
    ] {
        assert!(resources.contains(&name), "{name} in {resources:?}");
    }
    // Gateway API serves v1 and v1beta1; v1 is preferred.
    let gateway = get(&t, "/apis/gateway.networking.k8s.io", "application/json").await;
    assert_eq!(
        gateway["preferredVersion"]["groupVersion"],
        "gateway.networking.k8s.io/v1"
    );
    // Each group's schemas are published for kubectl explain.
    let openapi = get(&t, "/openapi/v3", "application/json").await;
    for group in [
        "apis/cert-manager.io/v1",
        "apis/acme.cert-manager.io/v1",
        "apis/monitoring.coreos.com/v1",
        "apis/gateway.networking.k8s.io/v1",
    ] {
        assert!(openapi["paths"].get(group).is_some(), "{group}");
    }
    let spec = get(
        &t,
        "/openapi/v3/apis/cert-manager.io/v1",
        "application/json",
    )
    .await;
    let certificate = &spec["components"]["schemas"]["io.cert-manager.v1.Certificate"];
    assert_eq!(
        certificate["properties"]["spec"]["required"],
        json!(["issuerRef", "secretName"])
    );
}

#[tokio::test]
async fn cert_manager_resources_are_pruned_validated_and_printed() {
    let t = server_with_real_definitions().await;
    let issuers = resources(&t, "cert-manager.io/v1", "ClusterIssuer", "clusterissuers");
    let issuer = create(
        &issuers,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
               "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}}),
    )
    .await
    .unwrap();
    assert_eq!(issuer["spec"], json!({"selfSigned": {}}));
    // The ACME issuer's schema defaults renewalInformationSource, and a Gateway API parent
    // reference of a solver its group and kind.
    let acme = create(
        &issuers,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
               "metadata": {"name": "letsencrypt"},
               "spec": {"acme": {"server": "https://acme.example/directory",
                                 "privateKeySecretRef": {"name": "account-key"},
                                 "solvers": [{"http01": {"gatewayHTTPRoute": {
                                     "parentRefs": [{"name": "web"}]}}}]}}}),
    )
    .await
    .unwrap();
    assert_eq!(acme["spec"]["acme"]["renewalInformationSource"], "ARI");
    assert_eq!(
        acme["spec"]["acme"]["solvers"][0]["http01"]["gatewayHTTPRoute"]["parentRefs"][0],
        json!({"name": "web", "group": "gateway.networking.k8s.io", "kind": "Gateway"})
    );
    // The Venafi issuer's CEL rule.
    let err = create(
        &issuers,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
               "metadata": {"name": "venafi"}, "spec": {"venafi": {"zone": "z"}}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.message,
        "ClusterIssuer.cert-manager.io \"venafi\" is invalid: spec.venafi: Invalid value: \"object\": exactly one of tpp, cloud, or ngts must be configured"
    );
    assert_eq!(
        invalid_causes(&err),
        [
            "spec.venafi: Invalid value: \"object\": exactly one of tpp, cloud, or ngts must be configured"
        ]
    );

    let certs = resources(&t, "cert-manager.io/v1", "Certificate", "certificates");
    let cert = create(
        &certs,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": "web"},
               "spec": {"secretName": "web-tls", "dnsNames": ["web.example.com"],
                        "privateKey": {"algorithm": "ECDSA", "size": 256, "strength": "high"},
                        "issuerRef": {"name": "selfsigned", "kind": "ClusterIssuer"},
                        "renewBeforeDays": 3}}),
    )
    .await
    .unwrap();
    assert_eq!(
        cert["spec"],
        json!({"secretName": "web-tls", "dnsNames": ["web.example.com"],
               "privateKey": {"algorithm": "ECDSA", "size": 256},
               "issuerRef": {"name": "selfsigned", "kind": "ClusterIssuer"}}),
        "unknown fields are pruned"
    );

    let err = create(
        &certs,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": "no-secret"},
               "spec": {"dnsNames": ["web.example.com"], "issuerRef": {"name": "selfsigned"}}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.message,
        "Certificate.cert-manager.io \"no-secret\" is invalid: spec.secretName: Required value"
    );
    let cause = &err.details.as_ref().unwrap().causes[0];
    assert_eq!(
        (
            cause.reason.as_str(),
            cause.field.as_str(),
            cause.message.as_str()
        ),
        ("FieldValueRequired", "spec.secretName", "Required value")
    );
    let err = create(
        &certs,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": "dsa"},
               "spec": {"secretName": "dsa", "issuerRef": {"name": "selfsigned"},
                        "privateKey": {"algorithm": "DSA"}}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        invalid_causes(&err),
        [
            "spec.privateKey.algorithm: Unsupported value: \"DSA\": supported values: \"RSA\", \"ECDSA\", \"Ed25519\""
        ]
    );
    assert_eq!(
        err.details.as_ref().unwrap().causes[0].reason,
        "FieldValueNotSupported"
    );

    // The printer columns: Ready, Secret and Age; Issuer, Status and Expiration in the wide
    // view (priority 1).
    certs
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                                "message": "Certificate is up to date and has not expired",
                                "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "notAfter": "2027-01-01T00:00:00Z"}})),
        )
        .await
        .unwrap();
    let table = get(
        &t,
        "/apis/cert-manager.io/v1/namespaces/default/certificates",
        TABLE,
    )
    .await;
    let columns: Vec<(&str, &str, i64)> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["type"].as_str().unwrap(),
                c["priority"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Secret", "string", 0),
            ("Issuer", "string", 1),
            ("Status", "string", 1),
            ("Expiration", "string", 1),
            ("Age", "date", 0)
        ]
    );
    assert_eq!(
        table["columnDefinitions"][1]["description"],
        "Custom resource definition column (in JSONPath format): .status.conditions[?(@.type == \"Ready\")].status"
    );
    let cells = &table["rows"][0]["cells"];
    assert_eq!(
        cells.as_array().unwrap()[..6],
        [
            json!("web"),
            json!("True"),
            json!("web-tls"),
            json!("selfsigned"),
            json!("Certificate is up to date and has not expired"),
            json!("2027-01-01T00:00:00Z")
        ]
    );
    assert!(cells[6].as_str().unwrap().ends_with('s'), "{cells}");
}

#[tokio::test]
async fn prometheus_operator_resources_are_defaulted_and_validated() {
    let t = server_with_real_definitions().await;
    let monitors = resources(
        &t,
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        "servicemonitors",
    );
    let monitor = create(
        &monitors,
        json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
               "metadata": {"name": "web", "labels": {"team": "web"}},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "endpoints": [
                            {"port": "http", "interval": "15s", "scrapeTimeout": "10s",
                             "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_name"],
                                              "targetLabel": "pod"}]},
                            {"targetPort": 9090, "path": "/metrics", "unknownField": true}]}}),
    )
    .await
    .unwrap();
    assert_eq!(
        monitor["spec"]["endpoints"][0]["relabelings"][0],
        json!({"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod"})
    );
    assert_eq!(
        monitor["spec"]["endpoints"][1],
        json!({"targetPort": 9090, "path": "/metrics"})
    );
    let err = create(
        &monitors,
        json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
               "metadata": {"name": "slow"},
               "spec": {"selector": {}, "endpoints": [{"port": "http", "interval": "15 seconds"}]}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        invalid_causes(&err),
        [
            "spec.endpoints[0].interval: Invalid value: \"15 seconds\": spec.endpoints[0].interval in body should match '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'"
        ]
    );
    let err = create(
        &monitors,
        json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
               "metadata": {"name": "relabel"},
               "spec": {"selector": {}, "endpoints": [{"port": "http",
                        "relabelings": [{"action": "Delete"}]}]}}),
    )
    .await
    .unwrap_err();
    let causes = invalid_causes(&err);
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert!(
        causes[0].starts_with("spec.endpoints[0].relabelings[0].action: Unsupported value: \"Delete\": supported values: \"replace\", \"Replace\", \"keep\""),
        "{causes:?}"
    );

    let rules = resources(
        &t,
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        "prometheusrules",
    );
    let rule = create(
        &rules,
        json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
               "metadata": {"name": "web"},
               "spec": {"groups": [{"name": "web.rules", "rules": [
                   {"alert": "WebDown", "expr": "up{job=\"web\"} == 0", "for": "5m",
                    "labels": {"severity": "page"}, "annotations": {"summary": "web is down"}},
                   {"record": "job:up:sum", "expr": "sum by (job) (up)"}]}]}}),
    )
    .await
    .unwrap();
    assert_eq!(rule["spec"]["groups"][0]["rules"][0]["for"], "5m");

    let prometheuses = resources(&t, "monitoring.coreos.com/v1", "Prometheus", "prometheuses");
    let prometheus = create(
        &prometheuses,
        json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
               "metadata": {"name": "main"},
               "spec": {"replicas": 2, "serviceAccountName": "prometheus",
                        "serviceMonitorSelector": {"matchLabels": {"team": "web"}},
                        "ruleSelector": {}, "resources": {"requests": {"memory": "400Mi"}}}}),
    )
    .await
    .unwrap();
    let spec = &prometheus["spec"];
    assert_eq!(
        (
            &spec["evaluationInterval"],
            &spec["scrapeInterval"],
            &spec["portName"],
            &spec["shards"]
        ),
        (&json!("30s"), &json!("30s"), &json!("web"), &json!(1)),
        "the schema's defaults: {spec}"
    );
    // CEL rules on the Prometheus spec and on its sharding strategy.
    let err = create(
        &prometheuses,
        json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
               "metadata": {"name": "zones"},
               "spec": {"shardingStrategy": {"mode": "Topology",
                        "topology": {"values": ["zone-a", "zone-b"]}}}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        invalid_causes(&err),
        [
            "spec: Invalid value: \"object\": shards must be greater than or equal to the number of topology values when sharding strategy mode is Topology"
        ]
    );
    let err = create(
        &prometheuses,
        json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
               "metadata": {"name": "address"},
               "spec": {"shards": 2, "shardingStrategy": {"mode": "Address",
                        "topology": {"values": ["zone-a"]}}}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        invalid_causes(&err),
        [
            "spec.shardingStrategy: Invalid value: \"object\": topology can only be defined when mode is set to 'Topology'"
        ]
    );
    create(
        &prometheuses,
        json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
               "metadata": {"name": "zones"},
               "spec": {"shards": 2, "shardingStrategy": {"mode": "Topology",
                        "topology": {"values": ["zone-a", "zone-b"]}}}}),
    )
    .await
    .unwrap();

    // The columns' JSONPath filters use single quotes.
    prometheuses
        .patch_status(
            "main",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "availableReplicas": 2, "paused": false, "replicas": 2,
                "updatedReplicas": 2, "unavailableReplicas": 0,
                "conditions": [
                    {"type": "Available", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "Reconciled", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})),
        )
        .await
        .unwrap();
    let table = get(
        &t,
        "/apis/monitoring.coreos.com/v1/namespaces/default/prometheuses/main",
        TABLE,
    )
    .await;
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Version",
            "Desired",
            "Ready",
            "Reconciled",
            "Available",
            "Age",
            "Paused"
        ]
    );
    let cells = table["rows"][0]["cells"].as_array().unwrap();
    assert_eq!(
        cells[..6],
        [
            json!("main"),
            Value::Null,
            json!(2),
            json!(2),
            json!("False"),
            json!("True")
        ]
    );
    assert_eq!(cells[7], json!(false));
}

#[tokio::test]
async fn gateway_api_routes_are_defaulted_and_checked_by_their_cel_rules() {
    let t = server_with_real_definitions().await;
    let routes = resources(
        &t,
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        "httproutes",
    );
    let route = create(
        &routes,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "web"},
               "spec": {"parentRefs": [{"name": "gateway"}], "hostnames": ["web.example.com"],
                        "rules": [{"backendRefs": [{"name": "web", "port": 8080}],
                                   "timeouts": {"request": "10s", "backendRequest": "5s"}}]}}),
    )
    .await
    .unwrap();
    assert_eq!(
        route["spec"]["parentRefs"][0],
        json!({"name": "gateway", "group": "gateway.networking.k8s.io", "kind": "Gateway"})
    );
    let rule = &route["spec"]["rules"][0];
    assert_eq!(
        rule["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/"}}])
    );
    assert_eq!(
        rule["backendRefs"][0],
        json!({"name": "web", "port": 8080, "group": "", "kind": "Service", "weight": 1})
    );
    // Rules default to one prefix match of "/".
    let bare = create(
        &routes,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "bare"}, "spec": {"parentRefs": [{"name": "gateway"}]}}),
    )
    .await
    .unwrap();
    assert_eq!(
        bare["spec"]["rules"],
        json!([{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}])
    );

    let err = create(
        &routes,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "relative"},
               "spec": {"rules": [{"matches": [{"path": {"type": "Exact", "value": "api"}}]}]}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        invalid_causes(&err),
        [
            "spec.rules[0].matches[0].path: Invalid value: \"object\": value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"
        ]
    );
    // duration() on the timeouts.
    let err = create(
        &routes,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "timeouts"},
               "spec": {"rules": [{"timeouts": {"request": "1s", "backendRequest": "1m30s"}}]}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        invalid_causes(&err),
        [
            "spec.rules[0].timeouts: Invalid value: \"object\": backendRequest timeout cannot be longer than request timeout"
        ]
    );
    // exists_one over the filters, then the matches.
    let err = create(
        &routes,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "rewrite"},
               "spec": {"rules": [{
                   "matches": [{"path": {"type": "Exact", "value": "/a"}}],
                   "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {
                       "type": "ReplacePrefixMatch", "replacePrefixMatch": "/b"}}}]}]}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        invalid_causes(&err),
        [
            "spec.rules[0]: Invalid value: \"object\": When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified"
        ]
    );
    // all() and exists_one() across the parent references.
    let err = create(
        &routes,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "parents"},
               "spec": {"parentRefs": [{"name": "gateway", "sectionName": "http"},
                                       {"name": "gateway"}]}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        invalid_causes(&err),
        [
            "spec.parentRefs: Invalid value: \"array\": sectionName must be specified when parentRefs includes 2 or more references to the same parent"
        ]
    );

    let table = get(
        &t,
        "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/web",
        TABLE,
    )
    .await;
    assert_eq!(table["rows"][0]["cells"][1], json!("[\"web.example.com\"]"));
    // The same route through the other served version.
    let beta = resources(
        &t,
        "gateway.networking.k8s.io/v1beta1",
        "HTTPRoute",
        "httproutes",
    );
    let got = beta.get("web").await.unwrap();
    assert_eq!(
        got.types.unwrap().api_version,
        "gateway.networking.k8s.io/v1beta1"
    );
}

#[tokio::test]
async fn the_largest_objects_the_schemas_allow_stay_within_the_cel_cost_limit() {
    let t = server_with_real_definitions().await;
    let host = format!("{}.example.com", "a".repeat(60));
    let long = "v".repeat(4000);
    let gateways = resources(&t, "gateway.networking.k8s.io/v1", "Gateway", "gateways");
    let listeners: Vec<Value> = (0..64)
        .map(|i| {
            json!({"name": format!("https-{i}"), "port": 443, "protocol": "HTTPS",
                   "hostname": format!("{i}{host}"),
                   "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert"}],
                           "options": {"example.com/option": long}}})
        })
        .collect();
    let addresses: Vec<Value> = (0..16)
        .map(|i| json!({"type": "Hostname", "value": format!("{i}{host}")}))
        .collect();
    create(
        &gateways,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "big"},
               "spec": {"gatewayClassName": "example",
                        "infrastructure": {"annotations": {"example.com/a": long}},
                        "addresses": addresses, "listeners": listeners}}),
    )
    .await
    .unwrap();

    let routes = resources(
        &t,
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        "httproutes",
    );
    let path = format!("/{}", "p".repeat(1000));
    let rules: Vec<Value> = (0..16)
        .map(|r| {
            json!({
                "name": format!("rule-{r}"),
                "matches": (0..7).map(|m| json!({
                    "path": {"type": "PathPrefix", "value": format!("{path}{m}")},
                    "headers": (0..16).map(|h| json!({"name": format!("x-h{h}"), "value": "v".repeat(100)})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "filters": [{"type": "RequestHeaderModifier",
                             "requestHeaderModifier": {"set": [{"name": "a", "value": "b"}]}}],
                "backendRefs": (0..16).map(|b| json!({"name": format!("backend-{b}"), "port": 80})).collect::<Vec<_>>(),
            })
        })
        .collect();
    create(
        &routes,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "big"},
               "spec": {"hostnames": (0..16).map(|i| format!("{i}{host}")).collect::<Vec<_>>(),
                        "parentRefs": (0..32).map(|i| json!({"name": "big", "sectionName": format!("https-{i}")})).collect::<Vec<_>>(),
                        "rules": rules}}),
    )
    .await
    .unwrap();
}

/// The note upstream adds when schema errors keep the CEL rules from running.
const RULES_NOT_CHECKED: &str = "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

#[tokio::test]
async fn schema_errors_and_rules_are_reported_together_as_upstream() {
    let t = server_with_real_definitions().await;
    let gateways = resources(&t, "gateway.networking.k8s.io/v1", "Gateway", "gateways");
    let gateway = |name: &str, listeners: Value| {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": name},
               "spec": {"gatewayClassName": "example", "listeners": listeners}})
    };
    // A duplicate key of a map list does not keep the rules from running.
    let err = create(
        &gateways,
        gateway(
            "twice",
            json!([{"name": "tcp", "port": 9000, "protocol": "TCP"},
                   {"name": "tcp", "port": 9000, "protocol": "TCP"}]),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(
        invalid_causes(&err),
        [
            "spec.listeners[1]: Duplicate value: {\"name\":\"tcp\"}",
            "spec.listeners: Invalid value: \"array\": Listener name must be unique within the Gateway",
            "spec.listeners: Invalid value: \"array\": Combination of port, protocol and hostname must be unique for each listener"
        ]
    );
    // Neither does a pattern.
    let err = create(
        &gateways,
        gateway(
            "pattern",
            json!([{"name": "Web_", "port": 80, "protocol": "HTTP", "tls": {"mode": "Terminate", "certificateRefs": [{"name": "c"}]}}]),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(
        invalid_causes(&err),
        [
            "spec.listeners[0].name: Invalid value: \"Web_\": spec.listeners[0].name in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'",
            "spec.listeners: Invalid value: \"array\": tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"
        ]
    );
    // A wrong type, a size limit passed or an enum violation does, and the answer says so.
    let err = create(
        &gateways,
        gateway(
            "typed",
            json!([{"name": "web", "port": "eighty", "protocol": "HTTP"}]),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(
        invalid_causes(&err),
        [
            "spec.listeners[0].port: Invalid value: \"string\": spec.listeners[0].port in body must be of type integer: \"string\"",
            RULES_NOT_CHECKED
        ]
    );
    assert_eq!(
        err.details.as_ref().unwrap().causes[0].reason,
        "FieldValueTypeInvalid"
    );
    let many: Vec<Value> = (0..65)
        .map(|i| json!({"name": format!("l{i}"), "port": 8000 + i, "protocol": "HTTP"}))
        .collect();
    let err = create(&gateways, gateway("many", json!(many)))
        .await
        .unwrap_err();
    assert_eq!(
        invalid_causes(&err),
        [
            "spec.listeners: Too many: 65: must have at most 64 items",
            RULES_NOT_CHECKED
        ]
    );
    let issuers = resources(&t, "cert-manager.io/v1", "ClusterIssuer", "clusterissuers");
    let err = create(
        &issuers,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
               "metadata": {"name": "ari"},
               "spec": {"acme": {"server": "https://acme.example/directory",
                                 "privateKeySecretRef": {"name": "k"},
                                 "renewalInformationSource": "Calendar"}}}),
    )
    .await
    .unwrap_err();
    let causes = invalid_causes(&err);
    assert_eq!(causes.len(), 2, "{causes:?}");
    assert!(
        causes[0]
            .starts_with("spec.acme.renewalInformationSource: Unsupported value: \"Calendar\""),
        "{causes:?}"
    );
    assert_eq!(causes[1], RULES_NOT_CHECKED);

    // A rule reading a field that is not there fails with cel-go's words.
    let err = create(
        &gateways,
        gateway(
            "no-options",
            json!([{"name": "https", "port": 443, "protocol": "HTTPS",
                    "tls": {"mode": "Terminate", "certificateRefs": []}}]),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(
        invalid_causes(&err),
        [
            "spec.listeners[0].tls: Invalid value: \"object\": no such key: options evaluating rule: certificateRefs or options must be specified when mode is Terminate"
        ]
    );
}

#[tokio::test]
async fn status_is_dropped_on_create_and_free_form_fields_are_kept() {
    let t = server_with_real_definitions().await;
    let certs = resources(&t, "cert-manager.io/v1", "Certificate", "certificates");
    let cert = create(
        &certs,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": "web"},
               "spec": {"secretName": "web-tls", "issuerRef": {"name": "ca"}},
               "status": {"notAfter": "2027-01-01T00:00:00Z"}}),
    )
    .await
    .unwrap();
    assert_eq!(cert.get("status"), None, "{cert}");
    // A DNS01 webhook solver's config is x-kubernetes-preserve-unknown-fields.
    let issuers = resources(&t, "cert-manager.io/v1", "Issuer", "issuers");
    let config = json!({"apiKeySecretRef": {"name": "dns", "key": "token"},
                        "zones": ["example.com"], "ttl": 60, "nested": [{"a": true}]});
    let issuer = create(
        &issuers,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
               "metadata": {"name": "dns"},
               "spec": {"acme": {"server": "https://acme.example/directory",
                                 "privateKeySecretRef": {"name": "account"},
                                 "solvers": [{"dns01": {"webhook": {
                                     "groupName": "acme.example.com", "solverName": "example",
                                     "config": config.clone(), "unknown": 1}}}]}}}),
    )
    .await
    .unwrap();
    assert_eq!(
        issuer["spec"]["acme"]["solvers"][0]["dns01"]["webhook"],
        json!({"groupName": "acme.example.com", "solverName": "example", "config": config})
    );
}

#[tokio::test]
async fn pruned_fields_are_reported_as_warnings_by_default() {
    let t = server_with_real_definitions().await;
    let body = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                      "metadata": {"name": "web"},
                      "spec": {"secretName": "web-tls", "issuerRef": {"name": "ca", "weight": 1},
                               "privateKey": {"algorithm": "RSA", "bits": 4096}}});
    let request = http::Request::post("/apis/cert-manager.io/v1/namespaces/default/certificates")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    let response = t.client.send(request.map(Into::into)).await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let warnings: Vec<&str> = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        warnings,
        [
            r#"299 - "unknown field \"spec.issuerRef.weight\"""#,
            r#"299 - "unknown field \"spec.privateKey.bits\"""#
        ]
    );
}
