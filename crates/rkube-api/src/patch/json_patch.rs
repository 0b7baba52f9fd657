//! RFC 6902 JSON Patch with RFC 6901 pointers.
//!
//! Status codes follow upstream's patch handler
//! (`k8s.io/apiserver/pkg/endpoints/handlers/patch.go`): a body that does not decode as a
//! list of operation objects is 400; more than [`MAX_OPERATIONS`] operations is 413; any
//! operation that fails — an unknown `op`, a missing member, a path that does not resolve, a
//! failed `test`, a `copy` past [`MAX_COPY_BYTES`] — is 422.

use serde_json::{Map, Value};

use super::{check_depth, go_json_type, unprocessable};
use crate::error::ApiError;

/// The most operations one JSON patch may hold (upstream's `maxJSONPatchOperations`).
pub const MAX_OPERATIONS: usize = 10_000;

/// How many bytes `copy` operations may add to a document in total. Upstream arms the
/// json-patch library's accumulated copy limit with the request body limit (3 MiB).
pub const MAX_COPY_BYTES: usize = 3 * 1024 * 1024;

/// Applies an RFC 6902 patch (`add`, `remove`, `replace`, `move`, `copy`, `test`) to `doc`.
///
/// Pointers are RFC 6901: `~1` is `/`, `~0` is `~`, `-` as the last token of an `add` (or of
/// a `move`/`copy` target) appends to an array. Operations apply in order and all or nothing.
///
/// Errors: 400 [`ApiError::BadRequest`] when `patch` is not an array of objects; 413
/// [`ApiError::RequestEntityTooLarge`] past [`MAX_OPERATIONS`]; 422 [`ApiError::Invalid`]
/// when an operation cannot be applied or a `test` fails.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    check_depth(doc, patch)?;
    let Value::Array(ops) = patch else {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            go_json_type(patch)
        )));
    };
    let mut parsed = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Value::Object(op) => parsed.push(op),
            other => {
                return Err(ApiError::bad_request(format!(
                    "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                    go_json_type(other)
                )));
            }
        }
    }
    if parsed.len() > MAX_OPERATIONS {
        return Err(ApiError::RequestEntityTooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {}",
            parsed.len()
        )));
    }
    let mut doc = doc.clone();
    let mut copied = 0usize;
    for op in parsed {
        apply(&mut doc, op, &mut copied).map_err(unprocessable)?;
    }
    Ok(doc)
}

/// One operation; the error is the reason it does not apply.
fn apply(doc: &mut Value, op: &Map<String, Value>, copied: &mut usize) -> Result<(), String> {
    let kind = op.get("op").and_then(Value::as_str).unwrap_or("unknown");
    match kind {
        "add" => {
            let path = member(op, "path")?;
            let value = value_member(op, kind)?;
            add(doc, &parse_pointer(path)?, value.clone())
                .map_err(|e| format!("add operation does not apply: {e}: \"{path}\""))
        }
        "remove" => {
            let path = member(op, "path")?;
            remove(doc, &parse_pointer(path)?)
                .map(drop)
                .map_err(|e| format!("remove operation does not apply: {e}: \"{path}\""))
        }
        "replace" => {
            let path = member(op, "path")?;
            let value = value_member(op, kind)?;
            let target = get_mut(doc, &parse_pointer(path)?).ok_or_else(|| {
                format!("replace operation does not apply: doc is missing key: {path}")
            })?;
            *target = value.clone();
            Ok(())
        }
        "move" => {
            let from = member(op, "from")?;
            let path = member(op, "path")?;
            let from_tokens = parse_pointer(from)?;
            let path_tokens = parse_pointer(path)?;
            if from_tokens == path_tokens {
                return get(doc, &from_tokens).map(drop).ok_or_else(|| {
                    format!("move operation does not apply: doc is missing from path: {from}")
                });
            }
            if path_tokens.starts_with(&from_tokens) {
                return Err(format!(
                    "move operation does not apply: {path} is a child of {from}"
                ));
            }
            let value = remove(doc, &from_tokens).map_err(|e| {
                format!("move operation does not apply: doc is missing from path: {from}: {e}")
            })?;
            add(doc, &path_tokens, value)
                .map_err(|e| format!("move operation does not apply: {e}: \"{path}\""))
        }
        "copy" => {
            let from = member(op, "from")?;
            let path = member(op, "path")?;
            let value = get(doc, &parse_pointer(from)?)
                .ok_or_else(|| {
                    format!("copy operation does not apply: doc is missing from path: {from}")
                })?
                .clone();
            *copied = copied.saturating_add(serialized_len(&value));
            if *copied > MAX_COPY_BYTES {
                return Err(format!(
                    "Unable to complete the copy, the accumulated size increase of copy is {}, \
                     exceeding the limit {MAX_COPY_BYTES}",
                    copied
                ));
            }
            add(doc, &parse_pointer(path)?, value)
                .map_err(|e| format!("copy operation does not apply: {e}: \"{path}\""))
        }
        "test" => {
            let path = member(op, "path")?;
            let expected = value_member(op, kind)?;
            match get(doc, &parse_pointer(path)?) {
                Some(actual) if json_equal(actual, expected) => Ok(()),
                _ => Err(format!("testing value {path} failed: test failed")),
            }
        }
        other => Err(format!("Unexpected kind: {other}")),
    }
}

