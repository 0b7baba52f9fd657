//! Upgrading from client-side apply: `kubectl`'s server-side applies may take over the
//! fields the `kubectl.kubernetes.io/last-applied-configuration` annotation describes, and
//! keep that annotation up to date, as upstream's `lastAppliedManager` and
//! `lastAppliedUpdater` do.

use serde_json::Value;

use super::fieldset::{FieldSet, path_string};
use super::managed::Managers;
use super::schema::Ty;
use super::{
    ApplyError, Conflict, LAST_APPLIED, Write, apply_with, conflict_error, typed, within_depth,
};

/// Upstream's `lastAppliedManager`: `kubectl` taking over from client-side apply may
/// override the fields its last-applied annotation still describes truly; any other
/// conflict stands.
pub(super) fn upgrade_from_client_side_apply(
    write: &Write<'_>,
    live: &Value,
    applied: &Value,
    managers: &Managers,
    ty: Ty,
    conflicts: Vec<Conflict>,
) -> Result<(Value, Managers), ApplyError> {
    let allowed = allowed_by_last_applied(write, live, ty).unwrap_or_default();
    let allowed: Vec<String> = allowed.paths().iter().map(|p| path_string(p)).collect();
    let remaining: Vec<Conflict> = conflicts
        .iter()
        .filter(|c| !allowed.contains(&c.field))
        .cloned()
        .collect();
    if !remaining.is_empty() {
        return Err(conflict_error(remaining));
    }
    apply_with(write, live, applied, managers, ty, true)
}

/// The fields of the last-applied annotation whose values the live object still has.
pub(super) fn allowed_by_last_applied(write: &Write<'_>, live: &Value, ty: Ty) -> Option<FieldSet> {
    let text = live
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED)?
        .as_str()?;
    let last: Value = serde_json::from_str(text).ok()?;
    if last.get("apiVersion").and_then(Value::as_str) != Some(write.api_version().as_str())
        || !within_depth(&last)
    {
        return None;
    }
    let set = typed::to_field_set(&last, ty).ok()?;
    let comparison = typed::compare(&last, live, ty).ok()?;
    Some(
        set.difference(&comparison.modified)
            .difference(&comparison.added)
            .difference(&comparison.removed),
    )
}

pub(super) fn has_last_applied(object: &Value) -> bool {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

/// Keeps the client-side annotation in step with server-side applies by `kubectl`, as
/// upstream's `lastAppliedUpdater`: the configuration without the annotation itself, as
/// Go's JSON encoder writes it (with a final newline).
pub(super) fn set_last_applied(object: &mut Value, applied: &Value) {
    let mut config = applied.clone();
    if let Some(annotations) = config
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
    }
    let text = format!("{config}\n");
    if let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.insert(LAST_APPLIED.to_owned(), Value::String(text));
    }
}
