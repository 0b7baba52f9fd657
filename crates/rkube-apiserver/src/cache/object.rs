//! One object in the watch cache: the stored bytes as they are, plus the little a read needs
//! without parsing them — where `metadata` opens (to stamp the resource version), which
//! top-level members carry the type (list items go without it, as upstream's do), and the
//! labels (for label selectors).

use std::collections::BTreeMap;

use bytes::Bytes;
use rkube_api::ApiError;
use rkube_store::Revision;
use serde_json::Value;

/// An object as the cache keeps it.
#[derive(Debug)]
pub(crate) struct CachedObject {
    /// The key below the resource's prefix: `namespace/name`, or `name` when cluster-scoped.
    pub key: Box<str>,
    /// The stored JSON, without `resourceVersion`.
    pub value: Bytes,
    /// The store revision that wrote this value.
    pub revision: Revision,
    layout: Option<Layout>,
    labels: Box<[(Box<str>, Box<str>)]>,
}

/// Byte positions inside the stored JSON.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Just after the `{` that opens `metadata`.
    meta_open: u32,
    /// Whether `metadata` has no members.
    meta_empty: bool,
    /// Ranges to leave out to drop `apiVersion` and `kind` (empty ranges when absent).
    drop: [(u32, u32); 2],
}

impl CachedObject {
    /// Reads what the cache needs from stored bytes.
    pub fn new(key: &str, value: Bytes, revision: Revision) -> Self {
        let scanned = scan(&value);
        let labels = scanned
            .as_ref()
            .and_then(|s| s.labels)
            .and_then(|range| {
                serde_json::from_slice::<BTreeMap<String, Value>>(&value[range.0..range.1]).ok()
            })
            .map(|labels| {
                labels
                    .into_iter()
                    .filter_map(|(k, v)| match v {
                        Value::String(v) => Some((k.into_boxed_str(), v.into_boxed_str())),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            key: key.into(),
            value,
            revision,
            layout: scanned.and_then(|s| s.layout),
            labels,
        }
    }

    /// The object's name (the last segment of its key).
    pub fn name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }

    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| self.labels[i].1.as_ref())
    }

    /// The object as JSON with `resourceVersion` set to `revision`.
    pub fn to_value(&self, revision: Revision) -> Result<Value, ApiError> {
        let mut object: Value = serde_json::from_slice(&self.value).map_err(|e| {
            ApiError::Internal(format!("cached object {} is not JSON: {e}", self.key))
        })?;
        crate::objects::set_resource_version(&mut object, revision);
        Ok(object)
    }

    /// As [`CachedObject::to_value`], without `metadata.managedFields` (for readers that
    /// never look at it).
    pub fn to_trimmed_value(&self, revision: Revision) -> Result<Value, ApiError> {
        let mut reader = serde_json::Deserializer::from_slice(&self.value);
        let mut object: Value =
            rkube_api::trim::without_managed_fields(&mut reader).map_err(|e| {
                ApiError::Internal(format!("cached object {} is not JSON: {e}", self.key))
            })?;
        crate::objects::set_resource_version(&mut object, revision);
        Ok(object)
    }

    /// Appends the object's JSON with `resourceVersion` set to `revision`, leaving out
    /// `apiVersion` and `kind` when `without_type`; splices bytes when the layout is known.
    pub fn write_json(
        &self,
        out: &mut Vec<u8>,
        revision: Revision,
        without_type: bool,
    ) -> Result<(), ApiError> {
        let Some(layout) = self.layout else {
            let mut object = self.to_value(revision)?;
            if without_type && let Some(o) = object.as_object_mut() {
                o.remove("apiVersion");
                o.remove("kind");
            }
            return serde_json::to_writer(out, &object)
                .map_err(|e| ApiError::Internal(format!("encoding {}: {e}", self.key)));
        };
        let bytes = &self.value[..];
        let open = layout.meta_open as usize;
        let mut cuts: Vec<(usize, usize)> = Vec::with_capacity(3);
        if without_type {
            cuts.extend(
                layout
                    .drop
                    .iter()
                    .filter(|(a, b)| a < b)
                    .map(|&(a, b)| (a as usize, b as usize)),
            );
        }
        cuts.push((open, open));
        cuts.sort_unstable();
        let mut at = 0;
        for (from, to) in cuts {
            out.extend_from_slice(&bytes[at..from]);
            if from == open && to == open {
                out.extend_from_slice(b"\"resourceVersion\":\"");
                out.extend_from_slice(revision.to_string().as_bytes());
                out.push(b'"');
                if !layout.meta_empty {
                    out.push(b',');
                }
            }
            at = to;
        }
        out.extend_from_slice(&bytes[at..]);
        Ok(())
    }

