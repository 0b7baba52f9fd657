//! What the static cost estimate knows of a schema node: upstream's `DeclType` as
//! apiextensions' `model.SchemaDeclType` builds it — the most elements a list, map or string
//! may hold, and the fewest bytes a value of the node takes in JSON.
//!
//! Bounds come from `maxItems`, `maxProperties`, `maxLength` (times four: a code point may take
//! four bytes), the longest `enum` value and the date/duration formats; what the schema leaves
//! unbounded is assumed as large as the 3 MiB request limit allows, given the smallest JSON
//! form of each element (`estimateMaxArrayItemsFromMinSize` and friends).

use std::collections::BTreeMap;

use serde_json::Value;

/// Upstream's `DefaultMaxRequestSizeBytes`: the largest request body the server accepts.
pub(crate) const MAX_REQUEST_SIZE_BYTES: u64 = 3 * 1024 * 1024;

/// The longest RFC 3339 duration or date-time in JSON, quotes included.
const MAX_DURATION_SIZE_JSON: u64 = 32;
const MAX_DATETIME_SIZE_JSON: u64 = 32;
/// The shortest JSON forms: `"0"`, a quoted date, a quoted date-time, `""`, `true`, `0`.
const MIN_DURATION_SIZE_JSON: u64 = 3;
const JSON_DATE_SIZE: u64 = 12;
const MIN_DATETIME_SIZE_JSON: u64 = 21;
const MIN_STRING_SIZE: u64 = 2;
const MIN_BOOL_SIZE: u64 = 4;
const MIN_NUMBER_SIZE: u64 = 1;

/// A schema node as the cost estimate sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaType {
    pub(crate) kind: Kind,
    /// The most items of a list, entries of a map, or bytes of a string; 0 for the rest.
    pub(crate) max_elements: u64,
    /// The fewest bytes a value of this node serializes to in JSON.
    pub(crate) min_serialized_size: u64,
}

/// The CEL type of a schema node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// An object with its properties, by their CEL-escaped names.
    Object(BTreeMap<String, SchemaType>),
    List(Box<SchemaType>),
    /// A map (`additionalProperties`) to its values.
    Map(Box<SchemaType>),
    String,
    Bytes,
    Duration,
    Timestamp,
    Int,
    Double,
    Bool,
    /// `x-kubernetes-int-or-string`.
    Dyn,
}

/// The keys of every map: strings with no declared bound, which upstream's estimate reads
/// as a size of 0 (its `StringType` has no `MaxElements`).
pub(crate) static MAP_KEY: SchemaType = SchemaType {
    kind: Kind::String,
    max_elements: 0,
    min_serialized_size: MIN_STRING_SIZE,
};

impl SchemaType {
    /// The type of the schema node `schema`, or `None` when CEL does not see the node (no
    /// type, or a list or map of such). `resource_root`: the root of a custom resource or of
    /// an `x-kubernetes-embedded-resource`, where `apiVersion`, `kind` and
    /// `metadata.name`/`generateName` are always visible.
    pub fn from_schema(schema: &Value, resource_root: bool) -> Option<SchemaType> {
        if flag(schema, "x-kubernetes-int-or-string") {
            let max_elements = match bound(schema, "maxLength") {
                Some(n) => n.saturating_mul(4),
                None => MAX_REQUEST_SIZE_BYTES - 2,
            };
            return Some(SchemaType {
                kind: Kind::Dyn,
                max_elements,
                min_serialized_size: 1,
            });
        }
        let with_meta;
        let schema = if resource_root {
            with_meta = with_type_and_object_meta(schema);
            &with_meta
        } else {
            schema
        };
        match schema.get("type").and_then(Value::as_str)? {
            "array" => {
                let items = schema.get("items").filter(|i| i.is_object())?;
                let item =
                    SchemaType::from_schema(items, flag(items, "x-kubernetes-embedded-resource"))?;
                let max_items = bound(schema, "maxItems").unwrap_or(
                    (MAX_REQUEST_SIZE_BYTES - 2) / item.min_serialized_size.saturating_add(1),
                );
                Some(SchemaType {
                    kind: Kind::List(Box::new(item)),
                    max_elements: max_items,
                    min_serialized_size: 2,
                })
            }
            "object" => {
                if let Some(values) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                    let value = SchemaType::from_schema(
                        values,
                        flag(values, "x-kubernetes-embedded-resource"),
                    )?;
                    // A key of at least `""`, a colon, a comma and the smallest value.
                    let max_properties = bound(schema, "maxProperties").unwrap_or(
                        (MAX_REQUEST_SIZE_BYTES - 2) / value.min_serialized_size.saturating_add(6),
                    );
                    return Some(SchemaType {
                        kind: Kind::Map(Box::new(value)),
                        max_elements: max_properties,
                        min_serialized_size: 2,
                    });
                }
                let required: Vec<&str> = schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut fields = BTreeMap::new();
                let mut min_serialized_size = 2u64;
                if let Some(Value::Object(props)) = schema.get("properties") {
                    for (name, prop) in props {
                        let Some(field) = SchemaType::from_schema(
                            prop,
                            flag(prop, "x-kubernetes-embedded-resource"),
                        ) else {
                            continue;
                        };
                        // A required property without a default is in every object: its
                        // name in quotes, a colon, a comma and its smallest value.
                        if required.contains(&name.as_str()) && prop.get("default").is_none() {
                            min_serialized_size = min_serialized_size
                                .saturating_add(name.len() as u64)
                                .saturating_add(field.min_serialized_size)
                                .saturating_add(4);
                        }
                        if let Some(escaped) = escape(name) {
                            fields.insert(escaped, field);
                        }
                    }
                }
                Some(SchemaType {
                    kind: Kind::Object(fields),
                    max_elements: 0,
                    min_serialized_size,
                })
            }
            "string" => Some(string_type(schema)),
            "boolean" => Some(scalar(Kind::Bool, MIN_BOOL_SIZE)),
            "number" => Some(scalar(Kind::Double, MIN_NUMBER_SIZE)),
            "integer" => Some(scalar(Kind::Int, MIN_NUMBER_SIZE)),
            _ => None,
        }
    }

    /// Upstream's `MaxCardinality`: how many values of this node fit in one request, each
    /// followed by a comma — how often a rule on it may run when nothing above bounds it.
    pub fn max_cardinality(&self) -> u64 {
        MAX_REQUEST_SIZE_BYTES / self.min_serialized_size.saturating_add(1)
    }

    /// The node a path segment leads to from here.
    pub(crate) fn child(&self, segment: Segment<'_>) -> Option<&SchemaType> {
        match (segment, &self.kind) {
            (Segment::Field(name), Kind::Object(fields)) => fields.get(name),
            (Segment::Elements, Kind::List(e) | Kind::Map(e)) => Some(e),
            (Segment::Keys, Kind::Map(_)) => Some(&MAP_KEY),
            _ => None,
        }
    }
}

