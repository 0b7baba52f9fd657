//! Reading fields out of an object's JSON and formatting them the way upstream's printers do:
//! ages, label maps, label selectors, container lists, quantities.
//!
//! Upstream prints from its internal Go types, where an absent field is the zero value. The
//! readers here give the same zero values (`""`, `0`, empty list) for absent or mistyped fields,
//! so no input makes a printer fail.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

/// The value at `path` (object keys), if every step exists and is not `null`.
pub(super) fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = value;
    for key in path {
        current = current.as_object()?.get(*key)?;
    }
    (!current.is_null()).then_some(current)
}

/// Whether the field at `path` is set (a Go pointer that is not nil).
pub(super) fn has(value: &Value, path: &[&str]) -> bool {
    at(value, path).is_some()
}

/// The string at `path`, or `""`.
pub(super) fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    at(value, path).and_then(Value::as_str).unwrap_or("")
}

/// The string at `path` if it is set (possibly empty).
pub(super) fn opt_text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

/// The integer at `path` if it is set.
pub(super) fn opt_int(value: &Value, path: &[&str]) -> Option<i64> {
    let found = at(value, path)?;
    found
        .as_i64()
        .or_else(|| found.as_u64().map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
}

/// The integer at `path`, or 0.
pub(super) fn int(value: &Value, path: &[&str]) -> i64 {
    opt_int(value, path).unwrap_or(0)
}

/// The boolean at `path` if it is set.
pub(super) fn opt_bool(value: &Value, path: &[&str]) -> Option<bool> {
    at(value, path).and_then(Value::as_bool)
}

/// The boolean at `path`, or false.
pub(super) fn flag(value: &Value, path: &[&str]) -> bool {
    opt_bool(value, path).unwrap_or(false)
}

/// The list at `path`, or an empty one.
pub(super) fn list<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The number of entries of the map or list at `path`.
pub(super) fn count(value: &Value, path: &[&str]) -> usize {
    match at(value, path) {
        Some(Value::Object(map)) => map.len(),
        Some(Value::Array(items)) => items.len(),
        _ => 0,
    }
}

/// A count as the JSON integer upstream puts in a cell.
pub(super) fn count_cell(n: usize) -> Value {
    Value::from(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `metadata.name`.
pub(super) fn name(object: &Value) -> Value {
    Value::from(text(object, &["metadata", "name"]))
}

/// The AGE cell: time since `metadata.creationTimestamp`.
pub(super) fn age(object: &Value, now: Timestamp) -> Value {
    Value::from(since(text(object, &["metadata", "creationTimestamp"]), now))
}

/// A timestamp field; `None` when absent, unparsable or Go's zero time (all of which upstream
/// treats as "not set").
pub(super) fn time(value: &str) -> Option<Timestamp> {
    let parsed: Timestamp = value.parse().ok()?;
    // Go's zero time.Time, which metav1.Time serializes for a set-but-zero field.
    let zero = Timestamp::from_second(-62_135_596_800).ok()?;
    (parsed != zero).then_some(parsed)
}

/// Time elapsed since `value`, as upstream's `translateTimestampSince`: `<unknown>` when unset.
pub(super) fn since(value: &str, now: Timestamp) -> String {
    match time(value) {
        Some(then) => human(now.duration_since(then)),
        None => "<unknown>".to_owned(),
    }
}

/// Upstream's `HumanDuration` on a signed duration: a little clock skew reads as `0s`, more
/// than that as `<invalid>`.
pub(super) fn human(d: SignedDuration) -> String {
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let d = days % 365;
        return if d == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{d}d")
        };
    }
    format!("{years}y")
}

/// A string map as `k1=v1,k2=v2` sorted by key, `<none>` when empty (upstream's
/// `labels.FormatLabels`).
pub(super) fn format_labels(map: Option<&Value>) -> String {
    let pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        "<none>".to_owned()
    } else {
        pairs.join(",")
    }
}

