//! What a CustomResourceDefinition's structural schema (`openAPIV3Schema`) does to a custom
//! resource: pruning of fields the schema does not name, defaulting, and validation with
//! upstream's field paths and messages (kube-openapi's validator as the apiextensions server
//! reports it).

use serde_json::{Map, Value};

use crate::error::{FieldError, FieldErrorKind};

/// The schema of a property of `schema`, if it names one (or every one, through
/// `additionalProperties`).
fn property<'a>(schema: &'a Value, name: &str) -> Option<&'a Value> {
    if let Some(p) = schema.get("properties").and_then(|p| p.get(name)) {
        return Some(p);
    }
    match schema.get("additionalProperties") {
        Some(s @ Value::Object(_)) => Some(s),
        _ => None,
    }
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Removes what the schema does not name, and `null`s where it does not allow them (upstream
/// drops those before defaulting); returns the paths of the removed unknown fields, as
/// strict field validation reports them. At the root, `apiVersion`, `kind` and `metadata` are
/// kept (metadata is checked as ObjectMeta elsewhere).
pub fn prune(schema: &Value, object: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    prune_at(schema, object, "", true, &mut unknown);
    unknown
}

fn prune_at(schema: &Value, value: &mut Value, path: &str, root: bool, unknown: &mut Vec<String>) {
    let embedded = flag(schema, "x-kubernetes-embedded-resource");
    match value {
        Value::Object(map) => {
            if flag(schema, "x-kubernetes-preserve-unknown-fields") {
                // Unknown fields stay, the named ones are still pruned inside.
                for (name, child) in map.iter_mut() {
                    if let Some(s) = property(schema, name) {
                        prune_at(s, child, &join(path, name), false, unknown);
                    }
                }
                drop_nulls(schema, map);
                return;
            }
            let names: Vec<String> = map.keys().cloned().collect();
            for name in names {
                if (root || embedded) && matches!(name.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    continue;
                }
                match property(schema, &name) {
                    Some(s) => {
                        if let Some(child) = map.get_mut(&name) {
                            prune_at(s, child, &join(path, &name), false, unknown);
                        }
                    }
                    None if schema.get("additionalProperties") == Some(&Value::Bool(true)) => {}
                    None => {
                        map.remove(&name);
                        unknown.push(format!("unknown field \"{}\"", join(path, &name)));
                    }
                }
            }
            drop_nulls(schema, map);
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_at(s, item, &format!("{path}[{i}]"), false, unknown);
                }
            }
        }
        _ => {}
    }
}

/// Removes `null` fields whose schema does not say `nullable: true` and has no default (those
/// get their default instead).
fn drop_nulls(schema: &Value, map: &mut Map<String, Value>) {
    map.retain(|name, v| {
        if !v.is_null() {
            return true;
        }
        match property(schema, name) {
            Some(s) => flag(s, "nullable") || s.get("default").is_some(),
            None => true,
        }
    });
}

/// Sets the schema's defaults where the object leaves fields out (or null where null is not
/// allowed), top down, so that defaults inside a defaulted object apply too.
pub fn default(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = schema.get("properties") {
                for (name, s) in props {
                    let Some(d) = s.get("default") else { continue };
                    let missing = match map.get(name) {
                        None => true,
                        Some(Value::Null) => !flag(s, "nullable"),
                        Some(_) => false,
                    };
                    if missing {
                        map.insert(name.clone(), d.clone());
                    }
                }
            }
            for (name, child) in map.iter_mut() {
                if let Some(s) = property(schema, name) {
                    default(s, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for item in items {
                    default(s, item);
                }
            }
        }
        _ => {}
    }
}

/// The JSON type name kube-openapi reports for a value.
fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) => {
            if n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                "integer"
            } else {
                "number"
            }
        }
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(want: &str, value: &Value) -> bool {
    match (want, value) {
        ("object", Value::Object(_))
        | ("array", Value::Array(_))
        | ("string", Value::String(_))
        | ("boolean", Value::Bool(_))
        | ("number", Value::Number(_)) => true,
        ("integer", v) => type_of(v) == "integer",
        _ => false,
    }
}