    /// Approximate heap bytes held (for memory accounting in tests and benchmarks).
    #[cfg(test)]
    pub fn heap_size(&self) -> usize {
        self.key.len()
            + self.value.len()
            + self
                .labels
                .iter()
                .map(|(k, v)| k.len() + v.len() + 32)
                .sum::<usize>()
    }
}

/// What a scan of stored JSON found.
struct Scanned {
    layout: Option<Layout>,
    labels: Option<(usize, usize)>,
}

/// One member of a JSON object: the key's text (between the quotes) and the spans of the
/// whole member and of its value.
struct Member {
    key: (usize, usize),
    start: usize,
    value: (usize, usize),
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    i
}

/// The end of the string starting at `i` (which is a `"`).
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        let at = i + memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[at] == b'"' {
            return Some(at + 1);
        }
        i = at + 2;
    }
}

/// The end of the JSON value starting at `i`. Inside an object only braces (and strings)
/// move the depth, inside an array only brackets: the other kind is balanced within.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    let (open, close) = match *b.get(i)? {
        b'"' => return skip_string(b, i),
        b'{' => (b'{', b'}'),
        b'[' => (b'[', b']'),
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            {
                j += 1;
            }
            return (j > i).then_some(j);
        }
    };
    let mut depth = 0usize;
    let mut j = i;
    loop {
        j += memchr::memchr3(b'"', open, close, b.get(j..)?)?;
        match b[j] {
            b'"' => {
                j = skip_string(b, j)?;
                continue;
            }
            c if c == open => depth += 1,
            _ => {
                depth -= 1;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
        }
        j += 1;
    }
}

/// A member's raw key, where the member starts, and where its value starts.
type KeyAt<'a> = (&'a [u8], usize, usize);

/// The members of an object, read one at a time (so a search can stop at the one it
/// wants); `failed` tells a malformed object from its end.
struct Members<'a> {
    b: &'a [u8],
    at: usize,
    done: bool,
    failed: bool,
}

impl<'a> Members<'a> {
    /// The members of the object starting at `i` (a `{`).
    fn new(b: &'a [u8], i: usize) -> Option<Self> {
        if b.get(i) != Some(&b'{') {
            return None;
        }
        let at = skip_ws(b, i + 1);
        Some(Self {
            b,
            at,
            done: b.get(at) == Some(&b'}'),
            failed: false,
        })
    }

