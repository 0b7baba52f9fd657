//! CustomResourceDefinitions themselves: upstream's defaults and the checks that refuse a bad
//! definition (names, versions, structural schemas, subresources, printer columns,
//! conversion), with upstream's field paths and messages.

use serde_json::{Value, json};

use super::jsonpath;
use crate::error::FieldError;
use crate::validation::names::{is_dns1035_label, is_dns1123_subdomain};

/// Upstream's defaults: conversion strategy None, listKind and singular from the kind, the
/// webhook Service port 443.
pub fn apply_defaults(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let conversion = spec.entry("conversion").or_insert_with(|| json!({}));
    if conversion.get("strategy").is_none() {
        conversion["strategy"] = json!("None");
    }
    if let Some(service) = conversion
        .pointer_mut("/webhook/clientConfig/service")
        .and_then(Value::as_object_mut)
    {
        service.entry("port").or_insert(json!(443));
    }
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if !kind.is_empty() {
            if names
                .get("listKind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                names.insert("listKind".into(), json!(format!("{kind}List")));
            }
            if names
                .get("singular")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                names.insert("singular".into(), json!(kind.to_ascii_lowercase()));
            }
        }
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn label_errors(path: &str, value: &str, errs: &mut Vec<FieldError>) {
    for e in is_dns1035_label(value) {
        errs.push(FieldError::invalid(path, value, &e));
    }
}

/// Checks a definition on create, and on update against `old`.
pub fn validate(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &crd["spec"];
    let group = s(spec, "group");
    let names = &spec["names"];
    let plural = s(names, "plural");
    let name = s(&crd["metadata"], "name");
    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else {
        for e in is_dns1123_subdomain(group) {
            errs.push(FieldError::invalid("spec.group", group, &e));
        }
        if !group.contains('.') {
            errs.push(FieldError::invalid(
                "spec.group",
                group,
                "should be a domain with at least one dot",
            ));
        }
    }
    match s(spec, "scope") {
        "" => errs.push(FieldError::required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(FieldError::not_supported(
            "spec.scope",
            other,
            &["Cluster", "Namespaced"],
        )),
    }
    validate_names(names, "spec.names", &mut errs);
    validate_versions(spec, &mut errs);
    validate_conversion(spec, &mut errs);
    if let Some(old) = old {
        let old_group = s(&old["spec"], "group");
        if group != old_group {
            errs.push(FieldError::invalid(
                "spec.group",
                group,
                "field is immutable",
            ));
        }
        let established = old["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| s(c, "type") == "Established" && s(c, "status") == "True");
        if established {
            if s(spec, "scope") != s(&old["spec"], "scope") {
                errs.push(FieldError::invalid(
                    "spec.scope",
                    s(spec, "scope"),
                    "field is immutable",
                ));
            }
            if s(names, "kind") != s(&old["spec"]["names"], "kind") {
                errs.push(FieldError::invalid(
                    "spec.names.kind",
                    s(names, "kind"),
                    "field is immutable",
                ));
            }
        }
    }
    errs
}

fn validate_names(names: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let plural = s(names, "plural");
    if plural.is_empty() {
        errs.push(FieldError::required(format!("{path}.plural"), ""));
    } else {
        label_errors(&format!("{path}.plural"), plural, errs);
    }
    let singular = s(names, "singular");
    if !singular.is_empty() {
        label_errors(&format!("{path}.singular"), singular, errs);
    }
    let kind = s(names, "kind");
    if kind.is_empty() {
        errs.push(FieldError::required(format!("{path}.kind"), ""));
    } else {
        let lower = kind.to_ascii_lowercase();
        if !is_dns1035_label(&lower).is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.kind"),
                kind,
                "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
            ));
        }
    }
    let list_kind = s(names, "listKind");
    if list_kind.is_empty() {
        errs.push(FieldError::required(format!("{path}.listKind"), ""));
    } else if list_kind == kind {
        errs.push(FieldError::invalid(
            format!("{path}.listKind"),
            list_kind,
            "kind and listKind may not be the same or parsing output will be inconsistent",
        ));
    }
    for key in ["shortNames", "categories"] {
        for (i, v) in names[key].as_array().into_iter().flatten().enumerate() {
            label_errors(
                &format!("{path}.{key}[{i}]"),
                v.as_str().unwrap_or(""),
                errs,
            );
        }
    }
}

