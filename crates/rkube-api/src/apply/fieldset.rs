//! Sets of field paths, as structured-merge-diff's `fieldpath.Set`, and their `FieldsV1`
//! encoding (the `f:`, `k:`, `v:`, `i:` and `.` keys of `metadata.managedFields[].fieldsV1`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// One step of a path into an object.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// A field of a map or struct: `f:name`.
    Field(String),
    /// An item of an associative list, by its key fields sorted by name: `k:{"name":"web"}`.
    Key(Vec<(String, Value)>),
    /// An item of a set-typed list, by its value: `v:"a"`.
    Value(Value),
    /// An item of a list by position: `i:0` (decoded, never produced for built-in kinds).
    Index(usize),
}

impl PathElement {
    /// The rank of the element's kind in upstream's order: fields, keys, values, indexes.
    fn rank(&self) -> u8 {
        match self {
            Self::Field(_) => 0,
            Self::Key(_) => 1,
            Self::Value(_) => 2,
            Self::Index(_) => 3,
        }
    }

    /// The `FieldsV1` key of this element.
    pub fn encode(&self) -> String {
        match self {
            Self::Field(name) => format!("f:{name}"),
            Self::Key(fields) => {
                let mut object = String::from("{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        object.push(',');
                    }
                    object.push_str(&go_json(&Value::String(name.clone())));
                    object.push(':');
                    object.push_str(&go_json(value));
                }
                object.push('}');
                format!("k:{object}")
            }
            Self::Value(value) => format!("v:{}", go_json(value)),
            Self::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `FieldsV1` key; `Ok(None)` for a key of a kind this version does not know,
    /// which upstream skips.
    pub fn decode(key: &str) -> Result<Option<Self>, String> {
        let Some((kind, rest)) = key.split_at_checked(2) else {
            return Err(format!("key must be 2 characters long: {key}"));
        };
        let element = match kind {
            "f:" => Self::Field(rest.to_owned()),
            "v:" => Self::Value(serde_json::from_str(rest).map_err(|e| e.to_string())?),
            "k:" => {
                let object: Map<String, Value> =
                    serde_json::from_str(rest).map_err(|e| e.to_string())?;
                Self::Key(
                    object
                        .into_iter()
                        .collect::<BTreeMap<_, _>>()
                        .into_iter()
                        .collect(),
                )
            }
            "i:" => Self::Index(rest.parse().map_err(|_| format!("invalid index: {key}"))?),
            _ if kind.ends_with(':') => return Ok(None),
            _ => return Err(format!("missing colon: {key}")),
        };
        Ok(Some(element))
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Field(a), Self::Field(b)) => a.cmp(b),
            (Self::Key(a), Self::Key(b)) => compare_fields(a, b),
            (Self::Value(a), Self::Value(b)) => compare_values(a, b),
            (Self::Index(a), Self::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

/// As upstream prints a path element in conflict messages: `.spec`, `[name="web"]`, `[=80]`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Field(name) => write!(f, ".{name}"),
            Self::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{name}={}", value_string(value)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            Self::Value(value) => write!(f, "[={}]", value_string(value)),
            Self::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path as upstream prints it: `.spec.template.spec.containers[name="web"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A value as structured-merge-diff's `value.ToString` shows it: strings quoted.
fn value_string(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_string).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", value_string(v)))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// JSON as Go's `encoding/json` writes it (keys sorted, `<`, `>`, `&` and the line and
/// paragraph separators escaped), so that `k:` and `v:` keys are byte-for-byte upstream's.
fn go_json(value: &Value) -> String {
    let plain = value.to_string();
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Key field lists compared name by name, then value by value, shorter first.
fn compare_fields(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for ((an, av), (bn, bv)) in a.iter().zip(b) {
        let order = an.cmp(bn).then_with(|| compare_values(av, bv));
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// structured-merge-diff's total order on values: numbers, strings, booleans, lists, maps,
/// null; numbers by value whether integer or float.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (xi, yi) in x.iter().zip(y) {
                let order = compare_values(xi, yi);
                if order != Ordering::Equal {
                    return order;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let x: Vec<(String, Value)> = x.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let y: Vec<(String, Value)> = y.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let (mut x, mut y) = (x, y);
            x.sort_by(|a, b| a.0.cmp(&b.0));
            y.sort_by(|a, b| a.0.cmp(&b.0));
            compare_fields(&x, &y)
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Whether two values are equal as structured-merge-diff sees them (`1` equals `1.0`).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => compare_values(a, b) == Ordering::Equal,
    }
}

/// A set of paths, kept as a tree: the elements that are members at this level, and the
/// subtrees below elements that lead to further members. An element can be both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the set has no paths.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Adds a path. The empty path is not a member of anything and is ignored.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [one] => {
                self.members.insert(one.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether the path is a member.
    #[cfg(test)]
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [one] => self.members.contains(one),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether this element is a member at the top level.
    pub fn has_member(&self, element: &PathElement) -> bool {
        self.members.contains(element)
    }

    /// The paths below `element`, with `element` taken off their front.
    pub fn child(&self, element: &PathElement) -> Option<&FieldSet> {
        self.children.get(element)
    }

    /// Every path in the set, in upstream's order.
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for member in &self.members {
            prefix.push(member.clone());
            out.push(prefix.clone());
            prefix.pop();
        }
        for (element, child) in &self.children {
            prefix.push(element.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.absorb(other.clone());
        out
    }

    /// Adds every path of `other` (as [`FieldSet::union`], without copying).
    pub fn absorb(&mut self, other: FieldSet) {
        let FieldSet {
            mut members,
            children,
        } = other;
        self.members.append(&mut members);
        for (element, child) in children {
            match self.children.entry(element) {
                std::collections::btree_map::Entry::Occupied(mut mine) => {
                    mine.get_mut().absorb(child)
                }
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(child);
                }
            }
        }
    }

    /// Removes the paths of `other` and, where `recursive`, everything below its members
    /// (as [`FieldSet::difference`] and [`FieldSet::recursive_difference`], in place).
    pub fn remove_all(&mut self, other: &FieldSet, recursive: bool) {
        self.members.retain(|m| !other.members.contains(m));
        self.children.retain(|element, child| {
            if recursive && other.members.contains(element) {
                return false;
            }
            if let Some(theirs) = other.children.get(element) {
                child.remove_all(theirs, recursive);
            }
            !child.is_empty()
        });
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(element, child)| {
                let both = child.intersection(other.children.get(element)?);
                (!both.is_empty()).then(|| (element.clone(), both))
            })
            .collect();
        FieldSet { members, children }
    }

    /// The paths in this set and not in `other`, path by path.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.remove_all(other, false);
        out
    }

    /// The paths in this set that are neither in `other` nor below a member of it.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.remove_all(other, true);
        out
    }

    /// The set with every element that leads somewhere also made a member, when `named` says
    /// so for it (upstream's `EnsureNamedFieldsAreMembers`, with `named` answering whether a
    /// path names a struct field).
    pub fn with_named_members(&self, named: &dyn Fn(&[PathElement]) -> bool) -> FieldSet {
        let mut prefix = Vec::new();
        self.named_members_at(&mut prefix, named)
    }

    fn named_members_at(
        &self,
        prefix: &mut Vec<PathElement>,
        named: &dyn Fn(&[PathElement]) -> bool,
    ) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.clone(),
            children: BTreeMap::new(),
        };
        for (element, child) in &self.children {
            prefix.push(element.clone());
            if named(prefix) {
                out.members.insert(element.clone());
            }
            out.children
                .insert(element.clone(), child.named_members_at(prefix, named));
            prefix.pop();
        }
        out
    }

    /// The `FieldsV1` document of the set.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.fields_v1_entries(false))
    }

    fn fields_v1_entries(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".to_owned(), Value::Object(Map::new()));
        }
        // The JSON map keeps its keys sorted, so members and children go in as they come.
        for member in &self.members {
            if !self.children.contains_key(member) {
                out.insert(member.encode(), Value::Object(Map::new()));
            }
        }
        for (element, child) in &self.children {
            let inner = child.fields_v1_entries(self.members.contains(element));
            out.insert(element.encode(), Value::Object(inner));
        }
        out
    }

    /// Parses a `FieldsV1` document.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        let Value::Object(map) = value else {
            return Err("FieldsV1 must be a JSON object".to_owned());
        };
        Ok(Self::parse_level(map, 0)?.0.unwrap_or_default())
    }

    /// The children of one `FieldsV1` object, and whether it marks itself a member.
    fn parse_level(
        map: &Map<String, Value>,
        depth: usize,
    ) -> Result<(Option<FieldSet>, bool), String> {
        if depth > super::MAX_DEPTH {
            return Err("FieldsV1 is nested too deeply".to_owned());
        }
        let mut set: Option<FieldSet> = None;
        let mut is_member = false;
        for (key, value) in map {
            if key == "." {
                is_member = true;
                continue;
            }
            let Some(element) = PathElement::decode(key)? else {
                continue;
            };
            let Value::Object(inner) = value else {
                return Err(format!("expected an object for {key}"));
            };
            let (grandchildren, child_is_member) = Self::parse_level(inner, depth + 1)?;
            let set = set.get_or_insert_with(FieldSet::new);
            if child_is_member {
                set.members.insert(element.clone());
            }
            if let Some(grandchildren) = grandchildren {
                set.children.insert(element, grandchildren);
            }
        }
        // An object with nothing below it (`{}`) is a member.
        let is_member = is_member || set.is_none();
        Ok((set, is_member))
    }
}
