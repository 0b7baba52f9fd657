//! Request bodies: JSON, YAML and protobuf in, and the typed round trip that checks types and
//! finds unknown and duplicate fields (`?fieldValidation=`).
//!
//! What strict decoding reports, and in which order, follows upstream's serializer: for JSON,
//! `unknown field "<path>"` and `duplicate field "<path>"` in the order the text holds them
//! (a field both unknown and repeated is reported once, as unknown); for YAML, the duplicate
//! keys first, as one `yaml: unmarshal errors:` error with a `line N: key "k" already set in
//! map` line each (one warning each under Warn), then the unknown fields of the converted
//! object, members in name order.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use rkube_api::ApiError;
use rkube_api::registry::ResourceType;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::request::Query;

/// The media type of a `Content-Type` header, without parameters (JSON when absent).
fn media_type(content_type: Option<&str>) -> &str {
    content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
}

/// Parses a request body: JSON (and the JSON-based patch types) or Kubernetes protobuf.
/// Whether a body of this type is read as plain JSON.
pub fn is_json(content_type: Option<&str>) -> bool {
    matches!(media_type(content_type), "application/json" | "" | "*/*")
}

pub fn decode_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let media = media_type(content_type);
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

fn unknown_field(path: &str) -> String {
    format!("unknown field \"{path}\"")
}

fn duplicate_field(path: &str) -> String {
    format!("duplicate field \"{path}\"")
}

/// The fields present in `input` but dropped by the typed round trip, as strict decoding
/// reports them.
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
                    None => out.push(unknown_field(&child)),
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

/// A create's body, decoded.
pub(crate) enum Incoming {
    /// Parsed (JSON or protobuf), still to be checked against the kind's type.
    Parsed(Value),
    /// Parsed from YAML, still to be checked against the kind's type, with the duplicate
    /// keys the text repeats (`line N: key "k" already set in map`).
    Yaml(Value, Vec<String>),
    /// JSON decoded straight into the kind's type and back: its known fields, and what
    /// strict decoding reports about the text (unknown and duplicate fields, in text order).
    Known(Value, Vec<String>),
}

impl Incoming {
    /// The object, whatever form it came in.
    pub(crate) fn object_mut(&mut self) -> &mut Value {
        match self {
            Incoming::Parsed(object) | Incoming::Yaml(object, _) | Incoming::Known(object, _) => {
                object
            }
        }
    }
}

impl From<Value> for Incoming {
    fn from(object: Value) -> Self {
        Self::Parsed(object)
    }
}

