//! The simple JSONPath printer columns and selectable fields use: `.a.b`, `.a[0]`,
//! `.a[*].b`, `.a[?(@.type=="Ready")].status`, `.metadata.labels.app\.kubernetes\.io/name`
//! is not needed (upstream forbids it too); braces are optional.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    /// `[?(@.key=="value")]`
    Filter(Vec<String>, Value),
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_owned()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = if r.starts_with("?(") {
                r.find(")]").map(|i| i + 1)?
            } else {
                r.find(']')?
            };
            let inner = &r[..close];
            rest = &r[close + 1..];
            if inner == "*" {
                steps.push(Step::All);
            } else if let Ok(i) = inner.parse() {
                steps.push(Step::Index(i));
            } else if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
                let (left, right) = f.split_once("==")?;
                let key: Vec<String> = left
                    .trim()
                    .strip_prefix("@.")?
                    .split('.')
                    .map(str::to_owned)
                    .collect();
                let right = right.trim();
                let value = match right
                    .strip_prefix('"')
                    .and_then(|r| r.strip_suffix('"'))
                    .or_else(|| right.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
                {
                    Some(s) => Value::String(s.to_owned()),
                    None => serde_json::from_str(right).ok()?,
                };
                steps.push(Step::Filter(key, value));
            } else {
                let name = inner.trim_matches(['\'', '"']);
                steps.push(Step::Field(name.to_owned()));
            }
        } else {
            return None;
        }
    }
    Some(steps)
}

fn walk<'a>(value: &'a Value, steps: &[Step], out: &mut Vec<&'a Value>) {
    let Some((step, rest)) = steps.split_first() else {
        out.push(value);
        return;
    };
    match step {
        Step::Field(name) => {
            if let Some(v) = value.get(name) {
                walk(v, rest, out);
            }
        }
        Step::Index(i) => {
            if let Some(v) = value.get(*i) {
                walk(v, rest, out);
            }
        }
        Step::All => match value {
            Value::Array(items) => items.iter().for_each(|v| walk(v, rest, out)),
            Value::Object(map) => map.values().for_each(|v| walk(v, rest, out)),
            _ => {}
        },
        Step::Filter(key, want) => {
            for item in value.as_array().into_iter().flatten() {
                let mut at = Some(item);
                for k in key {
                    at = at.and_then(|v| v.get(k));
                }
                if at == Some(want) {
                    walk(item, rest, out);
                }
            }
        }
    }
}

/// Every value the path finds.
pub fn find<'a>(object: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    if let Some(steps) = parse(path) {
        walk(object, &steps, &mut out);
    }
    out
}

/// The first value the path finds.
pub fn first<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    find(object, path).into_iter().next()
}

/// Whether `path` is a simple JSONPath this module understands.
pub fn is_valid(path: &str) -> bool {
    path.trim().starts_with(['.', '{', '$']) && parse(path).is_some()
}

/// A value as text: strings bare, everything else as JSON.
pub fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_find_fields_items_and_filtered_items() {
        let o = json!({"spec": {"a": {"b": 1}, "list": [{"n": "x"}, {"n": "y"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"},
                                      {"type": "Synced", "status": "False"}]}});
        assert_eq!(first(&o, ".spec.a.b"), Some(&json!(1)));
        assert_eq!(first(&o, "{.spec.list[1].n}"), Some(&json!("y")));
        assert_eq!(find(&o, ".spec.list[*].n").len(), 2);
        assert_eq!(
            first(&o, ".status.conditions[?(@.type==\"Synced\")].status"),
            Some(&json!("False"))
        );
        assert_eq!(first(&o, ".spec.missing"), None);
        assert!(is_valid(".spec.a") && !is_valid("spec["));
    }
}