/// A step of upstream's size-estimate paths: a field, `@items`/`@values`, or `@keys`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Segment<'a> {
    Field(&'a str),
    Elements,
    Keys,
}

fn scalar(kind: Kind, min_serialized_size: u64) -> SchemaType {
    SchemaType {
        kind,
        max_elements: 0,
        min_serialized_size,
    }
}

fn string_type(schema: &Value) -> SchemaType {
    let unbounded = MAX_REQUEST_SIZE_BYTES - 2;
    let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
    let (kind, min, max) = match format {
        "byte" => (
            Kind::Bytes,
            MIN_STRING_SIZE,
            bound(schema, "maxLength").unwrap_or(unbounded),
        ),
        "duration" => (
            Kind::Duration,
            MIN_DURATION_SIZE_JSON,
            MAX_DURATION_SIZE_JSON,
        ),
        "date" => (Kind::Timestamp, JSON_DATE_SIZE, JSON_DATE_SIZE),
        "date-time" => (
            Kind::Timestamp,
            MIN_DATETIME_SIZE_JSON,
            MAX_DATETIME_SIZE_JSON,
        ),
        _ => {
            let max = match bound(schema, "maxLength") {
                Some(n) => n.saturating_mul(4),
                None => match schema.get("enum").and_then(Value::as_array) {
                    Some(values) if !values.is_empty() => values
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|s| s.len() as u64)
                        .max()
                        .unwrap_or(0),
                    _ => unbounded,
                },
            };
            (Kind::String, MIN_STRING_SIZE, max)
        }
    };
    SchemaType {
        kind,
        max_elements: max,
        min_serialized_size: min,
    }
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

/// A non-negative integer bound (`maxItems`…), negative ones read as 0 as upstream does.
fn bound(schema: &Value, name: &str) -> Option<u64> {
    let v = schema.get(name)?;
    let n = v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))?;
    Some(n.max(0) as u64)
}

/// Upstream's `WithTypeAndObjectMeta`: a resource root always shows `kind`, `apiVersion` and
/// `metadata.name`/`generateName`; unless the schema declares all of them as strings, they
/// replace what it declares (metadata keeps only those two).
fn with_type_and_object_meta(schema: &Value) -> Value {
    let is = |v: Option<&Value>, t: &str| {
        v.and_then(|v| v.get("type")).and_then(Value::as_str) == Some(t)
    };
    let props = schema.get("properties");
    let meta = props.and_then(|p| p.get("metadata"));
    let meta_props = meta.and_then(|m| m.get("properties"));
    if is(props.and_then(|p| p.get("kind")), "string")
        && is(props.and_then(|p| p.get("apiVersion")), "string")
        && is(meta, "object")
        && is(meta_props.and_then(|p| p.get("name")), "string")
        && is(meta_props.and_then(|p| p.get("generateName")), "string")
    {
        return schema.clone();
    }
    let mut out = schema.clone();
    if !out.get("properties").is_some_and(Value::is_object) {
        out["properties"] = Value::Object(Default::default());
    }
    let string = serde_json::json!({"type": "string"});
    out["properties"]["kind"] = string.clone();
    out["properties"]["apiVersion"] = string.clone();
    out["properties"]["metadata"] = serde_json::json!({"type": "object", "properties": {
        "name": string.clone(), "generateName": string,
    }});
    out
}

/// The words CEL reserves, which a property name escapes as `__word__`.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Upstream's `Escape`: a property name as a CEL field name (`__`, `.`, `-` and `/` spelled
/// out), or `None` for a name CEL cannot spell (leading digit, other characters).
fn escape(name: &str) -> Option<String> {
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("__") {
            out.push_str("__underscores__");
            rest = after;
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}
