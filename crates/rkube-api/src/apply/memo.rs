//! Remembered create results. What a create records in `managedFields` depends on the
//! write (kind, version, subresource, manager) and on the object's shape: its member names,
//! which values are null, empty or of which type, and the items of its lists (whose keys
//! and set members name paths). It does not depend on any other scalar: a pod's name, a
//! label's value, an annotation's text. Objects made from one template (a ReplicaSet's pods,
//! a Job's, the Events of one component) share a shape, so the comparison and the encoding
//! of its result are done once per shape and the entry is reused with the write's time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

use super::Write;

/// How many shapes are kept; the cache is emptied when it is full.
const CAPACITY: usize = 128;

/// The longest key remembered: larger objects are compared every time.
const MAX_KEY: usize = 16 * 1024;

type Entries = HashMap<Vec<u8>, Arc<Option<Value>>>;

fn entries() -> &'static Mutex<Entries> {
    static ENTRIES: OnceLock<Mutex<Entries>> = OnceLock::new();
    ENTRIES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The key for a create of `object` by `write`: the write's identity and the object's shape.
/// `None` when the shape is too large to be worth keeping.
pub(super) fn key(write: &Write<'_>, object: &Value) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    for part in [
        write.group,
        write.version,
        write.kind,
        write.subresource,
        write.manager,
    ] {
        text(part, &mut out);
    }
    shape(object, false, &mut out);
    (out.len() <= MAX_KEY).then_some(out)
}

/// The encoded `managedFields` a create with this key gave (`None` inside: none), with the
/// time of the write it was computed for.
pub(super) fn get(key: &[u8]) -> Option<Arc<Option<Value>>> {
    let entries = entries().lock().unwrap_or_else(|e| e.into_inner());
    entries.get(key).cloned()
}

/// Remembers what a create with this key gave.
pub(super) fn put(key: Vec<u8>, managed_fields: Option<Value>) {
    let mut entries = entries().lock().unwrap_or_else(|e| e.into_inner());
    if entries.len() >= CAPACITY {
        entries.clear();
    }
    entries.insert(key, Arc::new(managed_fields));
}

/// A remembered `managedFields` with each entry's time set to `now`.
pub(super) fn with_time(managed_fields: &Value, now: &str) -> Value {
    let mut out = managed_fields.clone();
    if let Value::Array(items) = &mut out {
        for item in items {
            if let Some(entry) = item.as_object_mut()
                && entry.contains_key("time")
            {
                entry.insert("time".to_owned(), Value::String(now.to_owned()));
            }
        }
    }
    out
}

fn text(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends what of `value` can change a create's field set: everything inside lists, and
/// elsewhere member names and the kind of each value.
fn shape(value: &Value, in_list: bool, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(b'n'),
        Value::Bool(b) if in_list => out.push(if *b { b't' } else { b'f' }),
        Value::Bool(_) => out.push(b'b'),
        Value::Number(n) if in_list => {
            out.push(b'#');
            text(&n.to_string(), out);
        }
        Value::Number(_) => out.push(b'#'),
        Value::String(s) if in_list => {
            out.push(b'"');
            text(s, out);
        }
        Value::String(_) => out.push(b's'),
        Value::Array(items) => {
            out.push(b'[');
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            for item in items {
                shape(item, true, out);
            }
        }
        Value::Object(map) => {
            out.push(b'{');
            out.extend_from_slice(&(map.len() as u32).to_le_bytes());
            for (name, child) in map {
                text(name, out);
                shape(child, in_list, out);
            }
        }
    }
}
