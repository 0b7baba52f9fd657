//! Tools shared by the validators: field paths rendered as upstream renders them, read-only
//! access to JSON that treats a field of the wrong type as absent, and the checks many kinds
//! share (non-negative numbers, labels, annotations, label selectors, immutability, ports).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::names::{is_qualified_name, is_valid_label_value};
use crate::error::FieldError;

/// Upstream's message for a changed immutable field.
pub(super) const IMMUTABLE: &str = "field is immutable";

/// A field path: `spec.containers[0].image`, `metadata.labels`, `data[key]`. Paths are made
/// for every field validated and shown for few of them, so a path is a chain of borrowed
/// steps on the stack, rendered only when an error names it.
#[derive(Clone, Debug, Default)]
pub(super) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    step: Step<'a>,
}

#[derive(Clone, Copy, Debug, Default)]
enum Step<'a> {
    /// The empty path.
    #[default]
    Root,
    Field(&'a str),
    Index(usize),
    Key(&'a str),
}

impl<'a> Path<'a> {
    /// A path starting at a top-level field.
    pub(super) fn new(root: &'a str) -> Self {
        Self {
            parent: None,
            step: Step::Field(root),
        }
    }

    /// The path of a field below this one.
    pub(super) fn child<'b>(&'b self, name: &'b str) -> Path<'b> {
        self.then(Step::Field(name))
    }

    /// The path of a list element.
    pub(super) fn index(&self, i: usize) -> Path<'_> {
        self.then(Step::Index(i))
    }

    /// The path of a map entry.
    pub(super) fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        self.then(Step::Key(key))
    }

    fn then<'b>(&'b self, step: Step<'b>) -> Path<'b> {
        Path {
            parent: Some(self),
            step,
        }
    }

    fn render(&self, out: &mut String) {
        if let Some(parent) = self.parent {
            parent.render(out);
        }
        match self.step {
            Step::Root => {}
            Step::Field(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Step::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
            Step::Key(key) => {
                out.push('[');
                out.push_str(key);
                out.push(']');
            }
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from(self))
    }
}

impl From<&Path<'_>> for String {
    fn from(path: &Path<'_>) -> Self {
        let mut out = String::new();
        path.render(&mut out);
        out
    }
}

impl From<Path<'_>> for String {
    fn from(path: Path<'_>) -> Self {
        String::from(&path)
    }
}

/// A field of an object, or `None` for an absent field, a null, or a value that is not an
/// object.
pub(super) fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_object()?.get(key).filter(|v| !v.is_null())
}

/// A string field, "" when absent (as Go's zero value).
pub(super) fn str_at<'a>(value: &'a Value, key: &str) -> &'a str {
    get(value, key).and_then(Value::as_str).unwrap_or("")
}

/// An integer field, if present.
pub(super) fn int_at(value: &Value, key: &str) -> Option<i64> {
    get(value, key).and_then(Value::as_i64)
}

/// A boolean field, if present.
pub(super) fn bool_at(value: &Value, key: &str) -> Option<bool> {
    get(value, key).and_then(Value::as_bool)
}

/// A list field, empty when absent.
pub(super) fn list_at<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    get(value, key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A map field, if present.
pub(super) fn map_at<'a>(value: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    get(value, key).and_then(Value::as_object)
}

/// A map of strings (labels, selectors, data), in key order as Go's sorted output has it.
pub(super) fn string_map(value: &Value, key: &str) -> BTreeMap<String, String> {
    map_at(value, key)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The value at a path of keys, if every step is there.
pub(super) fn dig<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(value, |v, k| get(v, k))
}

/// `ValidateNonnegativeField`.
pub(super) fn nonnegative(value: Option<i64>, path: &Path, errs: &mut Vec<FieldError>) {
    if let Some(n) = value.filter(|n| *n < 0) {
        errs.push(FieldError::invalid(
            path,
            n,
            "must be greater than or equal to 0",
        ));
    }
}

/// `ValidateImmutableField`: a change is an Invalid with the new value.
pub(super) fn immutable(
    new: Option<&Value>,
    old: Option<&Value>,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    if new != old {
        errs.push(FieldError::invalid(
            path,
            new.cloned().unwrap_or(Value::Null),
            IMMUTABLE,
        ));
    }
}

/// `ValidateLabels`: keys are qualified names, values label values; both reported at the
/// map's path.
pub(super) fn labels(value: Option<&Value>, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(map) = value.and_then(Value::as_object) else {
        return;
    };
    for (key, val) in map {
        for msg in is_qualified_name(key) {
            errs.push(FieldError::invalid(path, key.as_str(), &msg));
        }
        let val = val.as_str().unwrap_or("");
        for msg in is_valid_label_value(val) {
            errs.push(FieldError::invalid(path, val, &msg));
        }
    }
}

/// The most bytes all of an object's annotations may take, keys and values together.
const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

/// `ValidateAnnotations`: keys are qualified names in any case; 256 KiB in all.
pub(super) fn annotations(value: Option<&Value>, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(map) = value.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0;
    for (key, val) in map {
        for msg in is_qualified_name(&key.to_lowercase()) {
            errs.push(FieldError::invalid(path, key.as_str(), &msg));
        }
        total += key.len() + val.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE));
    }
}