    /// The next member's key (the raw text between its quotes), where the member starts,
    /// and where its value starts, without reading the value; `None` at the end.
    fn peek_key(&self) -> Option<KeyAt<'a>> {
        if self.done {
            return None;
        }
        let (b, j) = (self.b, self.at);
        if b.get(j) != Some(&b'"') {
            return None;
        }
        let key_end = skip_string(b, j)?;
        let colon = skip_ws(b, key_end);
        if b.get(colon) != Some(&b':') {
            return None;
        }
        Some((&b[j + 1..key_end - 1], j, skip_ws(b, colon + 1)))
    }

    /// The members before the first whose key is `stop` or sorts after it, and that one's
    /// key, start and value start (`None` when there is none). Stored objects are written
    /// with their members sorted, so nothing after that point can be a key before `stop`;
    /// `None` overall when the keys read are not plain and strictly increasing (the caller
    /// then reads every member).
    fn sorted_until(mut self, stop: &[u8]) -> Option<(Vec<Member>, Option<KeyAt<'a>>)> {
        let mut before = Vec::new();
        let mut previous: &[u8] = b"";
        loop {
            let Some(next) = self.peek_key() else {
                return (self.done && !self.failed).then_some((before, None));
            };
            let key = next.0;
            if key.contains(&b'\\') || (!before.is_empty() && key <= previous) {
                return None;
            }
            if key >= stop {
                return Some((before, Some(next)));
            }
            before.push(self.read_at(next)?);
            previous = key;
        }
    }

    fn read(&mut self) -> Option<Member> {
        let key = self.peek_key()?;
        self.read_at(key)
    }

    /// Reads the member whose key [`Self::peek_key`] gave and moves past it.
    fn read_at(&mut self, key: KeyAt<'a>) -> Option<Member> {
        let value_end = skip_value(self.b, key.2)?;
        self.past(key, value_end)
    }

    /// Moves past the member whose key [`Self::peek_key`] gave and whose value the caller
    /// has read to `value_end`. At the object's end, `at` is left on its closing brace.
    fn past(&mut self, (key, start, value_start): KeyAt<'a>, value_end: usize) -> Option<Member> {
        let b = self.b;
        let next = skip_ws(b, value_end);
        match b.get(next)? {
            b',' => self.at = skip_ws(b, next + 1),
            b'}' => {
                self.at = next;
                self.done = true;
            }
            _ => return None,
        }
        Some(Member {
            key: (start + 1, start + 1 + key.len()),
            start,
            value: (value_start, value_end),
        })
    }
}

impl Iterator for Members<'_> {
    type Item = Member;

    fn next(&mut self) -> Option<Member> {
        if self.done {
            return None;
        }
        let member = self.read();
        if member.is_none() {
            self.done = true;
            self.failed = true;
        }
        member
    }
}

/// All members of the object starting at `i` (a `{`); `None` if it is malformed.
fn members(b: &[u8], i: usize) -> Option<Vec<Member>> {
    let mut iter = Members::new(b, i)?;
    let out: Vec<Member> = iter.by_ref().collect();
    (!iter.failed).then_some(out)
}

/// All members of the object starting at `i` (a `{`) and where the object ends.
fn members_and_end(b: &[u8], i: usize) -> Option<(Vec<Member>, usize)> {
    let mut iter = Members::new(b, i)?;
    let out: Vec<Member> = iter.by_ref().collect();
    (!iter.failed).then_some((out, iter.at + 1))
}

/// The member `key` of the object starting at `i`, reading no further than it.
fn member(b: &[u8], i: usize, key: &str) -> Option<Member> {
    Members::new(b, i)?.find(|m| &b[m.key.0..m.key.1] == key.as_bytes())
}

/// Where the value of the member `key` of the object at `i` starts, reading the members
/// before it only (the value itself is not read).
fn value_start(b: &[u8], i: usize, key: &str) -> Option<usize> {
    let mut members = Members::new(b, i)?;
    loop {
        let at = members.peek_key()?;
        if at.0 == key.as_bytes() {
            return Some(at.2);
        }
        members.read_at(at)?;
    }
}

/// The top-level members up to and including `metadata` (whose value span ends where it
/// starts): all that [`scan`] needs when the members are sorted, as stored objects' are,
/// and both type members come before `metadata`.
fn members_to_metadata(b: &[u8], top_start: usize) -> Option<Vec<Member>> {
    let (mut top, meta) = Members::new(b, top_start)?.sorted_until(b"metadata")?;
    let (key, start, value_start) = meta.filter(|m| m.0 == b"metadata")?;
    let has = |name: &[u8]| top.iter().any(|m| &b[m.key.0..m.key.1] == name);
    if !has(b"apiVersion") || !has(b"kind") {
        return None;
    }
    let key_start = start + 1;
    top.push(Member {
        key: (key_start, key_start + key.len()),
        start,
        value: (value_start, value_start),
    });
    Some(top)
}