/// A string member (`path`, `from`) an operation must have.
fn member<'a>(op: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match op.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("operation {name} field is not a string")),
        None => Err(format!("operation missing {name} field")),
    }
}

/// The `value` member of an `add`, `replace` or `test`; `null` is a value, absence is not.
fn value_member<'a>(op: &'a Map<String, Value>, kind: &str) -> Result<&'a Value, String> {
    op.get("value")
        .ok_or_else(|| format!("{kind} operation missing value field"))
}

/// RFC 6901: `""` is the whole document; otherwise `/`-separated, unescaped tokens.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "JSON pointer must be empty or start with a \"/\": {pointer}"
        ));
    };
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => return Err(format!("invalid JSON pointer escape in {pointer}")),
                }
            }
            Ok(out)
        })
        .collect()
}

/// An array index token: `0` or digits without a leading zero; `-` is one past the end.
fn array_index(token: &str, len: usize) -> Option<usize> {
    if token == "-" {
        return Some(len);
    }
    let digits_only = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

fn get<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    tokens.iter().try_fold(doc, |node, token| match node {
        Value::Object(map) => map.get(token),
        Value::Array(items) => items.get(array_index(token, items.len())?),
        _ => None,
    })
}

fn get_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    tokens.iter().try_fold(doc, |node, token| match node {
        Value::Object(map) => map.get_mut(token),
        Value::Array(items) => {
            let index = array_index(token, items.len())?;
            items.get_mut(index)
        }
        _ => None,
    })
}

fn add(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parent) {
        Some(Value::Object(map)) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Some(Value::Array(items)) => match array_index(last, items.len()) {
            Some(index) if index <= items.len() => {
                items.insert(index, value);
                Ok(())
            }
            _ => Err(format!("invalid array index {last}")),
        },
        Some(_) => Err("parent is not a container".to_owned()),
        None => Err("doc is missing path".to_owned()),
    }
}

fn remove(doc: &mut Value, tokens: &[String]) -> Result<Value, String> {
    let Some((last, parent)) = tokens.split_last() else {
        return Err("cannot remove the whole document".to_owned());
    };
    match get_mut(doc, parent) {
        Some(Value::Object(map)) => map
            .remove(last)
            .ok_or_else(|| format!("Unable to remove nonexistent key: {last}")),
        Some(Value::Array(items)) => match array_index(last, items.len()) {
            Some(index) if index < items.len() => Ok(items.remove(index)),
            _ => Err(format!("Unable to access invalid index: {last}")),
        },
        _ => Err("doc is missing path".to_owned()),
    }
}