/// Upstream's `field.TooMany` for a list or an object with more members than allowed.
fn too_many(path: &str, count: u64, max: u64) -> FieldError {
    FieldError {
        field: path.to_owned(),
        kind: FieldErrorKind::TooMany,
        value: Some(Value::from(count)),
        detail: format!("must have at most {max} items"),
    }
}

fn invalid(path: &str, value: &Value, detail: String) -> FieldError {
    FieldError::invalid(path, value.clone(), &detail)
}

/// Validates `value` against `schema`; `path` names it in errors (`spec.replicas`).
pub fn validate(schema: &Value, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    validate_at(schema, value, path, true, errs);
}

fn validate_at(schema: &Value, value: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    let shown = if path.is_empty() { "<root>" } else { path };
    if value.is_null() {
        if flag(schema, "nullable") {
            return;
        }
        if let Some(t) = schema.get("type").and_then(Value::as_str) {
            errs.push(FieldError {
                field: path.to_owned(),
                kind: FieldErrorKind::TypeInvalid,
                value: Some(Value::String("null".into())),
                detail: format!("{shown} in body must be of type {t}: \"null\""),
            });
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !matches!(type_of(value), "integer" | "string") {
            errs.push(FieldError {
                field: path.to_owned(),
                kind: FieldErrorKind::TypeInvalid,
                value: Some(Value::String(type_of(value).into())),
                detail: format!(
                    "{shown} in body must be of type integer,string: \"{}\"",
                    type_of(value)
                ),
            });
            return;
        }
    } else if let Some(t) = schema.get("type").and_then(Value::as_str)
        && !t.is_empty()
        && !type_matches(t, value)
    {
        errs.push(FieldError {
            field: path.to_owned(),
            kind: FieldErrorKind::TypeInvalid,
            value: Some(Value::String(type_of(value).into())),
            detail: format!(
                "{shown} in body must be of type {t}: \"{}\"",
                type_of(value)
            ),
        });
        return;
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        let supported: Vec<String> = options
            .iter()
            .map(|o| match o {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let supported: Vec<&str> = supported.iter().map(String::as_str).collect();
        errs.push(FieldError::not_supported(path, value.clone(), &supported));
    }
    match value {
        Value::String(s) => string_checks(schema, s, value, path, shown, errs),
        Value::Number(_) => number_checks(schema, value, path, shown, errs),
        Value::Array(items) => array_checks(schema, items, value, path, shown, errs),
        Value::Object(map) => object_checks(schema, map, value, path, shown, root, errs),
        _ => {}
    }
    combinators(schema, value, path, shown, errs);
}

fn string_checks(
    schema: &Value,
    s: &str,
    value: &Value,
    path: &str,
    shown: &str,
    errs: &mut Vec<FieldError>,
) {
    let chars = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        errs.push(FieldError {
            field: path.to_owned(),
            kind: FieldErrorKind::TooLong,
            value: Some(value.clone()),
            detail: format!("may not be more than {max} bytes"),
        });
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        errs.push(invalid(
            path,
            value,
            format!("{shown} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(s) => errs.push(invalid(
                path,
                value,
                format!("{shown} in body should match '{pattern}'"),
            )),
            _ => {}
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str)
        && !super::formats::is_valid(format, s)
    {
        errs.push(invalid(
            path,
            value,
            format!("{shown} in body must be of type {format}: {s:?}"),
        ));
    }
}

fn number_checks(
    schema: &Value,
    value: &Value,
    path: &str,
    shown: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(n) = value.as_f64() else { return };
    let show = |f: f64| {
        if f.fract() == 0.0 && f.abs() < 1e15 {
            format!("{}", f as i64)
        } else {
            format!("{f}")
        }
    };
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        if flag(schema, "exclusiveMaximum") && n >= max {
            errs.push(invalid(
                path,
                value,
                format!("{shown} in body should be less than {}", show(max)),
            ));
        } else if n > max {
            errs.push(invalid(
                path,
                value,
                format!(
                    "{shown} in body should be less than or equal to {}",
                    show(max)
                ),
            ));
        }
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        if flag(schema, "exclusiveMinimum") && n <= min {
            errs.push(invalid(
                path,
                value,
                format!("{shown} in body should be greater than {}", show(min)),
            ));
        } else if n < min {
            errs.push(invalid(
                path,
                value,
                format!(
                    "{shown} in body should be greater than or equal to {}",
                    show(min)
                ),
            ));
        }
    }
    if let Some(m) = schema.get("multipleOf").and_then(Value::as_f64)
        && m > 0.0
        && ((n / m) - (n / m).round()).abs() > 1e-9
    {
        errs.push(invalid(
            path,
            value,
            format!("{shown} in body should be a multiple of {}", show(m)),
        ));
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str) {
        let out_of_range = match format {
            "int32" => value.as_i64().is_some_and(|i| i32::try_from(i).is_err()),
            _ => false,
        };
        if out_of_range {
            errs.push(invalid(
                path,
                value,
                format!("{shown} in body must be of type {format}: \"{}\"", value),
            ));
        }
    }
}

fn array_checks(
    schema: &Value,
    items: &[Value],
    value: &Value,
    path: &str,
    shown: &str,
    errs: &mut Vec<FieldError>,
) {
    let count = items.len() as u64;
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && count > max
    {
        errs.push(too_many(path, count, max));
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && count < min
    {
        errs.push(invalid(
            path,
            value,
            format!("{shown} in body should have at least {min} items"),
        ));
    }
    if flag(schema, "uniqueItems") {
        let dup = items
            .iter()
            .enumerate()
            .any(|(i, a)| items[..i].contains(a));
        if dup {
            errs.push(invalid(
                path,
                value,
                format!("{shown} in body shouldn't contain duplicates"),
            ));
        }
    }
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    errs.push(FieldError::duplicate(format!("{path}[{i}]"), item.clone()));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let key_of = |item: &Value| -> Value {
                let mut key = Map::new();
                for k in &keys {
                    if let Some(v) = item.get(*k) {
                        key.insert((*k).to_owned(), v.clone());
                    }
                }
                Value::Object(key)
            };
            for (i, item) in items.iter().enumerate() {
                let key = key_of(item);
                if items[..i].iter().any(|other| key_of(other) == key) {
                    errs.push(FieldError::duplicate(format!("{path}[{i}]"), key));
                }
            }
        }
        _ => {}
    }
    if let Some(s) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate_at(s, item, &format!("{path}[{i}]"), false, errs);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn object_checks(
    schema: &Value,
    map: &Map<String, Value>,
    value: &Value,
    path: &str,
    shown: &str,
    root: bool,
    errs: &mut Vec<FieldError>,
) {
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                errs.push(FieldError::required(join(path, name), ""));
            }
        }
    }
    let count = map.len() as u64;
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && count > max
    {
        errs.push(too_many(path, count, max));
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && count < min
    {
        errs.push(invalid(
            path,
            value,
            format!("{shown} in body should have at least {min} properties"),
        ));
    }
    let embedded = flag(schema, "x-kubernetes-embedded-resource");
    for (name, child) in map {
        if (root || embedded) && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
            if embedded && !root {
                embedded_checks(name, child, path, errs);
            }
            continue;
        }
        if let Some(s) = property(schema, name) {
            validate_at(s, child, &join(path, name), false, errs);
        }
    }
    if embedded && !root {
        for name in ["apiVersion", "kind"] {
            if map
                .get(name)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                errs.push(FieldError::required(join(path, name), "must not be empty"));
            }
        }
    }
}

