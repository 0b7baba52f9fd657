//! Real CustomResourceDefinitions (cert-manager, Prometheus operator, Gateway API; see
//! `testdata/crds/README.md`) are accepted, established and discoverable, and the resources
//! of cert-manager and the Prometheus operator are pruned, defaulted, validated and printed as
//! on upstream Kubernetes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use rkube_apiserver_tests::real_crds::{
    TABLE, create, get, invalid_causes, real_definitions, resources, server_with_real_definitions,
};
use serde_json::{Value, json};

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
