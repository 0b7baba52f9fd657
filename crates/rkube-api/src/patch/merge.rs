//! RFC 7386 JSON Merge Patch.

use serde_json::{Map, Value};

use super::check_depth;
use crate::error::ApiError;

/// Applies an RFC 7386 merge patch: objects merge recursively, `null` deletes a member,
/// anything else (arrays included) replaces the target value whole.
///
/// Errors, as upstream's handler answers (its json-patch library calls these an invalid
/// patch, which the handler turns into 400 [`ApiError::BadRequest`]): a `null`, string,
/// number or boolean patch. An array patch replaces the document, per the RFC; the server's
/// decode of the result then fails with 422, as upstream.
pub fn merge_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    check_depth(doc, patch)?;
    match patch {
        Value::Object(_) | Value::Array(_) => Ok(merge_value(Some(doc), patch)),
        _ => Err(ApiError::bad_request("Invalid JSON Patch")),
    }
}

/// RFC 7386 §2 `MergePatch(Target, Patch)`. Recursion follows the patch, whose depth the
/// caller has bounded.
fn merge_value(target: Option<&Value>, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut merged = match target {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            merged.remove(key);
        } else {
            let next = merge_value(merged.get(key), value);
            merged.insert(key.clone(), next);
        }
    }
    Value::Object(merged)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_rfc_7386_appendix_examples_apply() {
        // (target, patch, result) from RFC 7386 Appendix A, objects only (the handler
        // refuses scalar patches).
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        ];
        for (target, patch, expected) in cases {
            let got = merge_patch(&target, &patch).expect("applies");
            assert_eq!(got, expected, "{target} + {patch}");
        }
    }

    #[test]
    fn the_rfc_7386_section_3_example_applies() {
        let target = json!({
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
            "content": "This will be unchanged"
        });
        let patch = json!({
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": null},
            "tags": ["example"]
        });
        let expected = json!({
            "title": "Hello!",
            "author": {"givenName": "John"},
            "tags": ["example"],
            "content": "This will be unchanged",
            "phoneNumber": "+01-123-456-7890"
        });
        assert_eq!(merge_patch(&target, &patch).expect("applies"), expected);
    }

    #[test]
    fn labels_merge_and_lists_replace_on_a_pod() {
        let pod = json!({
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}},
            "spec": {"containers": [{"name": "a", "image": "nginx"}]}
        });
        let patch = json!({
            "metadata": {"labels": {"tier": null, "env": "prod"}},
            "spec": {"containers": [{"name": "b", "image": "redis"}]}
        });
        let got = merge_patch(&pod, &patch).expect("applies");
        assert_eq!(
            got,
            json!({
                "metadata": {"name": "web", "labels": {"app": "web", "env": "prod"}},
                "spec": {"containers": [{"name": "b", "image": "redis"}]}
            })
        );
    }

    #[test]
    fn null_and_scalar_patches_are_bad_requests() {
        for patch in [json!(null), json!("x"), json!(1), json!(true)] {
            let err = merge_patch(&json!({}), &patch).expect_err("must fail");
            assert!(matches!(err, ApiError::BadRequest(_)), "{patch}");
        }
    }
}