fn embedded_checks(name: &str, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let at = join(path, name);
    match name {
        "apiVersion" | "kind" if !value.is_string() => errs.push(FieldError {
            field: at.clone(),
            kind: FieldErrorKind::TypeInvalid,
            value: Some(value.clone()),
            detail: "must be a string".into(),
        }),
        "metadata" if !value.is_object() => errs.push(FieldError {
            field: at,
            kind: FieldErrorKind::TypeInvalid,
            value: Some(value.clone()),
            detail: "must be an object".into(),
        }),
        _ => {}
    }
}

fn passes(schema: &Value, value: &Value, path: &str) -> bool {
    let mut sub = Vec::new();
    validate_at(schema, value, path, false, &mut sub);
    sub.is_empty()
}

fn combinators(schema: &Value, value: &Value, path: &str, shown: &str, errs: &mut Vec<FieldError>) {
    if let Some(Value::Array(all)) = schema.get("allOf") {
        for s in all {
            validate_at(s, value, path, false, errs);
        }
    }
    if let Some(Value::Array(any)) = schema.get("anyOf")
        && !any.iter().any(|s| passes(s, value, path))
    {
        errs.push(invalid(
            path,
            value,
            format!("{shown} in body must validate at least one schema (anyOf)"),
        ));
    }
    if let Some(Value::Array(one)) = schema.get("oneOf") {
        let matched = one.iter().filter(|s| passes(s, value, path)).count();
        if matched != 1 {
            errs.push(invalid(
                path,
                value,
                format!("{shown} in body must validate one and only one schema (oneOf)"),
            ));
        }
    }
    if let Some(not) = schema.get("not")
        && passes(not, value, path)
    {
        errs.push(invalid(
            path,
            value,
            format!("{shown} in body should not validate the schema provided"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "minLength": 1},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                        "mode": {"type": "string", "enum": ["fast", "safe"]},
                        "tags": {"type": "array", "maxItems": 2, "x-kubernetes-list-type": "set",
                                 "items": {"type": "string"}},
                        "port": {"x-kubernetes-int-or-string": true},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "nested": {"type": "object", "default": {},
                                   "properties": {"level": {"type": "string", "default": "info"}}},
                        "cron": {"type": "string", "pattern": "^(\\d+|\\*)( (\\d+|\\*)){4}$"},
                    }
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
            }
        })
    }

    #[test]
    fn unknown_fields_are_pruned_and_reported_by_path() {
        let mut cr = json!({"apiVersion": "example.com/v1", "kind": "App",
            "metadata": {"name": "a"},
            "spec": {"image": "x", "bogus": 1, "extra": {"anything": {"goes": true}},
                     "labels": {"a": "b"}, "nested": {"deep": 1}},
            "top": true});
        let unknown = prune(&schema(), &mut cr);
        assert_eq!(
            unknown,
            [
                "unknown field \"spec.bogus\"",
                "unknown field \"spec.nested.deep\"",
                "unknown field \"top\""
            ]
        );
        assert_eq!(cr["spec"]["extra"]["anything"]["goes"], true);
        assert_eq!(cr["spec"]["labels"]["a"], "b");
        assert_eq!(cr["metadata"]["name"], "a");
    }

    #[test]
    fn defaults_apply_top_down_and_replace_disallowed_nulls() {
        let mut cr = json!({"spec": {"image": "x", "replicas": null}});
        prune(&schema(), &mut cr);
        default(&schema(), &mut cr);
        assert_eq!(cr["spec"]["replicas"], 1);
        assert_eq!(cr["spec"]["nested"], json!({"level": "info"}));
    }

    #[test]
    fn violations_read_as_upstream() {
        let cr = json!({"spec": {"replicas": "three", "mode": "slow", "tags": ["a", "a", "b"],
                                 "port": 1.5, "cron": "bad"}});
        let mut errs = Vec::new();
        validate(&schema(), &cr, "", &mut errs);
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "spec.image: Required value",
                "spec.cron: Invalid value: \"bad\": spec.cron in body should match '^(\\d+|\\*)( (\\d+|\\*)){4}$'",
                "spec.mode: Unsupported value: \"slow\": supported values: \"fast\", \"safe\"",
                "spec.port: Invalid value: \"number\": spec.port in body must be of type integer,string: \"number\"",
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
                "spec.tags: Too many: 3: must have at most 2 items",
                "spec.tags[1]: Duplicate value: \"a\"",
            ]
        );
        let mut errs = Vec::new();
        validate(
            &schema(),
            &json!({"spec": {"image": "", "replicas": 11}}),
            "",
            &mut errs,
        );
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "spec.image: Invalid value: \"\": spec.image in body should be at least 1 chars long",
                "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
            ]
        );
    }
}
