//! End to end: admission as a user sets it up with the real kubectl against the real
//! `rkube server` binary — a ValidatingAdmissionPolicy and its binding that refuse a
//! Deployment with the policy's message (and one that only warns), and validating and
//! mutating webhooks served by the test over HTTPS on loopback with a CA of their own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::Cluster;
use serde_json::json;

const POLICY: &str = r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: replica-limit
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
  validations:
  - expression: "object.spec.replicas <= 3"
    messageExpression: "'replicas must be no more than 3, not ' + string(object.spec.replicas)"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: replica-limit-binding
spec:
  policyName: replica-limit
  validationActions: [Deny]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: team-label
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE"]
      resources: ["deployments"]
  validations:
  - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"
    message: "every deployment names its team"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: team-label-binding
spec:
  policyName: team-label
  validationActions: [Warn]
"#;

fn policy_workflow(c: &Cluster) {
    c.apply(POLICY);
    // The policy reaches admission through the server's watch cache.
    let refusal = c.refusal(
        "the policy to refuse a deployment",
        &[
            "create",
            "deployment",
            "big",
            "--image=nginx",
            "--replicas=5",
        ],
        &["delete", "deployment", "big"],
    );
    assert!(
        refusal.contains(
            "ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-binding' \
             denied request: replicas must be no more than 3, not 5"
        ),
        "{refusal}"
    );
    // Within the limit it is created, with the Warn binding's warning on stderr.
    let out = c.run(&[
        "create",
        "deployment",
        "small",
        "--image=nginx",
        "--replicas=2",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            "Warning: Validation failed for ValidatingAdmissionPolicy 'team-label' with binding \
             'team-label-binding': every deployment names its team"
        ),
        "{stderr}"
    );
    // Scaling past the limit is an update the policy refuses too.
    let refusal = c.fails(&["scale", "deployment", "small", "--replicas=4"]);
    assert!(
        refusal.contains("denied request: replicas must be no more than 3, not 4"),
        "{refusal}"
    );
    // Deleting the binding lifts the limit.
    c.ok(&[
        "delete",
        "validatingadmissionpolicybinding",
        "replica-limit-binding",
    ]);
    c.eventually("the limit to be lifted", || {
        c.try_run(&["scale", "deployment", "small", "--replicas=4"])
    });
}

#[test]
fn kubectl_1_33_sets_up_a_validating_admission_policy() {
    policy_workflow(&Cluster::start("1.33"));
}

#[test]
fn kubectl_1_32_sets_up_a_validating_admission_policy() {
    policy_workflow(&Cluster::start("1.32"));
}

