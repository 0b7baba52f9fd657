//! The JSON form of an object to protobuf message bytes.

use base64::Engine as _;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;

use crate::descriptor::{Field, Message, Special, Type, message};
use crate::special::{parse_duration, parse_time};
use crate::wire::{LEN, VARINT, Writer};
use crate::{MAX_DEPTH, ProtoError};

/// Standard base64 as Go's `[]byte` JSON decoding reads it; padding is optional here.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes `value` as the message `msg` into `out` (the message's fields, no length).
pub(crate) fn message_bytes(
    msg: &'static Message,
    value: &Value,
    depth: usize,
    out: &mut Writer,
) -> Result<(), ProtoError> {
    if depth > MAX_DEPTH {
        return Err(ProtoError::TooDeep);
    }
    match msg.special {
        Special::None => {
            let Value::Object(object) = value else {
                return Err(invalid("expected an object"));
            };
            for field in msg.fields {
                if field.inline {
                    // An embedded struct reads its fields from this same object.
                    write_value(field.ty, field.tag, value, depth, out)?;
                    continue;
                }
                // Null reads as absent, as it does in Go's JSON decoding. Keys the table
                // does not know are ignored, as upstream's non-strict decoding does.
                match object.get(field.json) {
                    None | Some(Value::Null) => {}
                    Some(v) => write_field(field, v, depth, out).map_err(|e| e.at(field.json))?,
                }
            }
            Ok(())
        }
        Special::Time => {
            let (seconds, _) = parse_time(text(value)?).map_err(invalid)?;
            // Upstream keeps whole seconds only.
            out.varint_field(1, seconds as u64);
            Ok(())
        }
        Special::MicroTime => {
            let (seconds, nanos) = parse_time(text(value)?).map_err(invalid)?;
            out.varint_field(1, seconds as u64);
            out.varint_field(2, i64::from(nanos / 1000 * 1000) as u64);
            Ok(())
        }
        Special::Duration => {
            let nanos = parse_duration(text(value)?).map_err(invalid)?;
            out.varint_field(1, nanos as u64);
            Ok(())
        }
        Special::Quantity => {
            let quantity = match value {
                Value::String(s) => s.clone(),
                // Go's Quantity also reads bare JSON numbers; the text is kept as written.
                Value::Number(n) => n.to_string(),
                _ => return Err(invalid("expected a quantity string or number")),
            };
            out.len_field(1, quantity.as_bytes());
            Ok(())
        }
        Special::IntOrString => {
            // Upstream writes all three fields: type, intVal, strVal.
            match value {
                Value::String(s) => {
                    out.varint_field(1, 1);
                    out.varint_field(2, 0);
                    out.len_field(3, s.as_bytes());
                }
                Value::Number(_) => {
                    let n = int(value, i64::from(i32::MIN), i64::from(i32::MAX))?;
                    out.varint_field(1, 0);
                    out.varint_field(2, n as u64);
                    out.len_field(3, b"");
                }
                _ => return Err(invalid("expected an integer or a string")),
            }
            Ok(())
        }
        Special::RawJson => {
            let raw = serde_json::to_vec(value).map_err(|source| ProtoError::EmbeddedJson {
                path: String::new(),
                source,
            })?;
            out.len_field(1, &raw);
            Ok(())
        }
        Special::StringList => {
            let Value::Array(items) = value else {
                return Err(invalid("expected an array of strings"));
            };
            for (i, item) in items.iter().enumerate() {
                let s = match item {
                    Value::Null => "",
                    other => text(other).map_err(|e| e.at(&format!("[{i}]")))?,
                };
                out.len_field(1, s.as_bytes());
            }
            Ok(())
        }
    }
}

fn write_field(
    field: &'static Field,
    value: &Value,
    depth: usize,
    out: &mut Writer,
) -> Result<(), ProtoError> {
    if field.map {
        let Value::Object(map) = value else {
            return Err(invalid("expected an object"));
        };
        // Sorted keys, as Go writes maps, whatever order the JSON map keeps.
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for key in keys {
            let Some(v) = map.get(key) else { continue };
            let mut entry = Writer::new();
            entry.len_field(1, key.as_bytes());
            write_value(field.ty, 2, v, depth, &mut entry).map_err(|e| e.at(key))?;
            out.len_field(field.tag, &entry.buf);
        }
        return Ok(());
    }
    if field.repeated {
        let Value::Array(items) = value else {
            return Err(invalid("expected an array"));
        };
        // Unpacked, as upstream writes its (proto2) repeated scalars.
        for (i, item) in items.iter().enumerate() {
            write_value(field.ty, field.tag, item, depth, out)
                .map_err(|e| e.at(&format!("[{i}]")))?;
        }
        return Ok(());
    }
    write_value(field.ty, field.tag, value, depth, out)
}

fn write_value(
    ty: Type,
    tag: u32,
    value: &Value,
    depth: usize,
    out: &mut Writer,
) -> Result<(), ProtoError> {
    // A null inside an array or map is the zero value, as in Go.
    let null = value.is_null();
    match ty {
        Type::String => {
            let s = if null { "" } else { text(value)? };
            out.len_field(tag, s.as_bytes());
        }
        Type::Bytes => {
            let bytes = if null {
                Vec::new()
            } else {
                BASE64
                    .decode(text(value)?)
                    .map_err(|e| invalid(format!("invalid base64: {e}")))?
            };
            out.len_field(tag, &bytes);
        }
        Type::Bool => {
            let b = match value {
                Value::Bool(b) => *b,
                Value::Null => false,
                _ => return Err(invalid("expected a boolean")),
            };
            out.varint_field(tag, u64::from(b));
        }
        Type::Int32 => {
            let n = if null {
                0
            } else {
                int(value, i64::from(i32::MIN), i64::from(i32::MAX))?
            };
            out.key(tag, VARINT);
            // Negative values are sign-extended to ten bytes, as protobuf requires.
            out.varint(n as u64);
        }
        Type::Int64 => {
            let n = if null {
                0
            } else {
                int(value, i64::MIN, i64::MAX)?
            };
            out.varint_field(tag, n as u64);
        }
        Type::Message(index) => {
            let msg = message(index).ok_or_else(|| invalid("bad table index"))?;
            let mut inner = Writer::new();
            if !null {
                message_bytes(msg, value, depth + 1, &mut inner)?;
            }
            out.key(tag, LEN);
            out.varint(inner.buf.len() as u64);
            out.buf.extend_from_slice(&inner.buf);
        }
    }
    Ok(())
}

fn text(value: &Value) -> Result<&str, ProtoError> {
    value.as_str().ok_or_else(|| invalid("expected a string"))
}

fn int(value: &Value, min: i64, max: i64) -> Result<i64, ProtoError> {
    let n = match value {
        Value::Number(n) => n
            .as_i64()
            // Integral floats (1.0, 1e3) are accepted: they name an integer exactly.
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            }),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(_) => Err(invalid("integer out of range")),
        None if value.as_f64().is_some_and(|f| f.fract() == 0.0) => {
            Err(invalid("integer out of range"))
        }
        None => Err(invalid("expected an integer")),
    }
}

fn invalid(reason: impl Into<String>) -> ProtoError {
    ProtoError::InvalidValue {
        path: String::new(),
        reason: reason.into(),
    }
}
