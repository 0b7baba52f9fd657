//! Protobuf message bytes to the JSON value upstream would write for the same object.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::descriptor::{Field, Message, Special, Type, message};
use crate::special::{GO_ZERO_TIME_SECONDS, format_duration, format_micro_time, format_time};
use crate::wire::{LEN, Reader, VARINT};
use crate::{MAX_DEPTH, ProtoError};

/// Decodes one message. `None` means the value is one upstream leaves out of JSON
/// (a zero Time, an empty RawExtension).
pub(crate) fn message_value(
    msg: &'static Message,
    bytes: &[u8],
    depth: usize,
) -> Result<Option<Value>, ProtoError> {
    if depth > MAX_DEPTH {
        return Err(ProtoError::TooDeep);
    }
    match msg.special {
        Special::None => object(msg, bytes, depth).map(|o| Some(Value::Object(o))),
        Special::Time => {
            let (seconds, _) = seconds_nanos(bytes)?;
            match seconds {
                // Upstream reads an empty message as the zero time, and writes that as null.
                None | Some(GO_ZERO_TIME_SECONDS) => Ok(None),
                Some(s) => format_time(s)
                    .map(|t| Some(Value::String(t)))
                    .map_err(invalid),
            }
        }
        Special::MicroTime => {
            let (seconds, nanos) = seconds_nanos(bytes)?;
            match (seconds, nanos) {
                (None, None) | (Some(GO_ZERO_TIME_SECONDS), None | Some(0)) => Ok(None),
                (s, n) => format_micro_time(s.unwrap_or(0), n.unwrap_or(0))
                    .map(|t| Some(Value::String(t)))
                    .map_err(invalid),
            }
        }
        Special::Duration => {
            let nanos = single_varint(bytes, 1)?.unwrap_or(0) as i64;
            Ok(Some(Value::String(format_duration(nanos))))
        }
        Special::Quantity => {
            let text = single_bytes(bytes, 1)?.unwrap_or_default();
            Ok(Some(Value::String(
                String::from_utf8_lossy(text).into_owned(),
            )))
        }
        Special::IntOrString => int_or_string(bytes).map(Some),
        Special::RawJson => match single_bytes(bytes, 1)? {
            None | Some([]) => Ok(None),
            Some(raw) => raw_json(raw, depth).map(Some),
        },
        Special::StringList => {
            let mut items = Vec::new();
            let mut reader = Reader::new(bytes);
            while !reader.is_empty() {
                let (tag, wire_type) = reader.key()?;
                if tag == 1 && wire_type == LEN {
                    items.push(Value::String(lossy(reader.bytes()?)));
                } else {
                    reader.skip(wire_type)?;
                }
            }
            Ok(Some(Value::Array(items)))
        }
    }
}

/// The bytes of a RawExtension or FieldsV1: JSON, or an embedded protobuf envelope.
fn raw_json(raw: &[u8], depth: usize) -> Result<Value, ProtoError> {
    if raw.starts_with(&crate::MAGIC) {
        return crate::decode_at(raw, depth + 1);
    }
    serde_json::from_slice(raw).map_err(|source| ProtoError::EmbeddedJson {
        path: String::new(),
        source,
    })
}

fn object(
    msg: &'static Message,
    bytes: &[u8],
    depth: usize,
) -> Result<Map<String, Value>, ProtoError> {
    let mut out = Map::new();
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (tag, wire_type) = reader.key()?;
        let Some(field) = msg.field(tag) else {
            // Unknown fields are skipped, as protobuf requires.
            reader.skip(wire_type)?;
            continue;
        };
        read_field(field, wire_type, &mut reader, &mut out, depth).map_err(|e| e.at(field.json))?;
    }
    // Go's omitempty: non-required strings that are empty are left out, and so are zero
    // numbers and false in the non-pointer fields Go writes on the wire even when zero.
    out.retain(|key, value| {
        let dropped = match value {
            Value::String(s) => {
                s.is_empty()
                    && msg
                        .fields
                        .iter()
                        .any(|f| f.json == key && !f.keep_empty && !f.repeated)
            }
            Value::Bool(false) => omits_zero(msg, key),
            Value::Number(n) => n.as_f64() == Some(0.0) && omits_zero(msg, key),
            _ => false,
        };
        !dropped
    });
    Ok(out)
}

/// Whether `msg.key` is a non-pointer `omitempty` field, whose zero upstream's JSON leaves
/// out.
fn omits_zero(msg: &Message, key: &str) -> bool {
    // Entries are `<message>.<key>`; compare as that string without building it.
    let wanted = [msg.name.as_bytes(), b".", key.as_bytes()];
    crate::omit_zero::OMIT_ZERO
        .binary_search_by(|entry| {
            entry
                .bytes()
                .cmp(wanted.iter().flat_map(|p| p.iter().copied()))
        })
        .is_ok()
}