/// The `labels` member's value span and whether `metadata` (the object at `i`) is empty.
/// In an object whose top level was read as sorted (see [`members_to_metadata`]) the
/// members are read only as far as `labels`.
fn labels_of(b: &[u8], i: usize, sorted: bool) -> Option<(Option<(usize, usize)>, bool)> {
    let members = Members::new(b, i)?;
    let empty = members.done;
    let found = match members.sorted_until(b"labels").filter(|_| sorted) {
        Some((_, Some((key, _, start)))) if key == b"labels" => {
            Some((start, skip_value(b, start)?))
        }
        Some(_) => None,
        None => member(b, i, "labels").map(|m| m.value),
    };
    Some((found.filter(|(s, _)| b[*s] == b'{'), empty))
}

fn scan(b: &[u8]) -> Option<Scanned> {
    let top_start = skip_ws(b, 0);
    let (top, sorted) = match members_to_metadata(b, top_start) {
        Some(top) => (top, true),
        None => (members(b, top_start)?, false),
    };
    let key = |m: &Member| &b[m.key.0..m.key.1];
    let meta = top.iter().find(|m| key(m) == b"metadata")?;
    let (labels, meta_empty) = labels_of(b, meta.value.0, sorted)?;
    // Keep every member but the type ones: the bytes between two kept members become the
    // comma after the first, so each gap holding dropped members is cut after that comma.
    let is_type = |m: &Member| key(m) == b"apiVersion" || key(m) == b"kind";
    let mut drop = [(0u32, 0u32); 2];
    let mut n = 0;
    let mut prev_kept_end: Option<usize> = None;
    let mut gap_start: Option<usize> = None;
    for m in &top {
        if is_type(m) {
            if gap_start.is_none() {
                gap_start = Some(match prev_kept_end {
                    // After the comma that follows the previous kept member.
                    Some(end) => skip_ws(b, end) + 1,
                    None => top_start + 1,
                });
            }
        } else {
            if let Some(start) = gap_start.take() {
                *drop.get_mut(n)? = (u32::try_from(start).ok()?, u32::try_from(m.start).ok()?);
                n += 1;
            }
            prev_kept_end = Some(m.value.1);
        }
    }
    if let Some(start) = gap_start {
        // Dropped members at the end: cut from the previous kept member's end (its comma
        // included) up to the closing brace.
        let end = top.last().map(|m| m.value.1)?;
        let from = prev_kept_end.unwrap_or(start);
        *drop.get_mut(n)? = (u32::try_from(from).ok()?, u32::try_from(end).ok()?);
    }
    let meta_open = meta.value.0 + 1;
    let layout = Layout {
        meta_open: u32::try_from(meta_open).ok()?,
        meta_empty,
        drop,
    };
    Some(Scanned {
        layout: Some(layout),
        labels,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(value: &Value, without_type: bool) -> Value {
        let object = CachedObject::new("ns/x", Bytes::from(serde_json::to_vec(value).unwrap()), 7);
        let mut out = Vec::new();
        object.write_json(&mut out, 42, without_type).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn raw_members_are_found_by_path() {
        let b = br#"{"metadata":{"name":"ns"},"status":{"conditions":[],"phase":"Terminating"}}"#;
        assert_eq!(
            raw_member(b, &["status", "phase"]),
            Some(&b"\"Terminating\""[..])
        );
        assert_eq!(raw_member(b, &["metadata"]), Some(&br#"{"name":"ns"}"#[..]));
        assert_eq!(raw_member(b, &["status", "missing"]), None);
        assert_eq!(raw_member(b, &["metadata", "name", "deeper"]), None);
    }

    #[test]
    fn a_stamped_version_reads_as_the_parsed_object_with_it_set() {
        let cases = [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {}}),
            json!({"kind": "Namespace", "metadata": {}}),
            json!({"data": {"metadata": "{"}, "metadata": {"labels": {"a": "}"}}}),
        ];
        for case in cases {
            let stored = crate::objects::encode(&case).unwrap();
            let stamped = stamp_version(&stored, 12).unwrap();
            let mut want = case.clone();
            crate::objects::set_resource_version(&mut want, 12);
            assert_eq!(serde_json::from_slice::<Value>(&stamped).unwrap(), want);
        }
        // Written in another order: only the top level's own `metadata` is stamped.
        let unsorted = br#"{"spec":{"metadata":{"x":1}},"metadatax":{},"metadata":{"name":"y"}}"#;
        let stamped = stamp_version(unsorted, 7).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&stamped).unwrap(),
            json!({"spec": {"metadata": {"x": 1}}, "metadatax": {},
                   "metadata": {"name": "y", "resourceVersion": "7"}})
        );
        for odd in [json!({"metadata": null}), json!({"kind": "X"}), json!([1])] {
            let stored = serde_json::to_vec(&odd).unwrap();
            assert_eq!(stamp_version(&stored, 1), None);
        }
    }

    #[test]
    fn binding_the_stored_bytes_equals_binding_the_parsed_pod() {
        let now = "2026-01-02T03:04:05Z";
        let pods = [
            // As the store keeps a created pod: sorted members, no resourceVersion.
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "d", "managedFields": [{"manager": "m",
                    "fieldsV1": {"f:spec": {"f:containers": {}}}}]},
                "spec": {"containers": [{"name": "c", "image": "i"}], "priority": 0,
                    "schedulerName": "default-scheduler"},
                "status": {"phase": "Pending", "qosClass": "BestEffort"}}),
            // Members after nodeName's place, an earlier PodScheduled, escapes.
            json!({"metadata": {"name": "q\"x"}, "spec": {"affinity": {}, "zeta": "}"},
                "status": {"conditions": [{"type": "Ready", "status": "False"},
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}}),
            // Every spec member sorts before nodeName; an empty spec; conditions not a list.
            json!({"metadata": {}, "spec": {"activeDeadlineSeconds": 3}, "status": {}}),
            json!({"metadata": {}, "spec": {}, "status": {"conditions": "odd"}}),
            json!({"metadata": {"deletionTimestamp": null}, "spec": {}, "status": {}}),
        ];
        for pod in pods {
            let stored = crate::objects::encode(&pod).unwrap();
            let mut want = pod.clone();
            crate::subresources::bind_value(&mut want, "node-\"1", None, now);
            let want = crate::objects::encode(&want).unwrap();
            let got = bind_stored(&stored, "node-\"1", now);
            assert_eq!(
                got.map(|e| match e {
                    BindEdit::Bytes(b) => String::from_utf8(b).unwrap(),
                    other => panic!("{other:?}"),
                }),
                Some(String::from_utf8(want).unwrap())
            );
        }
        // Refusals, and the unusual shapes left to the parsed path.
        let refused = [
            (
                json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {},
                "status": {}}),
                Some(BindEdit::Deleting),
            ),
            (
                json!({"metadata": {}, "spec": {"nodeName": "n2"}, "status": {}}),
                Some(BindEdit::Assigned("n2".into())),
            ),
            (
                json!({"metadata": {}, "spec": {"nodeName": ""}, "status": {}}),
                None,
            ),
            (json!({"metadata": {}, "spec": {}}), None),
            (json!({"metadata": {}, "spec": {}, "status": null}), None),
            (json!({"metadata": {}, "status": {}}), None),
            (json!({"metadata": null, "spec": {}, "status": {}}), None),
            (json!({"metadata": {}, "spec": [], "status": {}}), None),
            (json!({"spec": {}, "status": {}}), None),
        ];
        for (pod, want) in refused {
            let stored = crate::objects::encode(&pod).unwrap();
            assert_eq!(bind_stored(&stored, "n1", now), want, "{pod}");
        }
    }

    #[test]
    fn spliced_json_equals_the_parsed_form() {
        let cases = [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {"s": "{\"kind\":1}"}}),
            json!({"metadata": {}, "apiVersion": "v1", "kind": "Pod"}),
            json!({"kind": "Pod", "metadata": {"name": "x"}, "apiVersion": "v1", "z": [1, {"a": "]"}]}),
            json!({"metadata": {"name": "only"}}),
            json!({"apiVersion": "v1", "data": {"k": "v\\\"w"}, "kind": "ConfigMap", "metadata": {"name": "c"}}),
        ];
        for case in cases {
            let mut want = case.clone();
            want["metadata"]["resourceVersion"] = json!("42");
            assert_eq!(render(&case, false), want, "{case}");
            let o = want.as_object_mut().unwrap();
            o.remove("apiVersion");
            o.remove("kind");
            assert_eq!(render(&case, true), want, "{case}");
        }
    }

    #[test]
    fn members_in_any_order_are_read_as_sorted_ones_are() {
        // Stored objects are sorted; anything else is read member by member.
        let cases: [&[u8]; 7] = [
            br#"{"kind":"Pod","metadata":{"name":"x","labels":{"a":"b"}},"apiVersion":"v1"}"#,
            br#"{"apiVersion":"v1","metadata":{"zz":1,"labels":{"a":"b"}},"kind":"Pod"}"#,
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{},"labels":{"a":"b"},"name":"x"}}"#,
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{}}"#,
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{}}"#,
            br#"{"apiVersion":"v1","metadata":{"labels":{"a":"b"}},"kind":"Pod"}"#,
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{"z":"{"},"labels":null}}"#,
        ];
        for raw in cases {
            let text = String::from_utf8_lossy(raw).into_owned();
            let parsed: Value = serde_json::from_slice(raw).unwrap();
            let object = CachedObject::new("ns/x", Bytes::from_static(raw), 3);
            for without_type in [false, true] {
                let mut out = Vec::new();
                object.write_json(&mut out, 42, without_type).unwrap();
                let got: Value =
                    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{text}: {e}"));
                let mut want = parsed.clone();
                want["metadata"]["resourceVersion"] = json!("42");
                if without_type {
                    let o = want.as_object_mut().unwrap();
                    o.remove("apiVersion");
                    o.remove("kind");
                }
                assert_eq!(got, want, "{text} without_type={without_type}");
            }
            let labels = parsed["metadata"]["labels"]["a"].as_str();
            assert_eq!(object.label("a"), labels, "{text}");
        }
    }

    #[test]
    fn labels_are_read_and_names_come_from_the_key() {
        let value = json!({"metadata": {"name": "x", "labels": {"app": "web", "tier": "db"}}});
        let object = CachedObject::new("ns/x", Bytes::from(value.to_string()), 3);
        assert_eq!(object.label("app"), Some("web"));
        assert_eq!(object.label("tier"), Some("db"));
        assert_eq!(object.label("zone"), None);
        assert_eq!(object.name(), "x");
        assert!(object.heap_size() > 0);
    }

    #[test]
    fn odd_bytes_fall_back_to_parsing() {
        let object = CachedObject::new("x", Bytes::from_static(b"[1,2]"), 3);
        let mut out = Vec::new();
        assert!(object.write_json(&mut out, 4, true).is_ok());
        assert_eq!(out, b"[1,2]");
    }
}

