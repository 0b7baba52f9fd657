//! Patch formats. This version supports JSON merge patch only; JSON patch and strategic merge
//! patch replace the refusals below.

use serde_json::Value;

use crate::ApiError;

fn unsupported(kind: &str) -> ApiError {
    ApiError::UnsupportedMediaType(format!("{kind} is not supported by this server yet"))
}

/// RFC 6902 JSON patch.
pub fn json_patch(_doc: &Value, _patch: &Value) -> Result<Value, ApiError> {
    Err(unsupported("json patch"))
}

/// RFC 7386 merge patch.
pub fn merge_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    Ok(merge(doc, patch, 0))
}

fn merge(doc: &Value, patch: &Value, depth: usize) -> Value {
    match (doc, patch) {
        (Value::Object(d), Value::Object(p)) if depth < 512 => {
            let mut out = d.clone();
            for (k, v) in p {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = merge(d.get(k).unwrap_or(&Value::Null), v, depth + 1);
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        (_, Value::Object(p)) if depth < 512 => merge(&Value::Object(Default::default()), &Value::Object(p.clone()), depth + 1),
        _ => patch.clone(),
    }
}

/// Strategic merge patch.
pub fn strategic_merge_patch(_group: &str, _kind: &str, _doc: &Value, _patch: &Value) -> Result<Value, ApiError> {
    Err(unsupported("strategic merge patch"))
}