/// `ValidateLabelSelector` (strict: label values in the selector must be valid).
pub(super) fn label_selector(selector: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    labels(
        get(selector, "matchLabels"),
        &path.child("matchLabels"),
        errs,
    );
    let exprs = path.child("matchExpressions");
    for (i, expr) in list_at(selector, "matchExpressions").iter().enumerate() {
        let p = exprs.index(i);
        let values = list_at(expr, "values");
        match str_at(expr, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                p.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        let key = str_at(expr, "key");
        for msg in is_qualified_name(key) {
            errs.push(FieldError::invalid(p.child("key"), key, &msg));
        }
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            for msg in is_valid_label_value(v) {
                errs.push(FieldError::invalid(p.child("values").index(j), v, &msg));
            }
        }
    }
}

/// Whether a selector has no requirement at all.
pub(super) fn selector_is_empty(selector: &Value) -> bool {
    map_at(selector, "matchLabels").is_none_or(Map::is_empty)
        && list_at(selector, "matchExpressions").is_empty()
}

/// Whether a label selector matches a set of labels.
pub(super) fn selector_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let match_labels = string_map(selector, "matchLabels");
    let labels_ok = match_labels.iter().all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = list_at(selector, "matchExpressions").iter().all(|expr| {
        let key = str_at(expr, "key");
        let values: Vec<&str> = list_at(expr, "values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let actual = labels.get(key).map(String::as_str);
        match str_at(expr, "operator") {
            "In" => actual.is_some_and(|a| values.contains(&a)),
            "NotIn" => actual.is_none_or(|a| !values.contains(&a)),
            "Exists" => actual.is_some(),
            "DoesNotExist" => actual.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// `IsValidPortNum`.
pub(super) fn port_number(port: i64, path: &Path, errs: &mut Vec<FieldError>) {
    if !(1..=65535).contains(&port) {
        errs.push(FieldError::invalid(
            path,
            port,
            "must be between 1 and 65535, inclusive",
        ));
    }
}

/// `IsValidPortName`: an IANA service name.
pub(super) fn port_name_errors(name: &str) -> Vec<&'static str> {
    let mut msgs = Vec::new();
    if name.len() > 15 {
        msgs.push("must be no more than 15 characters");
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        msgs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        msgs.push("must contain at least one letter (a-z)");
    }
    if name.contains("--") {
        msgs.push("must not contain consecutive hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        msgs.push("must not begin or end with a hyphen");
    }
    msgs
}

/// A port given by number or by name (probe and service target ports).
pub(super) fn port_num_or_name(port: Option<&Value>, path: &Path, errs: &mut Vec<FieldError>) {
    match port {
        Some(Value::Number(n)) => port_number(n.as_i64().unwrap_or(0), path, errs),
        Some(Value::String(name)) => {
            for msg in port_name_errors(name) {
                errs.push(FieldError::invalid(path, name.as_str(), msg));
            }
        }
        // Go's zero IntOrString is the number 0.
        _ => port_number(0, path, errs),
    }
}

/// `IsValidPercent`.
pub(super) fn is_percent(s: &str) -> bool {
    s.strip_suffix('%')
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// An int-or-string that must be a non-negative number or a percentage.
pub(super) fn int_or_percent(value: Option<&Value>, path: &Path, errs: &mut Vec<FieldError>) {
    match value {
        Some(Value::String(s)) if !is_percent(s) => errs.push(FieldError::invalid(
            path,
            s.as_str(),
            "a valid percent string must be a numeric string followed by an ending '%' \
             (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
        )),
        Some(Value::Number(n)) => nonnegative(n.as_i64(), path, errs),
        _ => {}
    }
}

/// The amount an int-or-percent stands for (percent as its number), 0 when unset or bad.
pub(super) fn int_or_percent_value(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::String(s)) if is_percent(s) => {
            s.trim_end_matches('%').parse().unwrap_or(i64::MAX)
        }
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// Reports `value` not among `supported`, or a missing value as Required.
pub(super) fn one_of(value: &str, supported: &[&str], path: &Path, errs: &mut Vec<FieldError>) {
    if value.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if !supported.contains(&value) {
        errs.push(FieldError::not_supported(path, value, supported));
    }
}

#[cfg(test)]
mod tests {
    use super::Path;

    #[test]
    fn paths_render_as_upstream_field_paths() {
        let spec = Path::new("spec");
        assert_eq!(
            spec.child("containers").index(0).child("image").to_string(),
            "spec.containers[0].image"
        );
        assert_eq!(
            spec.child("x").index(1234567).to_string(),
            "spec.x[1234567]"
        );
        assert_eq!(Path::new("data").key("a.b").to_string(), "data[a.b]");
        assert_eq!(Path::default().child("metadata").to_string(), "metadata");
        assert_eq!(
            Path::default().index(usize::MAX).to_string(),
            format!("[{}]", usize::MAX)
        );
    }
}
