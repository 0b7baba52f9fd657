//! The columns `kubectl get` shows. This version gives every kind upstream's default table
//! (name and creation time); per-kind printers replace it.

use serde_json::{Value, json};

/// One column, as metav1.TableColumnDefinition.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// The header.
    pub name: &'static str,
    /// The cell type: string, integer, date, number, boolean.
    pub type_: &'static str,
    /// "name" for the name column.
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0: always shown; 1: only with -o wide.
    pub priority: i32,
}

const DEFAULT: &[Column] = &[
    Column { name: "Name", type_: "string", format: "name", description: "Name must be unique within a namespace.", priority: 0 },
    Column { name: "Created At", type_: "date", format: "", description: "CreationTimestamp is a timestamp representing the server time when this object was created.", priority: 0 },
];

/// The columns for a kind.
pub fn columns(_group: &str, _kind: &str) -> &'static [Column] {
    DEFAULT
}

/// The cells of one object's row.
pub fn cells(_group: &str, _kind: &str, object: &Value, _now: jiff::Timestamp) -> Vec<Value> {
    vec![
        object["metadata"]["name"].clone(),
        object["metadata"].get("creationTimestamp").cloned().unwrap_or(json!(null)),
    ]
}