fn read_field(
    field: &'static Field,
    wire_type: u8,
    reader: &mut Reader<'_>,
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), ProtoError> {
    if field.inline {
        if let Some(Value::Object(fields)) = value(field.ty, wire_type, reader, depth)? {
            out.extend(fields);
        }
        return Ok(());
    }
    if field.map {
        let entry = expect_len(wire_type, reader)?;
        let (key, value) = map_entry(field.ty, entry, depth)?;
        let slot = out
            .entry(field.json)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(map) = slot {
            map.insert(key, value);
        }
        return Ok(());
    }
    if field.repeated {
        let slot = out
            .entry(field.json)
            .or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(items) = slot else {
            return Ok(());
        };
        let numeric = matches!(field.ty, Type::Bool | Type::Int32 | Type::Int64);
        if numeric && wire_type == LEN {
            // Packed encoding: accepted for any repeated scalar, as protobuf requires.
            let mut packed = Reader::new(reader.bytes()?);
            while !packed.is_empty() {
                items.push(scalar_varint(field.ty, packed.varint()?));
            }
        } else {
            items.push(value(field.ty, wire_type, reader, depth)?.unwrap_or(Value::Null));
        }
        return Ok(());
    }
    match value(field.ty, wire_type, reader, depth)? {
        Some(Value::Object(new)) => match out.get_mut(field.json) {
            // A repeated occurrence of a message field merges into the earlier one.
            Some(Value::Object(old)) => old.extend(new),
            _ => {
                out.insert(field.json.to_string(), Value::Object(new));
            }
        },
        Some(v) => {
            out.insert(field.json.to_string(), v);
        }
        None => {
            out.remove(field.json);
        }
    }
    Ok(())
}

fn map_entry(ty: Type, entry: &[u8], depth: usize) -> Result<(String, Value), ProtoError> {
    let mut key = String::new();
    let mut val = None;
    let mut reader = Reader::new(entry);
    while !reader.is_empty() {
        let (tag, wire_type) = reader.key()?;
        match tag {
            1 => key = lossy(expect_len(wire_type, &mut reader)?),
            2 => val = Some(value(ty, wire_type, &mut reader, depth)?.unwrap_or(Value::Null)),
            _ => reader.skip(wire_type)?,
        }
    }
    let val = match val {
        Some(v) => v,
        // A missing value is the type's zero value.
        None => value(ty, LEN, &mut Reader::new(&[0]), depth)?.unwrap_or(Value::Null),
    };
    Ok((key, val))
}

fn value(
    ty: Type,
    wire_type: u8,
    reader: &mut Reader<'_>,
    depth: usize,
) -> Result<Option<Value>, ProtoError> {
    match ty {
        Type::String => Ok(Some(Value::String(lossy(expect_len(wire_type, reader)?)))),
        Type::Bytes => Ok(Some(Value::String(
            STANDARD.encode(expect_len(wire_type, reader)?),
        ))),
        Type::Bool | Type::Int32 | Type::Int64 => {
            if wire_type != VARINT {
                return Err(ProtoError::malformed("wrong wire type for a varint field"));
            }
            Ok(Some(scalar_varint(ty, reader.varint()?)))
        }
        Type::Message(index) => {
            let bytes = expect_len(wire_type, reader)?;
            let msg = message(index).ok_or_else(|| ProtoError::malformed("bad table index"))?;
            message_value(msg, bytes, depth + 1)
        }
    }
}

fn scalar_varint(ty: Type, raw: u64) -> Value {
    match ty {
        Type::Bool => Value::Bool(raw != 0),
        // Negative int32 values are sign-extended to 64 bits on the wire; truncation undoes it.
        Type::Int32 => Value::from(raw as i64 as i32),
        _ => Value::from(raw as i64),
    }
}

fn expect_len<'a>(wire_type: u8, reader: &mut Reader<'a>) -> Result<&'a [u8], ProtoError> {
    if wire_type != LEN {
        return Err(ProtoError::malformed(
            "wrong wire type for a length-delimited field",
        ));
    }
    reader.bytes()
}

fn lossy(bytes: &[u8]) -> String {
    // Go's JSON encoder replaces invalid UTF-8 with U+FFFD; so does this.
    String::from_utf8_lossy(bytes).into_owned()
}

fn seconds_nanos(bytes: &[u8]) -> Result<(Option<i64>, Option<i64>), ProtoError> {
    let mut seconds = None;
    let mut nanos = None;
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (tag, wire_type) = reader.key()?;
        match (tag, wire_type) {
            (1, VARINT) => seconds = Some(reader.varint()? as i64),
            (2, VARINT) => nanos = Some(i64::from(reader.varint()? as i64 as i32)),
            _ => reader.skip(wire_type)?,
        }
    }
    Ok((seconds, nanos))
}

fn single_varint(bytes: &[u8], want: u32) -> Result<Option<u64>, ProtoError> {
    let mut found = None;
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (tag, wire_type) = reader.key()?;
        if tag == want && wire_type == VARINT {
            found = Some(reader.varint()?);
        } else {
            reader.skip(wire_type)?;
        }
    }
    Ok(found)
}

fn single_bytes(bytes: &[u8], want: u32) -> Result<Option<&[u8]>, ProtoError> {
    let mut found = None;
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (tag, wire_type) = reader.key()?;
        if tag == want && wire_type == LEN {
            found = Some(reader.bytes()?);
        } else {
            reader.skip(wire_type)?;
        }
    }
    Ok(found)
}

fn int_or_string(bytes: &[u8]) -> Result<Value, ProtoError> {
    let mut kind = 0u64;
    let mut int_val = 0i32;
    let mut str_val = String::new();
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (tag, wire_type) = reader.key()?;
        match (tag, wire_type) {
            (1, VARINT) => kind = reader.varint()?,
            (2, VARINT) => int_val = reader.varint()? as i64 as i32,
            (3, LEN) => str_val = lossy(reader.bytes()?),
            _ => reader.skip(wire_type)?,
        }
    }
    // Type 1 is intstr.String; anything else reads as intstr.Int, as upstream does.
    Ok(if kind == 1 {
        Value::String(str_val)
    } else {
        Value::from(int_val)
    })
}

fn invalid(reason: String) -> ProtoError {
    ProtoError::InvalidValue {
        path: String::new(),
        reason,
    }
}