/// The raw JSON of the member at `path` (object keys from the top), if every step is an
/// object that has it; keys are compared as written (without unescaping).
pub(crate) fn raw_member<'a>(b: &'a [u8], path: &[&str]) -> Option<&'a [u8]> {
    let mut at = (skip_ws(b, 0), b.len());
    for step in path {
        at = member(b, at.0, step)?.value;
    }
    b.get(at.0..at.1)
}

/// Stored JSON (without `resourceVersion`) as a client sees it, with `resourceVersion`
/// set to `revision` as the first member of `metadata`; `None` if it has no `metadata`
/// object.
pub(crate) fn stamp_version(b: &[u8], revision: Revision) -> Option<Vec<u8>> {
    let meta = value_start(b, skip_ws(b, 0), "metadata")?;
    if b.get(meta) != Some(&b'{') {
        return None;
    }
    let open = meta + 1;
    let empty = b.get(skip_ws(b, open)) == Some(&b'}');
    let mut out = Vec::with_capacity(b.len() + 40);
    out.extend_from_slice(&b[..open]);
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(revision.to_string().as_bytes());
    out.push(b'"');
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(&b[open..]);
    Some(out)
}

/// What binding a pod does to its stored bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BindEdit {
    /// The new stored bytes: `spec.nodeName` set and the PodScheduled condition replaced.
    Bytes(Vec<u8>),
    /// The pod is being deleted.
    Deleting,
    /// The pod is already on this node.
    Assigned(String),
}