fn validate_versions(spec: &Value, errs: &mut Vec<FieldError>) {
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
        return;
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            Value::Array(versions.clone()),
            "must have exactly one version marked as storage version",
        ));
    }
    if !versions.iter().any(|v| v["served"].as_bool() == Some(true)) {
        errs.push(FieldError::invalid(
            "spec.versions",
            Value::Array(versions.clone()),
            "must have at least one version marked as served",
        ));
    }
    // Schemas, subresources and columns that every version has alike are validated once, at
    // their top-level place, as upstream converts them to its internal form.
    let schema_path = |i: usize| version_field_path(&versions, i, "schema", "validation");
    if identical_in_versions(&versions, "schema") {
        check_version_schema(&versions[0], &schema_path(0), errs);
    }
    let subresources_at =
        |i: usize| version_field_path(&versions, i, "subresources", "subresources");
    let columns_at = |i: usize| {
        version_field_path(
            &versions,
            i,
            "additionalPrinterColumns",
            "additionalPrinterColumns",
        )
    };
    for (i, v) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        let name = s(v, "name");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{at}.name"), ""));
        } else {
            label_errors(&format!("{at}.name"), name, errs);
            if versions[..i].iter().any(|o| s(o, "name") == name) {
                errs.push(FieldError::invalid(
                    format!("{at}.name"),
                    name,
                    "must be unique",
                ));
            }
        }
        if !identical_in_versions(&versions, "schema") {
            check_version_schema(v, &schema_path(i), errs);
        }
        let first_alike = |field: &str| i > 0 && identical_in_versions(&versions, field);
        if let Some(scale) = v
            .pointer("/subresources/scale")
            .filter(|s| s.is_object() && !first_alike("subresources"))
        {
            let sub = format!("{}.scale", subresources_at(i));
            for (key, under) in [
                ("specReplicasPath", ".spec."),
                ("statusReplicasPath", ".status."),
                ("labelSelectorPath", ""),
            ] {
                let p = s(scale, key);
                if p.is_empty() {
                    if key != "labelSelectorPath" {
                        errs.push(FieldError::required(format!("{sub}.{key}"), ""));
                    }
                    continue;
                }
                let under = if under.is_empty() {
                    if p.starts_with(".spec.") {
                        ".spec."
                    } else {
                        ".status."
                    }
                } else {
                    under
                };
                if !p.starts_with(under) || !jsonpath::is_valid(p) || p.contains('[') {
                    errs.push(FieldError::invalid(
                        format!("{sub}.{key}"),
                        p,
                        &format!(
                            "should be a json path under {}",
                            under.trim_end_matches('.')
                        ),
                    ));
                }
            }
        }
        for (j, c) in v["additionalPrinterColumns"]
            .as_array()
            .filter(|_| !first_alike("additionalPrinterColumns"))
            .into_iter()
            .flatten()
            .enumerate()
        {
            let cat = format!("{}[{j}]", columns_at(i));
            if s(c, "name").is_empty() {
                errs.push(FieldError::required(format!("{cat}.name"), ""));
            }
            let t = s(c, "type");
            if t.is_empty() {
                errs.push(FieldError::required(format!("{cat}.type"), ""));
            } else if !matches!(t, "integer" | "number" | "string" | "boolean" | "date") {
                errs.push(FieldError::not_supported(
                    format!("{cat}.type"),
                    t,
                    &["integer", "number", "string", "boolean", "date"],
                ));
            }
            let p = s(c, "jsonPath");
            if p.is_empty() {
                errs.push(FieldError::required(format!("{cat}.jsonPath"), ""));
            } else if !jsonpath::is_valid(p) {
                errs.push(FieldError::invalid(
                    format!("{cat}.jsonPath"),
                    p,
                    "must be a simple json path starting with .",
                ));
            }
        }
    }
}

