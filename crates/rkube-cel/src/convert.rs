//! JSON objects as CEL values and back. Integers become `int`, other numbers `double`, as
//! the apiserver's unstructured conversion does for schemas of type integer and number.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, OptionalValue};
use serde_json::Value as Json;

use crate::Value;

/// The CEL value of a JSON document.
pub fn from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(from_json).collect())),
        Json::Object(fields) => {
            let map: HashMap<Key, Value> = fields
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), from_json(v)))
                .collect();
            Value::Map(map.into())
        }
    }
}

/// The CEL value of a JSON document typed by its OpenAPI schema, as upstream's
/// `UnstructuredToVal` types custom resources for their rules: strings of format `date-time`
/// are timestamps, of format `duration` durations and of format `byte` bytes; numbers of type
/// `number` are doubles even when whole. A string that does not parse in its format stays a
/// string (schema validation reports it).
pub fn from_json_typed(json: &Json, schema: &Json) -> Value {
    let type_ = schema.get("type").and_then(Json::as_str).unwrap_or("");
    match json {
        Json::String(s) if type_ == "string" => match schema.get("format").and_then(Json::as_str) {
            Some("date-time") => timestamp(s).map(Value::Timestamp),
            Some("duration") => duration(s).map(Value::Duration),
            Some("byte") => base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s)
                .ok()
                .map(|b| Value::Bytes(Arc::new(b))),
            _ => None,
        }
        .unwrap_or_else(|| Value::String(Arc::new(s.clone()))),
        Json::Number(n) if type_ == "number" => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        Json::Array(items) => {
            let item_schema = schema.get("items").unwrap_or(&Json::Null);
            Value::List(Arc::new(
                items
                    .iter()
                    .map(|item| from_json_typed(item, item_schema))
                    .collect(),
            ))
        }
        Json::Object(fields) => {
            let properties = schema.get("properties").and_then(Json::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let map: HashMap<Key, Value> = fields
                .iter()
                .map(|(k, v)| {
                    let value = match properties.and_then(|p| p.get(k)).or(additional) {
                        Some(field_schema) => from_json_typed(v, field_schema),
                        None => from_json(v),
                    };
                    (Key::String(Arc::new(k.clone())), value)
                })
                .collect();
            Value::Map(map.into())
        }
        _ => from_json(json),
    }
}

/// An RFC 3339 date-time (`2006-01-02T15:04:05Z07:00`, fractions allowed).
fn timestamp(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(text).ok()
}

/// A duration as the `duration` format reads it: Go's form (`1h30m`, `-1.5s`, `300ms`,
/// units ns, us, µs, ms, s, m, h) plus days and weeks (`d`, `w`).
fn duration(text: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            "w" => 604_800e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        nanos += number * scale;
    }
    if !nanos.is_finite() || nanos > i64::MAX as f64 {
        return None;
    }
    let nanos = nanos.round() as i64;
    Some(chrono::Duration::nanoseconds(if negative {
        -nanos
    } else {
        nanos
    }))
}

/// The JSON form of a CEL value; `None` for values JSON cannot hold (functions, opaque
/// values, non-finite doubles).
pub fn to_json(value: &Value) -> Option<Json> {
    Some(match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => Json::Number(serde_json::Number::from_f64(*f)?),
        Value::String(s) => Json::String(s.to_string()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect::<Option<_>>()?),
        Value::Map(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map.map.iter() {
                let key = match k {
                    Key::String(s) => s.to_string(),
                    Key::Int(i) => i.to_string(),
                    Key::Uint(u) => u.to_string(),
                    Key::Bool(b) => b.to_string(),
                };
                out.insert(key, to_json(v)?);
            }
            Json::Object(out)
        }
        _ => return None,
    })
}

/// `optional.of(value)`, or `optional.none()` for `None`.
pub fn optional(value: Option<Value>) -> Value {
    let opt = match value {
        Some(v) => OptionalValue::of(v),
        None => OptionalValue::none(),
    };
    Value::Opaque(Arc::new(opt))
}