/// Decodes a create's body. Plain JSON goes straight into the kind's type, without the sent
/// object being built first; a body that does not decode that way (wrong types, another
/// apiVersion, not JSON) is parsed as [`decode_body`] does, so that it is refused with the
/// same error.
pub(crate) fn decode_incoming(
    rt: &ResourceType,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Incoming, ApiError> {
    let media = media_type(content_type);
    if matches!(media, "application/json" | "" | "*/*")
        && rt.custom.is_none()
        && let Ok(known) = (rt.normalize_json)(body)
        && let Ok(unknown) = unknown_in_text(body, &known)
    {
        return Ok(Incoming::Known(known, unknown));
    }
    if matches!(media, "application/yaml") {
        let object = decode_yaml(body)?;
        return Ok(Incoming::Yaml(
            object,
            crate::yaml_keys::duplicate_keys(body),
        ));
    }
    decode_body(content_type, body).map(Incoming::Parsed)
}

/// The type's form of a parsed object, and the paths of the fields it dropped.
pub(crate) fn known_fields(
    rt: &ResourceType,
    object: Value,
) -> Result<(Value, Vec<String>), ApiError> {
    if let Some(custom) = &rt.custom {
        let mut known = (rt.normalize)(&object).map_err(|e| cannot_handle(rt, e.to_string()))?;
        let mut unknown = Vec::new();
        unknown_fields(
            &object["metadata"],
            &known["metadata"],
            "metadata",
            &mut unknown,
        );
        unknown.extend(custom.prune_and_default(&mut known));
        return Ok((known, unknown));
    }
    let known = (rt.normalize)(&object).map_err(|e| cannot_handle(rt, e.to_string()))?;
    let mut unknown = Vec::new();
    unknown_fields(&object, &known, "", &mut unknown);
    Ok((known, unknown))
}

fn cannot_handle(rt: &ResourceType, why: String) -> ApiError {
    ApiError::BadRequest(format!(
        "{kind} in version \"{v}\" cannot be handled as a {kind}: {why}",
        kind = rt.kind,
        v = rt.version
    ))
}

/// What strict decoding found — the duplicate keys of a YAML text, then the unknown and
/// duplicate fields — as warnings (the default), a 400 under Strict, nothing under Ignore.
pub(crate) fn report_strict(
    rt: &ResourceType,
    yaml_duplicates: Vec<String>,
    fields: Vec<String>,
    validation: FieldValidation,
) -> Result<(), ApiError> {
    match validation {
        FieldValidation::Ignore => Ok(()),
        FieldValidation::Warn => {
            for finding in yaml_duplicates.into_iter().chain(fields) {
                crate::warnings::warn(finding);
            }
            Ok(())
        }
        FieldValidation::Strict if yaml_duplicates.is_empty() && fields.is_empty() => Ok(()),
        FieldValidation::Strict => {
            let mut errors = Vec::with_capacity(fields.len() + 1);
            if !yaml_duplicates.is_empty() {
                errors.push(format!(
                    "yaml: unmarshal errors:\n  {}",
                    yaml_duplicates.join("\n  ")
                ));
            }
            errors.extend(fields);
            Err(cannot_handle(
                rt,
                format!("strict decoding error: {}", errors.join(", ")),
            ))
        }
    }
}

/// [`report_strict`] for a body without YAML duplicates.
pub(crate) fn report_unknown(
    rt: &ResourceType,
    fields: Vec<String>,
    validation: FieldValidation,
) -> Result<(), ApiError> {
    report_strict(rt, Vec::new(), fields, validation)
}

/// Checks types and keeps known fields only; under Strict, unknown fields are a 400.
pub(crate) fn normalize(
    rt: &ResourceType,
    object: Value,
    validation: FieldValidation,
) -> Result<Value, ApiError> {
    if validation == FieldValidation::Ignore && rt.custom.is_none() {
        return (rt.normalize)(&object).map_err(|e| cannot_handle(rt, e.to_string()));
    }
    let (known, unknown) = known_fields(rt, object)?;
    report_unknown(rt, unknown, validation)?;
    Ok(known)
}

/// [`normalize`] for an object parsed from YAML, its duplicate keys reported first.
pub(crate) fn normalize_yaml(
    rt: &ResourceType,
    object: Value,
    yaml_duplicates: Vec<String>,
    validation: FieldValidation,
) -> Result<Value, ApiError> {
    if validation == FieldValidation::Ignore && rt.custom.is_none() {
        return (rt.normalize)(&object).map_err(|e| cannot_handle(rt, e.to_string()));
    }
    let (known, unknown) = known_fields(rt, object)?;
    report_strict(rt, yaml_duplicates, unknown, validation)?;
    Ok(known)
}

/// [`unknown_fields`] over JSON text, with the fields the text repeats: the same paths, read without building the object.
fn unknown_in_text(text: &[u8], known: &Value) -> Result<Vec<String>, serde_json::Error> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(text);
    Unknown {
        known: Some(known),
        at: &At::Root,
        out: &mut out,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(out)
}

/// Where a value is, rendered only for a field that is reported.
enum At<'a> {
    Root,
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl At<'_> {
    fn render(&self) -> String {
        match self {
            At::Root => String::new(),
            At::Key(At::Root, key) => (*key).to_owned(),
            At::Key(parent, key) => format!("{}.{key}", parent.render()),
            At::Index(parent, n) => format!("{}[{n}]", parent.render()),
        }
    }
}

/// One sent value and its counterpart in the known object (`None` where the known object
/// has nothing at this place).
struct Unknown<'k, 'p> {
    known: Option<&'k Value>,
    at: &'p At<'p>,
    out: &'p mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Unknown<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unknown<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    ignore_scalars!();

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let known = self.known.and_then(Value::as_array);
        let out = self.out;
        let mut n = 0;
        loop {
            let at = At::Index(self.at, n);
            let seed = Unknown {
                // As the object comparison zips the lists: past the known list's end,
                // nothing more is compared.
                known: known.and_then(|k| k.get(n)),
                at: &at,
                out: &mut *out,
            };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
            n += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let known = self.known.and_then(Value::as_object);
        let out = self.out;
        let mut seen = Seen::default();
        while let Some(Key(key)) = map.next_key()? {
            let Some(known) = known else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let repeated = seen.contains(&key);
            match known.get(key.as_ref()) {
                Some(value) => {
                    let at = At::Key(self.at, &key);
                    if repeated {
                        out.push(duplicate_field(&at.render()));
                    }
                    map.next_value_seed(Unknown {
                        known: Some(value),
                        at: &at,
                        out: &mut *out,
                    })?;
                }
                // A field both unknown and repeated is reported once, as unknown.
                None if repeated => {
                    map.next_value::<IgnoredAny>()?;
                }
                None => {
                    // A null sent for a field is as good as no field.
                    if !map.next_value::<NullOrNot>()?.0 {
                        out.push(unknown_field(&At::Key(self.at, &key).render()));
                    }
                }
            }
            if !repeated {
                seen.insert(key);
            }
        }
        Ok(())
    }
}