/// RFC 6902 §4.6 equality: numbers compare by value (`1` equals `1.0`), objects ignore key
/// order, arrays compare item by item.
pub(super) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// The size a value adds to the serialized document.
fn serialized_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Applies and returns the document, panicking with the error on failure.
    fn ok(doc: Value, patch: Value) -> Value {
        match json_patch(&doc, &patch) {
            Ok(v) => v,
            Err(e) => panic!("patch {patch} on {doc} failed: {e}"),
        }
    }

    #[test]
    fn the_rfc_6902_appendix_examples_apply() {
        // (doc, patch, expected) from RFC 6902 Appendix A.
        let cases = [
            // A.1 adding an object member
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux"}]),
                json!({"baz": "qux", "foo": "bar"}),
            ),
            // A.2 adding an array element
            (
                json!({"foo": ["bar", "baz"]}),
                json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
                json!({"foo": ["bar", "qux", "baz"]}),
            ),
            // A.3 removing an object member
            (
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "remove", "path": "/baz"}]),
                json!({"foo": "bar"}),
            ),
            // A.4 removing an array element
            (
                json!({"foo": ["bar", "qux", "baz"]}),
                json!([{"op": "remove", "path": "/foo/1"}]),
                json!({"foo": ["bar", "baz"]}),
            ),
            // A.5 replacing a value
            (
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
                json!({"baz": "boo", "foo": "bar"}),
            ),
            // A.6 moving a value
            (
                json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
                json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
                json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
            ),
            // A.7 moving an array element
            (
                json!({"foo": ["all", "grass", "cows", "eat"]}),
                json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
                json!({"foo": ["all", "cows", "eat", "grass"]}),
            ),
            // A.8 testing a value: success
            (
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
                json!([
                    {"op": "test", "path": "/baz", "value": "qux"},
                    {"op": "test", "path": "/foo/1", "value": 2}
                ]),
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
            ),
            // A.10 adding a nested member object
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
                json!({"foo": "bar", "child": {"grandchild": {}}}),
            ),
            // A.11 ignoring unrecognized elements
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]),
                json!({"foo": "bar", "baz": "qux"}),
            ),
            // A.14 ~ escape ordering
            (
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": 10}]),
                json!({"/": 9, "~1": 10}),
            ),
            // A.16 adding an array value
            (
                json!({"foo": ["bar"]}),
                json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
                json!({"foo": ["bar", ["abc", "def"]]}),
            ),
        ];
        for (doc, patch, expected) in cases {
            assert_eq!(ok(doc, patch.clone()), expected, "patch {patch}");
        }
    }

    #[test]
    fn the_rfc_6902_appendix_failures_are_unprocessable() {
        let cases = [
            // A.9 testing a value: error
            (
                json!({"baz": "qux"}),
                json!([{"op": "test", "path": "/baz", "value": "bar"}]),
            ),
            // A.12 adding to a nonexistent target
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz/bat", "value": "qux"}]),
            ),
            // A.15 comparing strings and numbers
            (
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": "10"}]),
            ),
        ];
        for (doc, patch) in cases {
            let err = json_patch(&doc, &patch).expect_err("must fail");
            assert!(matches!(err, ApiError::Invalid { .. }), "{patch}: {err:?}");
        }
    }

    #[test]
    fn pointers_unescape_tilde_and_slash() {
        let doc = json!({"metadata": {"annotations": {"a/b": "1", "c~d": "2"}}});
        let patch = json!([
            {"op": "replace", "path": "/metadata/annotations/a~1b", "value": "x"},
            {"op": "remove", "path": "/metadata/annotations/c~0d"}
        ]);
        assert_eq!(
            ok(doc, patch),
            json!({"metadata": {"annotations": {"a/b": "x"}}})
        );
        let bad = json!([{"op": "add", "path": "/a~2", "value": 1}]);
        assert!(json_patch(&json!({}), &bad).is_err());
    }

    #[test]
    fn copy_and_move_place_values_and_move_refuses_its_own_children() {
        let doc = json!({"spec": {"containers": [{"name": "a"}]}});
        let patch = json!([
            {"op": "copy", "from": "/spec/containers/0", "path": "/spec/containers/-"},
            {"op": "replace", "path": "/spec/containers/1/name", "value": "b"},
            {"op": "move", "from": "/spec/containers/0", "path": "/spec/first"}
        ]);
        assert_eq!(
            ok(doc.clone(), patch),
            json!({"spec": {"containers": [{"name": "b"}], "first": {"name": "a"}}})
        );
        let into_child = json!([{"op": "move", "from": "/spec", "path": "/spec/inner"}]);
        assert!(json_patch(&doc, &into_child).is_err());
        let same = json!([{"op": "move", "from": "/spec", "path": "/spec"}]);
        assert_eq!(ok(doc.clone(), same), doc);
    }

    #[test]
    fn the_whole_document_can_be_replaced_but_not_removed() {
        let doc = json!({"a": 1});
        let replaced = ok(
            doc.clone(),
            json!([{"op": "replace", "path": "", "value": {"b": 2}}]),
        );
        assert_eq!(replaced, json!({"b": 2}));
        assert!(json_patch(&doc, &json!([{"op": "remove", "path": ""}])).is_err());
    }

    #[test]
    fn test_compares_numbers_by_value_and_objects_by_content() {
        let doc = json!({"n": 1, "o": {"a": [1, {"b": null}]}});
        let patch = json!([
            {"op": "test", "path": "/n", "value": 1.0},
            {"op": "test", "path": "/o", "value": {"a": [1.0, {"b": null}]}}
        ]);
        assert_eq!(ok(doc.clone(), patch), doc);
        let absent = json!([{"op": "test", "path": "/missing", "value": null}]);
        assert!(json_patch(&doc, &absent).is_err());
    }

    #[test]
    fn bad_indexes_and_missing_members_fail_as_unprocessable() {
        let doc = json!({"a": [1, 2]});
        let patches = [
            json!([{"op": "add", "path": "/a/3", "value": 0}]),
            json!([{"op": "add", "path": "/a/01", "value": 0}]),
            json!([{"op": "remove", "path": "/a/-"}]),
            json!([{"op": "replace", "path": "/a/2", "value": 0}]),
            json!([{"op": "replace", "path": "/b", "value": 0}]),
            json!([{"op": "remove", "path": "/b"}]),
            json!([{"op": "add", "path": "/b"}]),
            json!([{"op": "add", "value": 1}]),
            json!([{"op": "copy", "path": "/b"}]),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"path": "/a"}]),
            json!([{"op": "add", "path": "a", "value": 1}]),
        ];
        for patch in patches {
            let err = json_patch(&doc, &patch).expect_err("must fail");
            assert!(matches!(err, ApiError::Invalid { .. }), "{patch}: {err:?}");
        }
    }

    #[test]
    fn a_failing_operation_leaves_nothing_half_applied() {
        let doc = json!({"a": 1});
        let patch = json!([
            {"op": "add", "path": "/b", "value": 2},
            {"op": "test", "path": "/a", "value": 2}
        ]);
        assert!(json_patch(&doc, &patch).is_err());
        assert_eq!(doc, json!({"a": 1}));
    }

    #[test]
    fn a_body_that_is_not_a_list_of_operations_is_a_bad_request() {
        for patch in [json!({"op": "add"}), json!("x"), json!([1]), json!(null)] {
            let err = json_patch(&json!({}), &patch).expect_err("must fail");
            assert!(matches!(err, ApiError::BadRequest(_)), "{patch}: {err:?}");
        }
    }

    #[test]
    fn too_many_operations_is_request_entity_too_large() {
        let op = json!({"op": "test", "path": "", "value": {}});
        let patch = Value::Array(vec![op; MAX_OPERATIONS + 1]);
        let err = json_patch(&json!({}), &patch).expect_err("must fail");
        assert!(matches!(err, ApiError::RequestEntityTooLarge(_)));
    }

    #[test]
    fn copies_past_the_size_limit_are_refused() {
        let big = "x".repeat(MAX_COPY_BYTES / 2);
        let doc = json!({"a": big});
        let patch = json!([
            {"op": "copy", "from": "/a", "path": "/b"},
            {"op": "copy", "from": "/a", "path": "/c"},
            {"op": "copy", "from": "/a", "path": "/d"}
        ]);
        let err = json_patch(&doc, &patch).expect_err("must fail");
        assert!(err.to_string().contains("accumulated size"), "{err}");
    }
}
