//! The resources of the real Gateway API definitions (`testdata/crds/gateway-api`) are
//! defaulted and checked by their many CEL rules as on upstream Kubernetes, schema errors and
//! rule failures are reported together as upstream reports them, and the largest objects
//! the schemas allow stay within the CEL cost limit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rkube_apiserver_tests::real_crds::{
    TABLE, create, get, invalid_causes, resources, server_with_real_definitions,
};
use serde_json::{Value, json};

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
