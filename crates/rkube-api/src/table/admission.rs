//! Admission configuration: webhook configurations and admission policies with their bindings.

use jiff::Timestamp;
use serde_json::Value;

use super::format::{age, at, count_cell, list, name, selector_go_string, text};
use super::{AGE, Column, NAME, col};

/// `kubectl get mutatingwebhookconfigurations` / `validatingwebhookconfigurations`.
pub(super) const WEBHOOK_CONFIGURATION: &[Column] = &[
    NAME,
    col(
        "Webhooks",
        "integer",
        "Webhooks indicates the number of webhooks registered in this configuration",
    ),
    AGE,
];

/// One webhook configuration's row.
pub(super) fn webhook_configuration(object: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(object),
        count_cell(list(object, &["webhooks"]).len()),
        age(object, now),
    ]
}

/// `kubectl get validatingadmissionpolicies`.
pub(super) const VALIDATING_ADMISSION_POLICY: &[Column] = &[
    NAME,
    col(
        "Validations",
        "integer",
        "Validations indicates the number of validation rules defined in this configuration",
    ),
    col(
        "ParamKind",
        "string",
        "ParamKind specifies the kind of resources used to parameterize this policy",
    ),
    AGE,
];

/// `kubectl get mutatingadmissionpolicies`.
pub(super) const MUTATING_ADMISSION_POLICY: &[Column] = &[
    NAME,
    col(
        "Mutations",
        "integer",
        "Mutation indicates the number of mutations rules defined in this configuration",
    ),
    col(
        "ParamKind",
        "string",
        "ParamKind specifies the kind of resources used to parameterize this policy",
    ),
    AGE,
];

fn policy_row(policy: &Value, rules: &str, now: Timestamp) -> Vec<Value> {
    let param_kind = at(policy, &["spec", "paramKind"]).map_or_else(
        || "<unset>".to_owned(),
        |p| format!("{}/{}", text(p, &["apiVersion"]), text(p, &["kind"])),
    );
    vec![
        name(policy),
        count_cell(list(policy, &["spec", rules]).len()),
        Value::from(param_kind),
        age(policy, now),
    ]
}

/// One validating admission policy's row.
pub(super) fn validating_admission_policy(policy: &Value, now: Timestamp) -> Vec<Value> {
    policy_row(policy, "validations", now)
}

/// One mutating admission policy's row.
pub(super) fn mutating_admission_policy(policy: &Value, now: Timestamp) -> Vec<Value> {
    policy_row(policy, "mutations", now)
}

/// `kubectl get validatingadmissionpolicybindings` / `mutatingadmissionpolicybindings`.
pub(super) const ADMISSION_POLICY_BINDING: &[Column] = &[
    NAME,
    col(
        "PolicyName",
        "string",
        "PolicyName indicates the policy definition which the policy binding binded to",
    ),
    col(
        "ParamRef",
        "string",
        "ParamRef indicates the param resource which sets the configration param",
    ),
    AGE,
];

/// One policy binding's row. A named param without a namespace shows as `*/name`, since the
/// param may be cluster-scoped.
pub(super) fn admission_policy_binding(binding: &Value, now: Timestamp) -> Vec<Value> {
    let param = match at(binding, &["spec", "paramRef"]) {
        None => "<unset>".to_owned(),
        Some(param_ref) => {
            let param_name = text(param_ref, &["name"]);
            let namespace = text(param_ref, &["namespace"]);
            if !param_name.is_empty() {
                if namespace.is_empty() {
                    format!("*/{param_name}")
                } else {
                    format!("{namespace}/{param_name}")
                }
            } else if let Some(selector) = at(param_ref, &["selector"]) {
                selector_go_string(selector)
            } else {
                "<unset>".to_owned()
            }
        }
    };
    vec![
        name(binding),
        Value::from(text(binding, &["spec", "policyName"])),
        Value::from(param),
        age(binding, now),
    ]
}
