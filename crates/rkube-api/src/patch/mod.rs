//! The three patch formats the API accepts on `PATCH`, applied to an object's JSON:
//!
//! - [`json_patch`]: `application/json-patch+json`, RFC 6902 operations;
//! - [`merge_patch`]: `application/merge-patch+json`, RFC 7386;
//! - [`strategic_merge_patch`]: `application/strategic-merge-patch+json`, the Kubernetes
//!   merge that knows, per field of each built-in kind, which lists merge by which key.
//!
//! Each takes the current object and the patch and gives the patched object or the
//! [`ApiError`] upstream's API server answers with (see the status mapping in each function's
//! doc). The result is untyped JSON: the server still decodes it into the kind's type
//! (`ResourceType::normalize`), which is where a patch that produced a wrongly typed field
//! fails, with 422 as upstream.
//!
//! Everything is pure and bounded: documents nested deeper than [`MAX_DEPTH`] are refused
//! before any recursive step, so no input can exhaust the stack.

mod json_patch;
mod merge;
mod schema;
mod strategic;

pub use json_patch::{MAX_COPY_BYTES, MAX_OPERATIONS, json_patch};
pub use merge::merge_patch;
pub use strategic::strategic_merge_patch;

use serde_json::Value;

use crate::error::{ApiError, FieldError, FieldErrorKind};

/// How deeply a document or patch may nest (objects and arrays). serde_json refuses to parse
/// anything deeper than 128 levels, so this only bites on values built in code.
pub const MAX_DEPTH: usize = 256;

/// Whether `value` nests no deeper than `limit`, found without recursion.
pub(crate) fn within_depth(value: &Value, limit: usize) -> bool {
    let mut stack = vec![(value, 1usize)];
    while let Some((value, depth)) = stack.pop() {
        if depth > limit {
            return false;
        }
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    true
}

/// Refuses a patch (400) or a stored object (500) nested too deeply to handle safely.
fn check_depth(doc: &Value, patch: &Value) -> Result<(), ApiError> {
    if !within_depth(patch, MAX_DEPTH) {
        return Err(ApiError::bad_request(format!(
            "the patch is nested more than {MAX_DEPTH} levels deep"
        )));
    }
    if !within_depth(doc, MAX_DEPTH) {
        return Err(ApiError::Internal(format!(
            "the object is nested more than {MAX_DEPTH} levels deep"
        )));
    }
    Ok(())
}

/// A patch that is well formed but cannot be applied: 422 Invalid.
///
/// Upstream answers these with a bare 422 whose message is "the server rejected our request
/// due to an error in our request" and drops the reason; we keep the reason as a cause on
/// the `patch` field, the way upstream reports a patched object that fails to decode.
fn unprocessable(detail: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        kind: String::new(),
        name: String::new(),
        causes: vec![FieldError {
            field: "patch".to_owned(),
            kind: FieldErrorKind::Invalid,
            value: None,
            detail: detail.into(),
        }],
    }
}

/// A value as Go's `%v` prints the decoded JSON (`map[a:1 b:[x y]]`), for error messages
/// that match upstream's.
fn go_format(value: &Value) -> String {
    let mut out = String::new();
    write_go(value, &mut out);
    out
}

fn write_go(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Go prints map keys sorted.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("map[");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_go(v, out);
                }
            }
            out.push(']');
        }
    }
}

/// The name Go's `encoding/json` gives a JSON value's type in unmarshal errors.
fn go_json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn depth_is_measured_without_recursion_and_bounded() {
        let mut deep = json!(1);
        for _ in 0..100_000 {
            deep = Value::Array(vec![deep]);
        }
        assert!(!within_depth(&deep, MAX_DEPTH));
        assert!(within_depth(&json!({"a": [{"b": 1}]}), 4));
        assert!(!within_depth(&json!({"a": [{"b": 1}]}), 3));
        // Leak the deep value: dropping it would recurse in serde_json, which is not ours
        // to test.
        std::mem::forget(deep);
    }

    #[test]
    fn values_print_as_go_prints_them() {
        let v = json!({"name": "x", "ports": [1, 2], "on": true, "gone": null});
        assert_eq!(go_format(&v), "map[gone:<nil> name:x on:true ports:[1 2]]");
    }

    #[test]
    fn unprocessable_is_a_422_with_the_reason_kept() {
        let err = unprocessable("testing value /a failed: test failed");
        assert!(matches!(err, ApiError::Invalid { .. }));
        assert!(err.to_string().contains("testing value /a failed"));
    }
}

/// A field's patch metadata, as OpenAPI states it with `x-kubernetes-patch-strategy` and
/// `x-kubernetes-patch-merge-key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchExtension {
    /// JSON field names from the object's root to the field (list items are stepped into
    /// transparently, as in a schema).
    pub path: Vec<&'static str>,
    /// `merge`, `replace`, `retainKeys` or `merge,retainKeys`.
    pub strategy: String,
    /// The merge key of a merging list of maps (empty otherwise).
    pub merge_key: &'static str,
}

/// Every field of a kind that has patch metadata.
pub fn extensions(group: &str, kind: &str) -> Vec<PatchExtension> {
    fn walk(
        schema: &'static schema::Schema,
        path: &mut Vec<&'static str>,
        out: &mut Vec<PatchExtension>,
        depth: usize,
    ) {
        if depth > 32 {
            return;
        }
        for field in schema.fields {
            path.push(field.name);
            let mut strategy = match field.strategy {
                schema::Strategy::Merge => "merge".to_owned(),
                schema::Strategy::Replace => "replace".to_owned(),
                schema::Strategy::Default => String::new(),
            };
            if field.retain_keys {
                strategy = if strategy.is_empty() {
                    "retainKeys".to_owned()
                } else {
                    format!("{strategy},retainKeys")
                };
            }
            if !strategy.is_empty() {
                out.push(PatchExtension {
                    path: path.clone(),
                    strategy,
                    merge_key: field.merge_key,
                });
            }
            if let Some(inner) = field.schema {
                walk(inner, path, out, depth + 1);
            }
            path.pop();
        }
    }
    let mut out = Vec::new();
    if let Some(root) = schema::for_kind(group, kind) {
        walk(root, &mut Vec::new(), &mut out, 0);
    }
    out
}
