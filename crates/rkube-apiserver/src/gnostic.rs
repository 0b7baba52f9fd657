//! The Swagger 2.0 document in the protobuf form upstream serves beside the JSON one: gnostic's
//! `openapi.v2.Document` message (github.com/google/gnostic, `openapiv2/OpenAPIv2.proto`),
//! which client-go's `OpenAPISchema()` asks for and kubectl before 1.30 and Helm decode.
//!
//! The JSON document is walked once and written field by field in gnostic's field numbers
//! (ascending, as Go's marshaller writes them; proto3 zero values left out). Values gnostic
//! keeps as `Any` (defaults, enums, examples, vendor extensions) carry their YAML text, as
//! gnostic's parser stores them; the JSON text is written, which is YAML too.

use serde_json::{Map, Value};

/// One message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field << 3 | u32::from(wire)));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, 2);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn string(&mut self, field: u32, value: Option<&Value>) {
        if let Some(s) = value.and_then(Value::as_str).filter(|s| !s.is_empty()) {
            self.bytes(field, s.as_bytes());
        }
    }

    fn strings(&mut self, field: u32, value: Option<&Value>) {
        for s in value.and_then(Value::as_array).into_iter().flatten() {
            if let Some(s) = s.as_str() {
                self.bytes(field, s.as_bytes());
            }
        }
    }

    fn boolean(&mut self, field: u32, value: Option<&Value>) {
        if value.and_then(Value::as_bool) == Some(true) {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn int64(&mut self, field: u32, value: Option<&Value>) {
        if let Some(n) = value.and_then(Value::as_i64).filter(|n| *n != 0) {
            self.key(field, 0);
            self.varint(n as u64);
        }
    }

    fn double(&mut self, field: u32, value: Option<&Value>) {
        if let Some(n) = value.and_then(Value::as_f64).filter(|n| *n != 0.0) {
            self.key(field, 1);
            self.0.extend_from_slice(&n.to_le_bytes());
        }
    }

    fn message(&mut self, field: u32, msg: Msg) {
        self.bytes(field, &msg.0);
    }

    /// A `NamedX` pair: the name, then the value's message.
    fn named(&mut self, field: u32, name: &str, value: Msg) {
        let mut pair = Msg::default();
        pair.bytes(1, name.as_bytes());
        pair.message(2, value);
        self.message(field, pair);
    }

    /// gnostic's `Any`: the value as YAML text.
    fn any(&mut self, field: u32, value: Option<&Value>) {
        if let Some(v) = value {
            self.message(field, any(v));
        }
    }

    fn anys(&mut self, field: u32, value: Option<&Value>) {
        for v in value.and_then(Value::as_array).into_iter().flatten() {
            self.message(field, any(v));
        }
    }

    /// The `x-…` members as `NamedAny`s.
    fn vendor_extensions(&mut self, field: u32, object: &Map<String, Value>) {
        for (name, value) in object.iter().filter(|(k, _)| k.starts_with("x-")) {
            self.named(field, name, any(value));
        }
    }
}

fn any(value: &Value) -> Msg {
    let mut m = Msg::default();
    let text = serde_json::to_string(value).unwrap_or_default();
    m.bytes(2, format!("{text}\n").as_bytes());
    m
}

/// The document's protobuf form.
pub fn encode(doc: &Value) -> Vec<u8> {
    let empty = Map::new();
    let o = doc.as_object().unwrap_or(&empty);
    let mut m = Msg::default();
    m.string(1, o.get("swagger"));
    if let Some(info) = o.get("info").and_then(Value::as_object) {
        let mut i = Msg::default();
        i.string(1, info.get("title"));
        i.string(2, info.get("version"));
        i.string(3, info.get("description"));
        i.vendor_extensions(7, info);
        m.message(2, i);
    }
    m.string(3, o.get("host"));
    m.string(4, o.get("basePath"));
    m.strings(5, o.get("schemes"));
    m.strings(6, o.get("consumes"));
    m.strings(7, o.get("produces"));
    if let Some(paths) = o.get("paths").and_then(Value::as_object) {
        let mut p = Msg::default();
        p.vendor_extensions(1, paths);
        for (name, item) in paths.iter().filter(|(k, _)| k.starts_with('/')) {
            p.named(2, name, path_item(item));
        }
        m.message(8, p);
    }
    if let Some(definitions) = o.get("definitions").and_then(Value::as_object) {
        let mut d = Msg::default();
        for (name, s) in definitions {
            d.named(1, name, schema(s));
        }
        m.message(9, d);
    }
    for requirement in o
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut r = Msg::default();
        for (name, scopes) in requirement.as_object().into_iter().flatten() {
            let mut list = Msg::default();
            list.strings(1, Some(scopes));
            r.named(1, name, list);
        }
        m.message(12, r);
    }
    if let Some(definitions) = o.get("securityDefinitions").and_then(Value::as_object) {
        let mut d = Msg::default();
        for (name, def) in definitions {
            d.named(1, name, security_definition(def));
        }
        m.message(13, d);
    }
    m.vendor_extensions(16, o);
    m.0
}