/// Binds stored pod JSON to `node` without parsing more than its status: the node name goes
/// into `spec` where the sorted encoding puts it and `status` is encoded again with
/// PodScheduled=True, so the result is byte for byte what decoding, editing and encoding
/// the whole object gives. `None` for anything unusual (a `nodeName` that is present but
/// empty, a missing `spec` or `status`), which the caller handles on the parsed object.
pub(crate) fn bind_stored(b: &[u8], node: &str, now: &str) -> Option<BindEdit> {
    // One pass: metadata's and spec's members are read as the top level is, so neither is
    // read twice (once to skip it, once for its members).
    let mut top = Members::new(b, skip_ws(b, 0))?;
    let (mut meta_members, mut spec, mut status) = (None, None, None);
    while let Some(at) = top.peek_key() {
        match at.0 {
            b"metadata" | b"spec" => {
                let (members, end) = members_and_end(b, at.2)?;
                let member = top.past(at, end)?;
                match at.0 {
                    b"metadata" => meta_members = meta_members.or(Some(members)),
                    _ => spec = spec.or(Some((member, members))),
                }
            }
            key => {
                let member = top.read_at(at)?;
                if key == b"status" && status.is_none() {
                    status = Some(member);
                }
            }
        }
    }
    if !top.done {
        return None;
    }
    let key = |m: &Member| &b[m.key.0..m.key.1];
    let find = |ms: &[Member], name: &[u8]| ms.iter().position(|m| key(m) == name);
    let meta_members = meta_members?;
    if let Some(i) = find(&meta_members, b"deletionTimestamp")
        && &b[meta_members[i].value.0..meta_members[i].value.1] != b"null"
    {
        return Some(BindEdit::Deleting);
    }
    let (spec, spec_members) = spec?;
    let status = status?;
    if spec.value.1 > status.start {
        return None;
    }
    if let Some(i) = find(&spec_members, b"nodeName") {
        let m = &spec_members[i];
        return match serde_json::from_slice::<Value>(&b[m.value.0..m.value.1]).ok()? {
            Value::String(s) if !s.is_empty() => Some(BindEdit::Assigned(s)),
            _ => None,
        };
    }
    let mut status_value: Value =
        serde_json::from_slice(&b[status.value.0..status.value.1]).ok()?;
    let status_map = status_value.as_object_mut()?;
    crate::subresources::mark_scheduled(
        crate::objects::array_member(status_map, "conditions"),
        now,
    );
    let node_member = format!("\"nodeName\":{}", serde_json::to_string(node).ok()?);
    // Where the sorted encoding puts `nodeName` among spec's members.
    let (at, text) = match spec_members
        .iter()
        .find(|m| key(m) > b"nodeName".as_slice())
    {
        Some(next) => (next.start, format!("{node_member},")),
        None => match spec_members.last() {
            Some(last) => (last.value.1, format!(",{node_member}")),
            None => (spec.value.0 + 1, node_member),
        },
    };
    let mut out = Vec::with_capacity(b.len() + 160);
    out.extend_from_slice(&b[..at]);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&b[at..status.value.0]);
    serde_json::to_writer(&mut out, &status_value).ok()?;
    out.extend_from_slice(&b[status.value.1..]);
    Some(BindEdit::Bytes(out))
}
