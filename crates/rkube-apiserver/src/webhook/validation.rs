//! Upstream's checks of a Mutating- or ValidatingWebhookConfiguration (admissionregistration
//! v1 `ValidateValidatingWebhookConfiguration` and its mutating twin), with its messages.

use std::collections::HashSet;

use rkube_api::FieldError;
use serde_json::Value;

/// What is wrong with a webhook configuration's webhooks (`mutating`: it may set
/// reinvocationPolicy).
pub(crate) fn check(configuration: &Value, mutating: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut names = HashSet::new();
    for (i, hook) in configuration["webhooks"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = |field: &str| format!("webhooks[{i}].{field}");
        let name = hook["name"].as_str().unwrap_or("");
        errors.extend(fully_qualified_name(&at("name"), name));
        if !name.is_empty() && !names.insert(name) {
            errors.push(FieldError::duplicate(at("name"), name));
        }
        match hook["sideEffects"].as_str() {
            None | Some("") => errors.push(FieldError::required(
                at("sideEffects"),
                "must specify one of None, NoneOnDryRun",
            )),
            Some("None" | "NoneOnDryRun") => {}
            Some(other) => errors.push(FieldError::not_supported(
                at("sideEffects"),
                other,
                &["None", "NoneOnDryRun"],
            )),
        }
        let versions: Vec<&str> = hook["admissionReviewVersions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if versions.is_empty() {
            errors.push(FieldError::required(
                at("admissionReviewVersions"),
                "must specify one of v1, v1beta1",
            ));
        } else if !versions.iter().any(|v| matches!(*v, "v1" | "v1beta1")) {
            errors.push(FieldError::invalid(
                at("admissionReviewVersions"),
                hook["admissionReviewVersions"].clone(),
                "must include at least one of v1, v1beta1",
            ));
        }
        errors.extend(client_config(&at("clientConfig"), &hook["clientConfig"]));
        if let Some(timeout) = hook["timeoutSeconds"].as_i64()
            && !(1..=30).contains(&timeout)
        {
            errors.push(FieldError::invalid(
                at("timeoutSeconds"),
                timeout,
                "the timeout value must be between 1 and 30 seconds",
            ));
        }
        let mut one_of = |field: &str, allowed: &[&str]| {
            if let Some(value) = hook[field].as_str()
                && !allowed.contains(&value)
            {
                errors.push(FieldError::not_supported(at(field), value, allowed));
            }
        };
        one_of("failurePolicy", &["Fail", "Ignore"]);
        one_of("matchPolicy", &["Equivalent", "Exact"]);
        if mutating {
            one_of("reinvocationPolicy", &["IfNeeded", "Never"]);
        }
    }
    errors
}

/// Upstream's `IsFullyQualifiedName`: a DNS subdomain of at least three labels.
fn fully_qualified_name(field: &str, name: &str) -> Option<FieldError> {
    if name.is_empty() {
        return Some(FieldError::required(field, ""));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Some(FieldError::invalid(
            field,
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. \
             'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ));
    }
    if name.split('.').count() < 3 {
        return Some(FieldError::invalid(
            field,
            name,
            "should be a domain with at least three segments separated by dots",
        ));
    }
    None
}

/// Exactly one of `url` (https, with a host, no user, query or fragment) and `service`.
fn client_config(field: &str, config: &Value) -> Vec<FieldError> {
    let (url, service) = (config["url"].as_str(), config.get("service"));
    match (url, service.filter(|s| !s.is_null())) {
        (Some(url), None) => check_url(&format!("{field}.url"), url),
        (None, Some(service)) => {
            let mut errors = Vec::new();
            for part in ["name", "namespace"] {
                if service[part].as_str().is_none_or(str::is_empty) {
                    errors.push(FieldError::required(
                        format!("{field}.service.{part}"),
                        &format!("service {part} is required"),
                    ));
                }
            }
            if let Some(path) = service["path"].as_str()
                && !path.starts_with('/')
            {
                errors.push(FieldError::invalid(
                    format!("{field}.service.path"),
                    path,
                    "must start with a '/'",
                ));
            }
            if let Some(port) = service["port"].as_i64()
                && !(1..=65535).contains(&port)
            {
                errors.push(FieldError::invalid(
                    format!("{field}.service.port"),
                    port,
                    "port is not valid: must be between 1 and 65535, inclusive",
                ));
            }
            errors
        }
        _ => vec![FieldError::required(
            field,
            "exactly one of url or service is required",
        )],
    }
}

fn check_url(field: &str, url: &str) -> Vec<FieldError> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let mut errors = Vec::new();
    if scheme != "https" {
        errors.push(FieldError::invalid(
            field,
            scheme,
            "'https' is the only allowed URL scheme",
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        errors.push(FieldError::invalid(field, "", "host must be specified"));
    }
    if authority.contains('@') {
        errors.push(FieldError::invalid(
            field,
            authority.split('@').next().unwrap_or(""),
            "user information is not permitted in the URL",
        ));
    }
    if let Some((_, fragment)) = rest.split_once('#') {
        errors.push(FieldError::invalid(
            field,
            fragment,
            "fragments are not permitted in the URL",
        ));
    }
    if let Some((_, query)) = rest.split('#').next().unwrap_or("").split_once('?') {
        errors.push(FieldError::invalid(
            field,
            query,
            "query parameters are not permitted in the URL",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(config: Value) -> Vec<String> {
        check(&config, true).iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn a_well_formed_configuration_passes() {
        let config = json!({"webhooks": [{
            "name": "deny.example.com",
            "clientConfig": {"url": "https://127.0.0.1:8443/validate"},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }]});
        assert!(messages(config).is_empty());
    }

    #[test]
    fn upstream_messages_for_each_mistake() {
        let config = json!({"webhooks": [
            {
                "name": "deny",
                "clientConfig": {"url": "http://127.0.0.1/x?a=b"},
                "admissionReviewVersions": [],
                "timeoutSeconds": 31,
            },
            {
                "name": "a.b.c",
                "clientConfig": {},
                "sideEffects": "Some",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Sometimes",
            },
            {
                "name": "a.b.c",
                "clientConfig": {"service": {"name": "s", "namespace": "n", "path": "x"}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            },
        ]});
        assert_eq!(
            messages(config),
            [
                "webhooks[0].name: Invalid value: \"deny\": should be a domain with at least three segments separated by dots",
                "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
                "webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1",
                "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme",
                "webhooks[0].clientConfig.url: Invalid value: \"a=b\": query parameters are not permitted in the URL",
                "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
                "webhooks[1].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
                "webhooks[1].clientConfig: Required value: exactly one of url or service is required",
                "webhooks[1].failurePolicy: Unsupported value: \"Sometimes\": supported values: \"Fail\", \"Ignore\"",
                "webhooks[2].name: Duplicate value: \"a.b.c\"",
                "webhooks[2].clientConfig.service.path: Invalid value: \"x\": must start with a '/'",
            ]
        );
    }
}