fn security_definition(def: &Value) -> Msg {
    let empty = Map::new();
    let o = def.as_object().unwrap_or(&empty);
    let mut inner = Msg::default();
    inner.string(1, o.get("type"));
    let field = if o.get("type").and_then(Value::as_str) == Some("apiKey") {
        inner.string(2, o.get("name"));
        inner.string(3, o.get("in"));
        inner.string(4, o.get("description"));
        inner.vendor_extensions(5, o);
        2
    } else {
        inner.string(2, o.get("description"));
        inner.vendor_extensions(3, o);
        1
    };
    let mut item = Msg::default();
    item.message(field, inner);
    item
}

fn path_item(item: &Value) -> Msg {
    let empty = Map::new();
    let o = item.as_object().unwrap_or(&empty);
    let mut m = Msg::default();
    m.string(1, o.get("$ref"));
    for (field, method) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ] {
        if let Some(op) = o.get(method) {
            m.message(field, operation(op));
        }
    }
    for p in o
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(9, parameters_item(p));
    }
    m.vendor_extensions(10, o);
    m
}

fn operation(op: &Value) -> Msg {
    let empty = Map::new();
    let o = op.as_object().unwrap_or(&empty);
    let mut m = Msg::default();
    m.strings(1, o.get("tags"));
    m.string(2, o.get("summary"));
    m.string(3, o.get("description"));
    m.string(5, o.get("operationId"));
    m.strings(6, o.get("produces"));
    m.strings(7, o.get("consumes"));
    for p in o
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(8, parameters_item(p));
    }
    if let Some(responses) = o.get("responses").and_then(Value::as_object) {
        let mut r = Msg::default();
        for (code, response) in responses.iter().filter(|(k, _)| !k.starts_with("x-")) {
            let mut value = Msg::default();
            if let Some(reference) = response.get("$ref") {
                value.message(2, json_reference(reference, response.get("description")));
            } else {
                value.message(1, response_msg(response));
            }
            r.named(1, code, value);
        }
        r.vendor_extensions(2, responses);
        m.message(9, r);
    }
    m.strings(10, o.get("schemes"));
    m.boolean(11, o.get("deprecated"));
    m.vendor_extensions(13, o);
    m
}

fn json_reference(reference: &Value, description: Option<&Value>) -> Msg {
    let mut m = Msg::default();
    m.string(1, Some(reference));
    m.string(2, description);
    m
}

fn response_msg(response: &Value) -> Msg {
    let empty = Map::new();
    let o = response.as_object().unwrap_or(&empty);
    let mut m = Msg::default();
    m.string(1, o.get("description"));
    if let Some(s) = o.get("schema") {
        let mut item = Msg::default();
        item.message(1, schema(s));
        m.message(2, item);
    }
    m.vendor_extensions(5, o);
    m
}

/// A `ParametersItem`: a reference, a body parameter, or one of the four other kinds.
fn parameters_item(param: &Value) -> Msg {
    let empty = Map::new();
    let o = param.as_object().unwrap_or(&empty);
    let mut item = Msg::default();
    if let Some(reference) = o.get("$ref") {
        item.message(2, json_reference(reference, o.get("description")));
        return item;
    }
    let mut parameter = Msg::default();
    let location = o.get("in").and_then(Value::as_str).unwrap_or("");
    if location == "body" {
        let mut b = Msg::default();
        b.string(1, o.get("description"));
        b.string(2, o.get("name"));
        b.string(3, o.get("in"));
        b.boolean(4, o.get("required"));
        if let Some(s) = o.get("schema") {
            b.message(5, schema(s));
        }
        b.vendor_extensions(6, o);
        parameter.message(1, b);
    } else {
        // header, formData, query and path sub-schemas; the latter two kinds (formData,
        // query) have `allowEmptyValue` at 5, which moves every later field up by one.
        let (choice, allows_empty) = match location {
            "header" => (1, false),
            "formData" => (2, true),
            "query" => (3, true),
            _ => (4, false),
        };
        let mut s = Msg::default();
        s.boolean(1, o.get("required"));
        s.string(2, o.get("in"));
        s.string(3, o.get("description"));
        s.string(4, o.get("name"));
        let base = if allows_empty {
            s.boolean(5, o.get("allowEmptyValue"));
            6
        } else {
            5
        };
        primitive_fields(&mut s, o, base);
        let mut non_body = Msg::default();
        non_body.message(choice, s);
        parameter.message(2, non_body);
    }
    item.message(1, parameter);
    item
}