/// The members a JSON text repeats, as strict decoding into a plain map reports them
/// (`duplicate field "metadata.labels.a"`), in text order; nothing for text that is not JSON.
pub(crate) fn duplicate_fields(text: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(text);
    let read = Repeats {
        at: &At::Root,
        out: &mut out,
    }
    .deserialize(&mut de);
    if read.is_err() {
        return Vec::new();
    }
    out
}

/// Finds repeated members under one place of a JSON text.
struct Repeats<'p> {
    at: &'p At<'p>,
    out: &'p mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Repeats<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Repeats<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    ignore_scalars!();

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let out = self.out;
        let mut n = 0;
        loop {
            let at = At::Index(self.at, n);
            let seed = Repeats {
                at: &at,
                out: &mut *out,
            };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
            n += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.out;
        let mut seen = Seen::default();
        while let Some(Key(key)) = map.next_key()? {
            let at = At::Key(self.at, &key);
            let repeated = seen.contains(&key);
            if repeated {
                out.push(duplicate_field(&at.render()));
            }
            map.next_value_seed(Repeats {
                at: &at,
                out: &mut *out,
            })?;
            if !repeated {
                seen.insert(key);
            }
        }
        Ok(())
    }
}

/// The member names of one object read so far: a short list, or a set once the object is
/// large (label and data maps), so that small objects allocate nothing more than a list.
#[derive(Default)]
struct Seen<'de> {
    few: Vec<Cow<'de, str>>,
    many: HashSet<Cow<'de, str>>,
}

impl<'de> Seen<'de> {
    const FEW: usize = 16;

    fn contains(&self, key: &str) -> bool {
        if self.many.is_empty() {
            self.few.iter().any(|k| k == key)
        } else {
            self.many.contains(key)
        }
    }

    fn insert(&mut self, key: Cow<'de, str>) {
        if !self.many.is_empty() {
            self.many.insert(key);
        } else if self.few.len() < Self::FEW {
            self.few.push(key);
        } else {
            self.many.extend(self.few.drain(..));
            self.many.insert(key);
        }
    }
}

/// A member's name, borrowed from the text unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Whether a value is null, read without keeping it.
struct NullOrNot(bool);

