//! Tests: for each kind a representative object and the cells kubectl would print for it.

mod apps;
mod core;
mod extra;
mod misc;
mod pod;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::{cells, columns, human_duration};
use crate::registry;

/// The fixed "now" of every test: 2024-05-01T12:00:00Z.
fn now() -> Timestamp {
    Timestamp::constant(1_714_564_800, 0)
}

/// The RFC 3339 time `seconds` before [`now`].
fn ago(seconds: i64) -> String {
    (now() - SignedDuration::from_secs(seconds)).to_string()
}

/// Metadata with a name, created `seconds` ago.
fn meta(name: &str, seconds: i64) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": ago(seconds)})
}

/// The row for `object`, checked to have one cell per column.
fn row(group: &str, kind: &str, object: &Value) -> Value {
    let cells = cells(group, kind, object, now());
    assert_eq!(cells.len(), columns(group, kind).len(), "{group}/{kind}");
    Value::Array(cells)
}

/// The column headers, as kubectl prints them (upper-cased), default ones then wide ones.
fn headers(group: &str, kind: &str) -> (Vec<String>, Vec<String>) {
    let all = columns(group, kind);
    let pick = |priority: i32| {
        all.iter()
            .filter(|c| c.priority == priority)
            .map(|c| c.name.to_uppercase())
            .collect()
    };
    (pick(0), pick(1))
}

#[test]
fn human_duration_keeps_about_two_significant_figures() {
    let cases: &[(u64, &str)] = &[
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (200, "3m20s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60 + 9, "3h5m"),
        (8 * 3600 + 59 * 60, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (3 * 86400 + 5 * 3600, "3d5h"),
        (8 * 86400 + 5 * 3600, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (740 * 86400, "2y10d"),
        (8 * 365 * 86400 + 86400, "8y"),
    ];
    for (seconds, expected) in cases {
        assert_eq!(
            human_duration(Duration::from_secs(*seconds)),
            *expected,
            "{seconds}s"
        );
    }
}

#[test]
fn an_age_slightly_in_the_future_is_zero_and_further_is_invalid() {
    let soon = json!({"metadata": {"name": "a", "creationTimestamp": ago(-1)}});
    let later = json!({"metadata": {"name": "b", "creationTimestamp": ago(-5)}});
    assert_eq!(row("", "ConfigMap", &soon), json!(["a", 0, "0s"]));
    assert_eq!(row("", "ConfigMap", &later), json!(["b", 0, "<invalid>"]));
}

#[test]
fn an_object_without_a_creation_time_has_an_unknown_age() {
    let object = json!({"metadata": {"name": "a"}});
    assert_eq!(row("", "ConfigMap", &object), json!(["a", 0, "<unknown>"]));
}

#[test]
fn kinds_without_a_printer_get_name_and_created_at() {
    let role = json!({"metadata": {"name": "reader", "creationTimestamp": "2024-04-01T08:30:00Z"}});
    assert_eq!(
        headers("rbac.authorization.k8s.io", "Role"),
        (vec!["NAME".to_owned(), "CREATED AT".to_owned()], vec![])
    );
    assert_eq!(columns("", "LimitRange")[1].type_, "date");
    assert_eq!(
        row("rbac.authorization.k8s.io", "Role", &role),
        json!(["reader", "2024-04-01T08:30:00Z"])
    );
    assert_eq!(
        row("", "LimitRange", &json!({"metadata": {"name": "limits"}})),
        json!(["limits", "0001-01-01T00:00:00Z"])
    );
}

#[test]
fn every_served_kind_prints_a_full_row_for_empty_and_malformed_objects() {
    let inputs = [
        json!({}),
        json!(null),
        json!([1, 2]),
        json!("pod"),
        json!({"metadata": 5, "spec": [], "status": "x"}),
        json!({"metadata": {"name": 7, "creationTimestamp": "yesterday"},
               "spec": {"containers": "x", "ports": [1], "rules": [null], "metrics": [{}]},
               "status": {"conditions": [1], "containerStatuses": [{"state": 3}]}}),
    ];
    let served = registry::all().types().iter().map(|t| (t.group, t.kind));
    let printed = super::PRINTERS.iter().map(|(g, k, _, _)| (*g, *k));
    for (group, kind) in served.chain(printed) {
        // Upstream's IP address row carries one cell more than its columns.
        let extra = usize::from(kind == "IPAddress");
        for input in &inputs {
            let got = cells(group, kind, input, now());
            assert_eq!(
                got.len(),
                columns(group, kind).len() + extra,
                "{group}/{kind}"
            );
        }
    }
}

#[test]
fn only_the_name_column_has_the_name_format_besides_the_volume_attachment_attacher() {
    for resource in registry::all().types() {
        let columns = columns(resource.group, resource.kind);
        let named: Vec<&str> = columns
            .iter()
            .filter(|c| c.format == "name")
            .map(|c| c.name)
            .collect();
        let expected: &[&str] = match resource.kind {
            "VolumeAttachment" => &["Name", "Attacher"],
            _ => &["Name"],
        };
        assert_eq!(named, expected, "{}", resource.kind);
        assert!(columns.iter().all(|c| !c.description.is_empty()));
    }
}