/// Upstream's structural rules that matter most: every specified field has a type (unless it
/// is int-or-string or keeps unknown fields), and the root is an object.
/// Whether every version carries `field`, all alike: upstream then holds it once at the top
/// level of the spec, and reports its errors there.
pub fn identical_in_versions(versions: &[Value], field: &str) -> bool {
    let Some(first) = versions.first().and_then(|v| v.get(field)) else {
        return false;
    };
    !first.is_null() && versions.iter().all(|v| v.get(field) == Some(first))
}

/// Where errors in version `i`'s `field` are reported: `spec.<top_level>` when every version
/// has it alike, else `spec.versions[i].<field>`; a schema's path ends in `.openAPIV3Schema`.
pub fn version_field_path(versions: &[Value], i: usize, field: &str, top_level: &str) -> String {
    let base = if identical_in_versions(versions, field) {
        format!("spec.{top_level}")
    } else {
        format!("spec.versions[{i}].{field}")
    };
    if field == "schema" {
        format!("{base}.openAPIV3Schema")
    } else {
        base
    }
}

/// A version's schema: present and structural.
fn check_version_schema(version: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match version.pointer("/schema/openAPIV3Schema") {
        Some(schema) if schema.is_object() => structural(schema, path, true, errs),
        _ => errs.push(FieldError::required(path, "schemas are required")),
    }
}

fn structural(schema: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    let t = s(schema, "type");
    let escapes = schema["x-kubernetes-int-or-string"].as_bool() == Some(true)
        || schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true);
    if root {
        if t.is_empty() && !escapes {
            errs.push(FieldError::required(
                format!("{path}.type"),
                "must not be empty at the root",
            ));
        } else if !t.is_empty() && t != "object" {
            errs.push(FieldError::invalid(
                format!("{path}.type"),
                t,
                "must be object at the root",
            ));
        }
    } else if t.is_empty() && !escapes {
        errs.push(FieldError::required(
            format!("{path}.type"),
            "must not be empty for specified object fields",
        ));
    }
    if let Some(Value::Object(props)) = schema.get("properties") {
        if schema
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false))
        {
            errs.push(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        for (name, child) in props {
            if root && name == "metadata" {
                metadata_schema(child, &format!("{path}.properties[metadata]"), errs);
                continue;
            }
            structural(child, &format!("{path}.properties[{name}]"), false, errs);
        }
    }
    if let Some(items) = schema.get("items") {
        if items.is_object() {
            structural(items, &format!("{path}.items"), false, errs);
        }
    } else if t == "array" {
        errs.push(FieldError::required(
            format!("{path}.items"),
            "must be specified",
        ));
    }
    if let Some(a) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        structural(a, &format!("{path}.additionalProperties"), false, errs);
    }
}

/// The root's `metadata` may only restrict `name` and `generateName`, as strings.
fn metadata_schema(schema: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let t = s(schema, "type");
    if !t.is_empty() && t != "object" {
        errs.push(FieldError::invalid(
            format!("{path}.type"),
            t,
            "must be object",
        ));
    }
    if let Some(Value::Object(props)) = schema.get("properties") {
        for (name, child) in props {
            if name != "name" && name != "generateName" {
                errs.push(FieldError::forbidden(
                    format!("{path}.properties[{name}]"),
                    "must not be specified",
                ));
            } else if !matches!(s(child, "type"), "" | "string") {
                errs.push(FieldError::invalid(
                    format!("{path}.properties[{name}].type"),
                    s(child, "type"),
                    "must be string",
                ));
            }
        }
    }
}

