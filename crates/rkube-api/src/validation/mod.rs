//! Validation of objects before they are stored, with upstream's field errors.

pub mod names;

use serde_json::Value;

use crate::FieldError;

/// Kinds whose names must be DNS-1123 labels rather than subdomains.
const LABEL_NAMED: &[(&str, &str)] = &[("", "Namespace"), ("", "Service")];

/// Validates an object for create (`old` = None) or update. This version checks names;
/// per-kind validation extends it.
pub fn validate(group: &str, kind: &str, object: &Value, _old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    let problems = if LABEL_NAMED.contains(&(group, kind)) {
        names::is_dns1123_label(name)
    } else {
        names::is_dns1123_subdomain(name)
    };
    for p in problems {
        errors.push(FieldError::invalid("metadata.name", name, &p));
    }
    errors
}