impl<'de> Deserialize<'de> for NullOrNot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IsNull;
        impl<'de> Visitor<'de> for IsNull {
            type Value = bool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<bool, E> {
                Ok(true)
            }
            fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_str<E>(self, _: &str) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| false)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
                IgnoredAny.visit_map(map).map(|_| false)
            }
        }
        deserializer.deserialize_any(IsNull).map(NullOrNot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_decoded_into_the_type_keeps_and_reports_what_the_parsed_round_trip_does() {
        let registry = rkube_api::registry::all();
        let pod = registry.by_kind("", "Pod").unwrap();
        let deployment = registry.by_kind("apps", "Deployment").unwrap();
        let cases = [
            (
                pod,
                r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"b"}},
                "spec":{"containers":[{"name":"c","image":"i","bogus":1,"ports":[{"containerPort":80,"x":{"y":2}}]},
                {"name":"d","image":"j"}],"extra":[1,2],"nodeName":null},"top":"level","nothing":null}"#,
            ),
            (
                pod,
                r#"{"metadata":{"name":"p","creationTimestamp":null,"annotations":{"k":"v"}},"spec":{"containers":[]}}"#,
            ),
            (
                pod,
                r#"{"metadata":{"name":"p"},"spec":{"containers":[],"nodeSelector":{"a\"b":"c"},"odd\u0041key":true}}"#,
            ),
            (
                deployment,
                r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
                "spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},
                "spec":{"containers":[{"name":"c","image":"i","unknownHere":[{"deep":1}]}]}},"replicas":2}}"#,
            ),
        ];
        for (rt, text) in cases {
            let Incoming::Known(known, unknown) =
                decode_incoming(rt, Some("application/json"), text.as_bytes()).unwrap()
            else {
                panic!("{text} was not decoded into the type");
            };
            let parsed: Value = serde_json::from_str(text).unwrap();
            let (want, want_unknown) = known_fields(rt, parsed).unwrap();
            assert_eq!(known, want, "{text}");
            assert_eq!(unknown, want_unknown, "{text}");
        }
        let Incoming::Known(_, unknown) =
            decode_incoming(pod, None, cases[0].1.as_bytes()).unwrap()
        else {
            panic!("plain JSON is decoded into the type");
        };
        assert_eq!(
            unknown,
            [
                "unknown field \"spec.containers[0].bogus\"",
                "unknown field \"spec.containers[0].ports[0].x\"",
                "unknown field \"spec.extra\"",
                "unknown field \"top\""
            ]
        );

        // What does not decode into the type is parsed, to be refused as before.
        for text in [
            r#"{"apiVersion":"v2","kind":"Pod","metadata":{"name":"p"}}"#,
            r#"{"kind":"Service","metadata":{"name":"p"}}"#,
            r#"{"metadata":{"name":5}}"#,
            r#"[1, 2]"#,
        ] {
            assert!(
                matches!(
                    decode_incoming(pod, Some("application/json"), text.as_bytes()),
                    Ok(Incoming::Parsed(_))
                ),
                "{text}"
            );
        }
        for text in [r#"{"metadata":{"name":"p"}} x"#, "{", ""] {
            assert!(
                matches!(
                    decode_incoming(pod, Some("application/json"), text.as_bytes()),
                    Err(ApiError::BadRequest(_))
                ),
                "{text}"
            );
        }
        // YAML is parsed, with the keys it repeats.
        assert!(matches!(
            decode_incoming(pod, Some("application/yaml"), b"metadata: {name: p}\n"),
            Ok(Incoming::Yaml(_, d)) if d.is_empty()
        ));
    }

    #[test]
    fn json_duplicates_are_reported_where_the_text_repeats_them_and_the_last_one_wins() {
        let registry = rkube_api::registry::all();
        let deployment = registry.by_kind("apps", "Deployment").unwrap();
        // Upstream's field validation test body: a repeated unknown field is only unknown.
        let text = r#"{"apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"a","name":"b","unknownMeta":1,"labels":{"app":"x"}},
            "spec":{"unknown1":"v","unknownDupe":"v","unknownDupe":"w","paused":true,"paused":false,
            "selector":{"matchLabels":{"app":"x"}},"template":{"metadata":{"labels":{"app":"x"}},
            "spec":{"containers":[{"name":"c","image":"i","unknownNested":"v",
            "imagePullPolicy":"Always","imagePullPolicy":"Never"}]}}}}"#;
        let Incoming::Known(known, findings) =
            decode_incoming(deployment, None, text.as_bytes()).unwrap()
        else {
            panic!("decoded into the type");
        };
        assert_eq!(
            findings,
            [
                "duplicate field \"metadata.name\"",
                "unknown field \"metadata.unknownMeta\"",
                "unknown field \"spec.unknown1\"",
                "unknown field \"spec.unknownDupe\"",
                "duplicate field \"spec.paused\"",
                "unknown field \"spec.template.spec.containers[0].unknownNested\"",
                "duplicate field \"spec.template.spec.containers[0].imagePullPolicy\"",
            ]
        );
        assert_eq!(known["metadata"]["name"], "b");
        assert_eq!(known["spec"]["paused"], false);
        let err = report_unknown(deployment, findings, FieldValidation::Strict).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding \
             error: duplicate field \"metadata.name\", unknown field \"metadata.unknownMeta\", \
             unknown field \"spec.unknown1\", unknown field \"spec.unknownDupe\", duplicate \
             field \"spec.paused\", unknown field \"spec.template.spec.containers[0].unknownNested\", \
             duplicate field \"spec.template.spec.containers[0].imagePullPolicy\""
        );
    }

    #[test]
    fn yaml_duplicates_come_first_as_one_error_then_unknown_fields_in_name_order() {
        let registry = rkube_api::registry::all();
        let deployment = registry.by_kind("apps", "Deployment").unwrap();
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\n  name: b\n  \
                    unknownMeta: x\nspec:\n  unknown1: v\n  unknownDupe: v\n  unknownDupe: w\n  \
                    paused: true\n  paused: false\n  selector:\n    matchLabels:\n      app: x\n  \
                    template:\n    metadata:\n      labels:\n        app: x\n    spec:\n      \
                    containers:\n      - name: c\n        image: i\n        unknownNested: v\n        \
                    imagePullPolicy: Always\n        imagePullPolicy: Never\n";
        let Incoming::Yaml(object, duplicates) =
            decode_incoming(deployment, Some("application/yaml"), text.as_bytes()).unwrap()
        else {
            panic!("parsed as YAML");
        };
        let err =
            normalize_yaml(deployment, object, duplicates, FieldValidation::Strict).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding \
             error: yaml: unmarshal errors:\n  line 5: key \"name\" already set in map\n  line 10: \
             key \"unknownDupe\" already set in map\n  line 12: key \"paused\" already set in \
             map\n  line 26: key \"imagePullPolicy\" already set in map, unknown field \
             \"metadata.unknownMeta\", unknown field \"spec.template.spec.containers[0].unknownNested\", \
             unknown field \"spec.unknown1\", unknown field \"spec.unknownDupe\""
        );
    }

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