fn validate_conversion(spec: &Value, errs: &mut Vec<FieldError>) {
    let conversion = &spec["conversion"];
    match s(conversion, "strategy") {
        "" | "None" => {
            if conversion.get("webhook").is_some_and(|w| !w.is_null()) {
                errs.push(FieldError::forbidden(
                    "spec.conversion.webhook",
                    "should not be set when strategy is not set to Webhook",
                ));
            }
        }
        "Webhook" => {
            let config = conversion.pointer("/webhook/clientConfig");
            if config.is_none_or(Value::is_null) {
                errs.push(FieldError::required(
                    "spec.conversion.webhook",
                    "required when strategy is set to Webhook",
                ));
                return;
            }
            let reviews = conversion
                .pointer("/webhook/conversionReviewVersions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !reviews
                .iter()
                .any(|v| matches!(v.as_str(), Some("v1" | "v1beta1")))
            {
                errs.push(FieldError::invalid(
                    "spec.conversion.webhook.conversionReviewVersions",
                    Value::Array(reviews),
                    "must include at least one of v1, v1beta1",
                ));
            }
            let config = config.unwrap_or(&Value::Null);
            let url = config.get("url").and_then(Value::as_str);
            let service = config.get("service").filter(|s| s.is_object());
            match (url, service) {
                (Some(_), Some(_)) | (None, None) => errs.push(FieldError::required(
                    "spec.conversion.webhook.clientConfig",
                    "exactly one of url or service is required",
                )),
                (Some(url), None) if !url.starts_with("https://") => {
                    errs.push(FieldError::invalid(
                        "spec.conversion.webhook.clientConfig.url",
                        url,
                        "'https' is the only allowed URL scheme",
                    ));
                }
                _ => {}
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.conversion.strategy",
            other,
            &["None", "Webhook"],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "properties": {"spec": {"type": "object",
                            "properties": {"size": {"type": "integer"}}}}}}}]}
        })
    }

    #[test]
    fn a_good_definition_passes_after_defaulting() {
        let mut c = crd();
        apply_defaults(&mut c);
        assert_eq!(c["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(c["spec"]["names"]["singular"], "widget");
        assert_eq!(c["spec"]["conversion"]["strategy"], "None");
        assert_eq!(validate(&c, None), []);
    }

    #[test]
    fn bad_definitions_are_refused_with_upstream_messages() {
        let mut c = crd();
        c["metadata"]["name"] = json!("other.example.com");
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["size"] = json!({"description": "no type"});
        c["spec"]["versions"][0]["storage"] = json!(false);
        apply_defaults(&mut c);
        let text: Vec<String> = validate(&c, None).iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert_eq!(
            text[0],
            "metadata.name: Invalid value: \"other.example.com\": must be spec.names.plural+\".\"+spec.group"
        );
        assert!(text[1].ends_with("must have exactly one version marked as storage version"));
        assert_eq!(
            text[2],
            "spec.validation.openAPIV3Schema.properties[spec].properties[size].type: Required value: must not be empty for specified object fields"
        );
    }

    #[test]
    fn schema_errors_are_reported_once_at_the_top_when_every_version_has_the_schema() {
        let mut c = crd();
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["size"] = json!({"description": "no type"});
        let mut second = c["spec"]["versions"][0].clone();
        second["name"] = json!("v2");
        second["storage"] = json!(false);
        c["spec"]["versions"]
            .as_array_mut()
            .unwrap()
            .push(second.clone());
        apply_defaults(&mut c);
        let text: Vec<String> = validate(&c, None).iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "spec.validation.openAPIV3Schema.properties[spec].properties[size].type: Required value: must not be empty for specified object fields"
            ]
        );
        // Once the schemas differ, each is reported in its version.
        c["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["description"] = json!("v2");
        let text: Vec<String> = validate(&c, None).iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].starts_with("spec.versions[0].schema.openAPIV3Schema.properties[spec]"));
        assert!(text[1].starts_with("spec.versions[1].schema.openAPIV3Schema.properties[spec]"));
    }
}
