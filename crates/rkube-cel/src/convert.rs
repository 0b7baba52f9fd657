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