/// The members non-body parameters and `PrimitivesItems` share, in one run of field
/// numbers starting with `type` at `base` and ending with the vendor extensions.
fn primitive_fields(m: &mut Msg, o: &Map<String, Value>, base: u32) {
    m.string(base, o.get("type"));
    m.string(base + 1, o.get("format"));
    if let Some(items) = o.get("items").and_then(Value::as_object) {
        let mut i = Msg::default();
        primitive_fields(&mut i, items, 1);
        m.message(base + 2, i);
    }
    m.string(base + 3, o.get("collectionFormat"));
    m.any(base + 4, o.get("default"));
    m.double(base + 5, o.get("maximum"));
    m.boolean(base + 6, o.get("exclusiveMaximum"));
    m.double(base + 7, o.get("minimum"));
    m.boolean(base + 8, o.get("exclusiveMinimum"));
    m.int64(base + 9, o.get("maxLength"));
    m.int64(base + 10, o.get("minLength"));
    m.string(base + 11, o.get("pattern"));
    m.int64(base + 12, o.get("maxItems"));
    m.int64(base + 13, o.get("minItems"));
    m.boolean(base + 14, o.get("uniqueItems"));
    m.anys(base + 15, o.get("enum"));
    m.double(base + 16, o.get("multipleOf"));
    m.vendor_extensions(base + 17, o);
}

fn schema(s: &Value) -> Msg {
    let empty = Map::new();
    let o = s.as_object().unwrap_or(&empty);
    let mut m = Msg::default();
    m.string(1, o.get("$ref"));
    m.string(2, o.get("format"));
    m.string(3, o.get("title"));
    m.string(4, o.get("description"));
    m.any(5, o.get("default"));
    m.double(6, o.get("multipleOf"));
    m.double(7, o.get("maximum"));
    m.boolean(8, o.get("exclusiveMaximum"));
    m.double(9, o.get("minimum"));
    m.boolean(10, o.get("exclusiveMinimum"));
    m.int64(11, o.get("maxLength"));
    m.int64(12, o.get("minLength"));
    m.string(13, o.get("pattern"));
    m.int64(14, o.get("maxItems"));
    m.int64(15, o.get("minItems"));
    m.boolean(16, o.get("uniqueItems"));
    m.int64(17, o.get("maxProperties"));
    m.int64(18, o.get("minProperties"));
    m.strings(19, o.get("required"));
    m.anys(20, o.get("enum"));
    match o.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut a = Msg::default();
            // A oneof member is written even when false.
            a.key(2, 0);
            a.varint(u64::from(*b));
            m.message(21, a);
        }
        Some(other @ Value::Object(_)) => {
            let mut a = Msg::default();
            a.message(1, schema(other));
            m.message(21, a);
        }
        _ => {}
    }
    match o.get("type") {
        Some(Value::String(t)) => {
            let mut ty = Msg::default();
            ty.bytes(1, t.as_bytes());
            m.message(22, ty);
        }
        Some(list @ Value::Array(_)) => {
            let mut ty = Msg::default();
            ty.strings(1, Some(list));
            m.message(22, ty);
        }
        _ => {}
    }
    match o.get("items") {
        Some(one @ Value::Object(_)) => {
            let mut items = Msg::default();
            items.message(1, schema(one));
            m.message(23, items);
        }
        Some(Value::Array(many)) => {
            let mut items = Msg::default();
            for one in many {
                items.message(1, schema(one));
            }
            m.message(23, items);
        }
        _ => {}
    }
    for one in o
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(24, schema(one));
    }
    if let Some(properties) = o.get("properties").and_then(Value::as_object) {
        let mut p = Msg::default();
        for (name, property) in properties {
            p.named(1, name, schema(property));
        }
        m.message(25, p);
    }
    m.string(26, o.get("discriminator"));
    m.boolean(27, o.get("readOnly"));
    m.any(30, o.get("example"));
    m.vendor_extensions(31, o);
    m
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_are_written_with_gnostic_numbers() {
        let doc = json!({"swagger": "2.0", "info": {"title": "T", "version": "v"}});
        let bytes = encode(&doc);
        // swagger (1, "2.0"), then info (2) holding title (1) and version (2).
        assert_eq!(
            bytes,
            [
                0x0a, 3, b'2', b'.', b'0', 0x12, 6, 0x0a, 1, b'T', 0x12, 1, b'v'
            ]
        );
    }

    #[test]
    fn a_false_additional_properties_is_still_written() {
        let m = schema(&json!({"additionalProperties": false}));
        assert_eq!(m.0, [0xaa, 0x01, 2, 0x10, 0]);
    }
}