/// A `metav1.LabelSelector` in selector syntax (`app=web,tier in (a,b)`), requirements sorted
/// by key; `""` for an absent or empty selector; `Err` for one upstream cannot convert.
pub(super) fn selector_string(selector: Option<&Value>) -> Result<String, ()> {
    let Some(selector) = selector else {
        return Ok(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = at(selector, &["matchLabels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            let value = value.as_str().ok_or(())?;
            requirements.push((key.clone(), format!("{key}={value}")));
        }
    }
    for expression in list(selector, &["matchExpressions"]) {
        let key = text(expression, &["key"]);
        let values: BTreeSet<&str> = list(expression, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let joined = values.iter().copied().collect::<Vec<_>>().join(",");
        let rendered = match text(expression, &["operator"]) {
            "In" if !values.is_empty() => format!("{key} in ({joined})"),
            "NotIn" if !values.is_empty() => format!("{key} notin ({joined})"),
            "Exists" if values.is_empty() => key.to_owned(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return Err(()),
        };
        requirements.push((key.to_owned(), rendered));
    }
    // Upstream sorts requirements by key only, keeping insertion order among equal keys.
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(requirements
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>()
        .join(","))
}

/// Upstream's `metav1.FormatLabelSelector`: `<none>` when it selects nothing in particular,
/// `<error>` when it is invalid.
pub(super) fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        Ok(s) if s.is_empty() => "<none>".to_owned(),
        Ok(s) => s,
        Err(()) => "<error>".to_owned(),
    }
}

/// A label selector as Go's generated `String()` method renders it, which is what upstream
/// shows for an admission policy binding's `paramRef.selector`.
pub(super) fn selector_go_string(selector: &Value) -> String {
    let mut labels = String::from("map[string]string{");
    if let Some(map) = at(selector, &["matchLabels"]).and_then(Value::as_object) {
        for (k, v) in map {
            labels.push_str(&format!("{k}: {},", v.as_str().unwrap_or("")));
        }
    }
    labels.push('}');
    let mut expressions = String::from("[]LabelSelectorRequirement{");
    for e in list(selector, &["matchExpressions"]) {
        let values: Vec<&str> = list(e, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        expressions.push_str(&format!(
            "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
            text(e, &["key"]),
            text(e, &["operator"]),
            values.join(" ")
        ));
    }
    expressions.push('}');
    format!("&LabelSelector{{MatchLabels:{labels},MatchExpressions:{expressions},}}")
}

/// The CONTAINERS and IMAGES cells: names and images joined by commas.
pub(super) fn containers(containers: &[Value]) -> (Value, Value) {
    let names: Vec<&str> = containers.iter().map(|c| text(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, &["image"])).collect();
    (Value::from(names.join(",")), Value::from(images.join(",")))
}

/// A resource quantity in canonical form; an absent one is Go's zero quantity, `0`.
pub(super) fn quantity(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => super::quantity::canonical(s),
        Some(Value::Number(n)) => super::quantity::canonical(&n.to_string()),
        _ => "0".to_owned(),
    }
}

/// A quantity behind a Go pointer: `<nil>` when absent, as Go prints a nil `*Quantity`.
pub(super) fn quantity_ptr(value: Option<&Value>) -> String {
    if value.is_some() {
        quantity(value)
    } else {
        "<nil>".to_owned()
    }
}

/// An int-or-string as its text.
pub(super) fn int_or_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Upstream's "first three, then `+ N more...`" lists; `<unset>` when empty.
pub(super) fn list_with_more(items: &[String], total: usize, max: usize) -> String {
    let shown = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if total > max {
        format!("{shown} + {} more...", total - max)
    } else if shown.is_empty() {
        "<unset>".to_owned()
    } else {
        shown
    }
}

/// `True`, `False`, or `<unset>` for an absent boolean, as upstream's `printBoolPtr`.
pub(super) fn bool_ptr(value: Option<bool>) -> String {
    match value {
        Some(true) => "True".to_owned(),
        Some(false) => "False".to_owned(),
        None => "<unset>".to_owned(),
    }
}

/// The value, or `<none>` when it is empty.
pub(super) fn or_none(value: &str) -> String {
    if value.is_empty() {
        "<none>".to_owned()
    } else {
        value.to_owned()
    }
}

/// The status of the first condition of `type_` in `conditions`, if any.
pub(super) fn condition_status<'a>(conditions: &'a [Value], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| text(c, &["type"]) == type_)
        .map(|c| text(c, &["status"]))
}
