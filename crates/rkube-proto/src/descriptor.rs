//! The shape of the generated message table and lookups into it.

use crate::table::{KINDS, MESSAGES};

/// One protobuf message as the Kubernetes API defines it.
#[derive(Debug)]
pub(crate) struct Message {
    /// Qualified name (`api.apps.v1.Deployment`).
    pub(crate) name: &'static str,
    /// Whether the JSON form is something other than an object of the fields.
    pub(crate) special: Special,
    /// Fields sorted by tag.
    pub(crate) fields: &'static [Field],
}

/// Messages whose JSON form upstream is not an object of their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    /// An ordinary message.
    None,
    /// metav1.Time: RFC 3339 with whole seconds.
    Time,
    /// metav1.MicroTime: RFC 3339 with six fractional digits.
    MicroTime,
    /// metav1.Duration: a Go duration string.
    Duration,
    /// resource.Quantity: its string.
    Quantity,
    /// intstr.IntOrString: a JSON number or string.
    IntOrString,
    /// runtime.RawExtension and metav1.FieldsV1: bytes holding the JSON value itself.
    RawJson,
    /// A message wrapping `repeated string items` that Go declares as `[]string`.
    StringList,
}

/// One field of a message.
#[derive(Debug)]
pub(crate) struct Field {
    /// The protobuf field number.
    pub(crate) tag: u32,
    /// The JSON key upstream uses.
    pub(crate) json: &'static str,
    /// The element type; for maps, the value type (keys are always strings).
    pub(crate) ty: Type,
    /// A repeated field: a JSON array.
    pub(crate) repeated: bool,
    /// A `map<string, ty>` field: a JSON object.
    pub(crate) map: bool,
    /// A Go struct embedded with `json:",inline"`: the message's fields sit in the parent's
    /// JSON object (`json` is empty).
    pub(crate) inline: bool,
    /// Keep an empty string read from the wire (the field is required, or "" means
    /// something upstream); otherwise it is dropped like Go's `omitempty`.
    pub(crate) keep_empty: bool,
}

/// The type of a field's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    /// UTF-8 text.
    String,
    /// Bytes: base64 in JSON.
    Bytes,
    /// A varint boolean.
    Bool,
    /// A varint int32.
    Int32,
    /// A varint int64.
    Int64,
    /// An embedded message: index into the message table.
    Message(usize),
}

/// One top-level kind and the message of its body.
#[derive(Debug)]
pub(crate) struct Kind {
    /// `group/version`, or `v1` for the core group.
    pub(crate) api_version: &'static str,
    /// The kind name.
    pub(crate) kind: &'static str,
    /// Index into the message table.
    pub(crate) message: usize,
}

/// The message with the given index, if the index is valid.
pub(crate) fn message(index: usize) -> Option<&'static Message> {
    MESSAGES.get(index)
}

impl Message {
    /// The field with the given tag.
    pub(crate) fn field(&self, tag: u32) -> Option<&'static Field> {
        let fields: &'static [Field] = self.fields;
        fields
            .binary_search_by_key(&tag, |f| f.tag)
            .ok()
            .and_then(|i| fields.get(i))
    }
}

/// The body message of a kind. Meta kinds that every group version carries (Status,
/// DeleteOptions, ...) are found under any group version that has kinds of its own.
pub(crate) fn kind_message(api_version: &str, kind: &str) -> Option<&'static Message> {
    if let Some(index) = find_kind(api_version, kind) {
        return message(index);
    }
    let meta = find_kind("meta.k8s.io/v1", kind)?;
    let known_version = KINDS.iter().any(|k| k.api_version == api_version);
    if known_version { message(meta) } else { None }
}

fn find_kind(api_version: &str, kind: &str) -> Option<usize> {
    KINDS
        .binary_search_by(|k| (k.api_version, k.kind).cmp(&(api_version, kind)))
        .ok()
        .and_then(|i| KINDS.get(i))
        .map(|k| k.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_every_reference_resolves() {
        for msg in MESSAGES {
            assert!(
                msg.fields.windows(2).all(|w| w[0].tag < w[1].tag),
                "{}",
                msg.name
            );
            for field in msg.fields {
                if let Type::Message(i) = field.ty {
                    assert!(message(i).is_some(), "{}.{}", msg.name, field.json);
                }
            }
        }
        assert!(
            KINDS
                .windows(2)
                .all(|w| (w[0].api_version, w[0].kind) < (w[1].api_version, w[1].kind))
        );
        assert!(KINDS.iter().all(|k| message(k.message).is_some()));
    }

    #[test]
    fn kinds_resolve_to_their_messages() {
        let name = |v, k| kind_message(v, k).map(|m| m.name);
        assert_eq!(
            name("apps/v1", "Deployment"),
            Some("api.apps.v1.Deployment")
        );
        assert_eq!(name("v1", "PodList"), Some("api.core.v1.PodList"));
        assert_eq!(
            name("v1", "Status"),
            Some("apimachinery.pkg.apis.meta.v1.Status")
        );
        assert_eq!(
            name("apps/v1", "DeleteOptions"),
            Some("apimachinery.pkg.apis.meta.v1.DeleteOptions")
        );
        assert_eq!(name("example.com/v1", "DeleteOptions"), None);
        assert_eq!(name("v1", "Widget"), None);
    }
}
