//! ValidatingAdmissionPolicies: a bound policy refuses a Deployment with too many replicas
//! with its message, a Warn binding lets the request through with a warning, and a policy
//! reads its limit from a ConfigMap named by the binding's paramRef.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kube::api::{Api, DynamicObject, PostParams};
use kube::client::Body;
use kube::core::{ApiResource, GroupVersionKind};
use rkube_apiserver_tests::start;
use serde_json::{Value, json};

fn api(client: &kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind),
        plural,
    );
    Api::all_with(client.clone(), &resource)
}

async fn create_cluster_object(client: &kube::Client, kind: &str, plural: &str, object: Value) {
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    api(client, kind, plural)
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

fn policy(name: &str, validation: Value, param_kind: Option<Value>) -> Value {
    let mut spec = json!({
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{
            "apiGroups": ["apps"], "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]},
        "validations": [validation],
    });
    if let Some(kind) = param_kind {
        spec["paramKind"] = kind;
    }
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": spec,
    })
}

fn binding(name: &str, policy: &str, actions: &[&str], param_ref: Option<Value>) -> Value {
    let mut spec = json!({"policyName": policy, "validationActions": actions});
    if let Some(r) = param_ref {
        spec["paramRef"] = r;
    }
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": spec,
    })
}

fn deployment(name: &str, replicas: i64) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    })
    .to_string()
}

/// Creates a Deployment; the status code, the warnings and the body.
async fn create(client: &kube::Client, body: String) -> (u16, Vec<String>, Value) {
    let request = http::Request::builder()
        .method("POST")
        .uri("/apis/apps/v1/namespaces/default/deployments")
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(Body::from(body.into_bytes()))
        .unwrap();
    let response = client.send(request).await.unwrap();
    let status = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = response.into_body().collect_bytes().await.unwrap();
    (status, warnings, serde_json::from_slice(&body).unwrap())
}

/// Creates Deployments named `<prefix>-<n>` until one is refused (the policy and its
/// binding reach admission through the watch cache).
async fn until_refused(client: &kube::Client, prefix: &str, replicas: i64) -> Value {
    for attempt in 0..100 {
        let (code, _, body) =
            create(client, deployment(&format!("{prefix}-{attempt}"), replicas)).await;
        if code != 201 {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the policy never refused a Deployment");
}

#[tokio::test]
async fn a_policy_refuses_a_deployment_with_too_many_replicas() {
    let t = start().await;
    create_cluster_object(
        &t.client,
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        policy(
            "replica-limit",
            json!({"expression": "object.spec.replicas <= 5", "message": "replicas must be no greater than 5"}),
            None,
        ),
    )
    .await;
    create_cluster_object(
        &t.client,
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        binding("replica-limit-binding", "replica-limit", &["Deny"], None),
    )
    .await;
    let status = until_refused(&t.client, "big", 10).await;
    assert_eq!(status["code"], 422);
    assert_eq!(status["reason"], "Invalid");
    let message = status["message"].as_str().unwrap();
    assert!(message.starts_with("deployments.apps \"big-"), "{message}");
    assert!(
        message.ends_with(
            "\" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding \
             'replica-limit-binding' denied request: replicas must be no greater than 5"
        ),
        "{message}"
    );
    let (code, _, _) = create(&t.client, deployment("small", 3)).await;
    assert_eq!(code, 201);
}

#[tokio::test]
async fn a_warn_binding_admits_the_request_with_a_warning() {
    let t = start().await;
    create_cluster_object(
        &t.client,
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        policy(
            "replica-limit",
            json!({"expression": "object.spec.replicas <= 5",
                   "messageExpression": "'replicas ' + string(object.spec.replicas) + ' is more than 5'"}),
            None,
        ),
    )
    .await;
    create_cluster_object(
        &t.client,
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        binding("replica-warn", "replica-limit", &["Warn"], None),
    )
    .await;
    for attempt in 0..100 {
        let (code, warnings, _) = create(&t.client, deployment(&format!("w-{attempt}"), 9)).await;
        assert_eq!(code, 201);
        if !warnings.is_empty() {
            assert_eq!(
                warnings,
                [
                    "299 - \"Validation failed for ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-warn': replicas 9 is more than 5\""
                ]
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no warning");
}

#[tokio::test]
async fn a_policy_reads_its_limit_from_a_configmap_param() {
    let t = start().await;
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(t.client.clone(), "default");
    configmaps
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "limits"}, "data": {"maxReplicas": "3"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    create_cluster_object(
        &t.client,
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        policy(
            "param-limit",
            json!({"expression": "object.spec.replicas <= int(params.data.maxReplicas)",
                   "messageExpression": "'at most ' + params.data.maxReplicas + ' replicas'",
                   "reason": "Forbidden"}),
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap"})),
        ),
    )
    .await;
    create_cluster_object(
        &t.client,
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        binding(
            "param-limit-binding",
            "param-limit",
            &["Deny"],
            Some(json!({"name": "limits", "namespace": "default", "parameterNotFoundAction": "Deny"})),
        ),
    )
    .await;
    let status = until_refused(&t.client, "p", 4).await;
    assert_eq!(status["code"], 403);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .ends_with("denied request: at most 3 replicas"),
        "{status}"
    );
    // Without the ConfigMap the binding's parameterNotFoundAction Deny refuses everything.
    configmaps
        .delete("limits", &Default::default())
        .await
        .unwrap();
    for attempt in 0..100 {
        let (code, _, body) = create(&t.client, deployment(&format!("n-{attempt}"), 1)).await;
        if code != 201 {
            assert!(
                body["message"].as_str().unwrap().ends_with(
                    "denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
                ),
                "{body}"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a missing param did not refuse");
}

#[tokio::test]
async fn a_policy_whose_expression_does_not_compile_is_refused() {
    let t = start().await;
    let bad: DynamicObject = serde_json::from_value(policy(
        "broken",
        json!({"expression": "object.spec.replicas <= limit"}),
        None,
    ))
    .unwrap();
    let err = api(
        &t.client,
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
    )
    .create(&PostParams::default(), &bad)
    .await
    .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(status.code, 422);
    assert!(
        status.message.starts_with(
            "ValidatingAdmissionPolicy.admissionregistration.k8s.io \"broken\" is invalid: \
             spec.validations[0].expression: Invalid value: \"object.spec.replicas <= limit\": \
             compilation failed: ERROR: <input>:1:25: undeclared reference to 'limit'"
        ),
        "{}",
        status.message
    );
}
