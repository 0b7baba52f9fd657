//! Events, of both the core group and `events.k8s.io`, which upstream stores as one type and
//! prints the same way.

use jiff::Timestamp;
use serde_json::Value;

use super::desc::{
    EV_COUNT, EV_FIELD_PATH, EV_FIRST, EV_LAST, EV_MESSAGE, EV_OBJECT, EV_REASON, EV_SOURCE,
    EV_TYPE, OBJ_NAME,
};
use super::format::{has, int, name, opt_int, since, text, time};
use super::{Column, col, wide};

/// `kubectl get events` (both `v1` and `events.k8s.io/v1` events print this way).
pub(super) const EVENT: &[Column] = &[
    col("Last Seen", "string", EV_LAST),
    col("Type", "string", EV_TYPE),
    col("Reason", "string", EV_REASON),
    col("Object", "string", EV_OBJECT),
    wide("Subobject", "string", EV_FIELD_PATH),
    wide("Source", "string", EV_SOURCE),
    col("Message", "string", EV_MESSAGE),
    wide("First Seen", "string", EV_FIRST),
    wide("Count", "string", EV_COUNT),
    Column {
        name: "Name",
        type_: "string",
        format: "name",
        description: OBJ_NAME,
        priority: 1,
    },
];

/// Where an event keeps each field: `v1` and `events.k8s.io/v1` name them differently.
struct EventFields {
    involved: &'static str,
    message: &'static str,
    source: &'static str,
    first: &'static str,
    last: &'static str,
    count: &'static str,
}

const CORE_EVENT: EventFields = EventFields {
    involved: "involvedObject",
    message: "message",
    source: "source",
    first: "firstTimestamp",
    last: "lastTimestamp",
    count: "count",
};

const EVENTS_V1_EVENT: EventFields = EventFields {
    involved: "regarding",
    message: "note",
    source: "deprecatedSource",
    first: "deprecatedFirstTimestamp",
    last: "deprecatedLastTimestamp",
    count: "deprecatedCount",
};

/// One `v1` event's row.
pub(super) fn event(object: &Value, now: Timestamp) -> Vec<Value> {
    event_row(object, now, &CORE_EVENT)
}

/// One `events.k8s.io/v1` event's row, printed as upstream prints the same event read as `v1`.
pub(super) fn events_v1_event(object: &Value, now: Timestamp) -> Vec<Value> {
    event_row(object, now, &EVENTS_V1_EVENT)
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

fn event_row(event: &Value, now: Timestamp, fields: &EventFields) -> Vec<Value> {
    let first_field = text(event, &[fields.first]);
    let first = if time(first_field).is_some() {
        since(first_field, now)
    } else {
        since(text(event, &["eventTime"]), now)
    };
    let last_field = text(event, &[fields.last]);
    let mut last = if time(last_field).is_some() {
        since(last_field, now)
    } else {
        first.clone()
    };
    let mut count = opt_int(event, &[fields.count]).unwrap_or(0);
    if has(event, &["series"]) {
        last = since(text(event, &["series", "lastObservedTime"]), now);
        count = int(event, &["series", "count"]);
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }
    let kind = text(event, &[fields.involved, "kind"]).to_lowercase();
    let involved_name = text(event, &[fields.involved, "name"]);
    let target = if involved_name.is_empty() {
        kind
    } else {
        format!("{kind}/{involved_name}")
    };
    let component = first_non_empty(
        text(event, &[fields.source, "component"]),
        text(event, &["reportingController"]),
    );
    let instance = first_non_empty(
        text(event, &[fields.source, "host"]),
        text(event, &["reportingInstance"]),
    );
    let source = if instance.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        Value::from(last),
        Value::from(text(event, &["type"])),
        Value::from(text(event, &["reason"])),
        Value::from(target),
        Value::from(text(event, &[fields.involved, "fieldPath"])),
        Value::from(source),
        Value::from(text(event, &[fields.message]).trim()),
        Value::from(first),
        Value::from(count),
        name(event),
    ]
}