/// The configurations of a validating webhook (refusing ConfigMaps with a key `forbidden`)
/// and a mutating one (labelling ConfigMaps `checked: "yes"`): each server's port and the
/// CA (PEM) of its certificate.
fn webhook_manifests(validating: (u16, &str), mutating: (u16, &str)) -> String {
    let ca = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let (validating, validating_ca) = (validating.0, ca(validating.1));
    let (mutating, mutating_ca) = (mutating.0, ca(mutating.1));
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: no-forbidden-keys
webhooks:
- name: keys.example.com
  clientConfig:
    url: https://127.0.0.1:{validating}/validate
    caBundle: {validating_ca}
  rules:
  - operations: ["CREATE", "UPDATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["configmaps"]
  namespaceSelector:
    matchLabels: {{webhooks: "on"}}
  sideEffects: None
  admissionReviewVersions: ["v1"]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: label-configmaps
webhooks:
- name: label.example.com
  clientConfig:
    url: https://127.0.0.1:{mutating}/mutate
    caBundle: {mutating_ca}
  rules:
  - operations: ["CREATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["configmaps"]
  namespaceSelector:
    matchLabels: {{webhooks: "on"}}
  sideEffects: None
  admissionReviewVersions: ["v1"]
"#
    )
}

/// An `AdmissionReview` answering `request` with `response`.
fn review(request: &serde_json::Value, mut response: serde_json::Value) -> serde_json::Value {
    response["uid"] = request["uid"].clone();
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// The validating webhook: refuses a ConfigMap with a key `forbidden`.
fn validate(question: &serde_json::Value) -> serde_json::Value {
    let request = &question["request"];
    if request["object"]["data"].get("forbidden").is_some() {
        let status = json!({"code": 403, "message": "the key \"forbidden\" is not allowed"});
        return review(request, json!({"allowed": false, "status": status}));
    }
    review(request, json!({"allowed": true}))
}

/// The mutating webhook: labels a ConfigMap `checked: "yes"`.
fn mutate(question: &serde_json::Value) -> serde_json::Value {
    let request = &question["request"];
    let patch = if request["object"]["metadata"]["labels"].is_object() {
        json!([{"op": "add", "path": "/metadata/labels/checked", "value": "yes"}])
    } else {
        json!([{"op": "add", "path": "/metadata/labels", "value": {"checked": "yes"}}])
    };
    let patch = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
    review(
        request,
        json!({"allowed": true, "patchType": "JSONPatch", "patch": patch}),
    )
}

fn webhook_workflow(c: &Cluster) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (validating, validating_ca) = runtime.block_on(rkube_apiserver_tests::json_server(
        "webhook-ca",
        &["127.0.0.1"],
        validate,
    ));
    let (mutating, mutating_ca) = runtime.block_on(rkube_apiserver_tests::json_server(
        "webhook-ca",
        &["127.0.0.1"],
        mutate,
    ));
    c.ok(&["create", "namespace", "checked"]);
    c.ok(&["label", "namespace", "checked", "webhooks=on"]);
    let manifests = c.write(
        "webhooks.yaml",
        &webhook_manifests(
            (validating.port(), &validating_ca),
            (mutating.port(), &mutating_ca),
        ),
    );
    c.ok(&["apply", "-f", &manifests]);
    let refusal = c.refusal(
        "the validating webhook to refuse",
        &[
            "create",
            "configmap",
            "bad",
            "-n",
            "checked",
            "--from-literal=forbidden=x",
        ],
        &["delete", "configmap", "bad", "-n", "checked"],
    );
    assert!(
        refusal.contains(
            "admission webhook \"keys.example.com\" denied the request: the key \"forbidden\" is not allowed"
        ),
        "{refusal}"
    );
    c.ok(&[
        "create",
        "configmap",
        "good",
        "-n",
        "checked",
        "--from-literal=a=b",
    ]);
    let label = c.ok(&[
        "get",
        "configmap",
        "good",
        "-n",
        "checked",
        "-o",
        "jsonpath={.metadata.labels.checked}",
    ]);
    assert_eq!(label, "yes");
    // Outside the selected namespace no webhook is called.
    c.ok(&[
        "create",
        "configmap",
        "elsewhere",
        "--from-literal=forbidden=x",
    ]);
    let labels = c.ok(&[
        "get",
        "configmap",
        "elsewhere",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert_eq!(labels, "");
    // An update the validating webhook refuses leaves the object as it was.
    let refusal = c.fails(&[
        "patch",
        "configmap",
        "good",
        "-n",
        "checked",
        "--type=merge",
        "-p",
        r#"{"data":{"forbidden":"y"}}"#,
    ]);
    assert!(refusal.contains("denied the request"), "{refusal}");
    let data = c.ok(&[
        "get",
        "configmap",
        "good",
        "-n",
        "checked",
        "-o",
        "jsonpath={.data}",
    ]);
    assert_eq!(data, r#"{"a":"b"}"#);
}

#[test]
fn kubectl_1_33_sets_up_validating_and_mutating_webhooks() {
    webhook_workflow(&Cluster::start("1.33"));
}

#[test]
fn kubectl_1_32_sets_up_validating_and_mutating_webhooks() {
    webhook_workflow(&Cluster::start("1.32"));
}
