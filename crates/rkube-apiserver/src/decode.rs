//! Request bodies: JSON, YAML and protobuf in, and the typed round trip that checks types and
//! finds unknown fields (`?fieldValidation=`).

use rkube_api::ApiError;
use rkube_api::registry::ResourceType;
use serde_json::Value;

use crate::request::Query;

/// Parses a request body: JSON (and the JSON-based patch types) or Kubernetes protobuf.
pub fn decode_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let media = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    match media {
        "application/json"
        | ""
        | "*/*"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json" => serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}"))),
        "application/yaml" | "application/apply-patch+yaml" => decode_yaml(body),
        rkube_proto::MEDIA_TYPE => rkube_proto::decode(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid protobuf body: {e}"))),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other})"
        ))),
    }
}

/// Parses a YAML body. The parser refuses deep nesting and alias expansion past its limits, so
/// a "billion laughs" body fails fast instead of growing.
fn decode_yaml(body: &[u8]) -> Result<Value, ApiError> {
    serde_norway::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid YAML body: {e}")))
}

/// How to treat fields the schema does not know (`?fieldValidation=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject the request (400).
    Strict,
    /// Drop them; upstream also warns.
    Warn,
    /// Drop them silently.
    Ignore,
}

impl FieldValidation {
    /// Reads the query parameter; upstream's default is Warn.
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        match query.get("fieldValidation") {
            None | Some("Warn") => Ok(Self::Warn),
            Some("Strict") => Ok(Self::Strict),
            Some("Ignore") => Ok(Self::Ignore),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            ))),
        }
    }
}

/// The paths of fields present in `input` but dropped by the typed round trip.
fn unknown_fields(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, value) in i {
                if value.is_null() {
                    continue;
                }
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match k.get(key) {
                    None => out.push(child),
                    Some(known) => unknown_fields(value, known, &child, out),
                }
            }
        }
        (Value::Array(i), Value::Array(k)) => {
            for (n, (value, known)) in i.iter().zip(k).enumerate() {
                unknown_fields(value, known, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// Checks types and keeps known fields only; under Strict, unknown fields are a 400.
pub(crate) fn normalize(
    rt: &ResourceType,
    object: Value,
    validation: FieldValidation,
) -> Result<Value, ApiError> {
    let cannot = |why: String| {
        ApiError::BadRequest(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: {why}",
            kind = rt.kind,
            v = rt.version
        ))
    };
    let normalized = (rt.normalize)(&object).map_err(|e| cannot(e.to_string()))?;
    if validation != FieldValidation::Ignore {
        let mut unknown = Vec::new();
        unknown_fields(&object, &normalized, "", &mut unknown);
        if validation == FieldValidation::Warn {
            for field in unknown {
                crate::warnings::warn(format!("unknown field \"{field}\""));
            }
        } else if !unknown.is_empty() {
            let fields: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            return Err(cannot(format!(
                "strict decoding error: {}",
                fields.join(", ")
            )));
        }
    }
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_bodies_decode_and_alias_bombs_are_refused_quickly() {
        let ok = decode_body(
            Some("application/yaml"),
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
        )
        .unwrap();
        assert_eq!(ok["metadata"]["name"], "a");
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = if i == 1 {
                "a".to_owned()
            } else {
                format!("a{}", i - 1)
            };
            bomb.push_str(&format!("a{i}: &a{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        let started = std::time::Instant::now();
        assert!(matches!(
            decode_body(Some("application/yaml"), bomb.as_bytes()),
            Err(ApiError::BadRequest(_))
        ));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            decode_body(Some("application/yaml"), deep.as_bytes()),
            Err(ApiError::BadRequest(_))
        ));
    }
}
