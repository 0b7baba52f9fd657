//! Server-side apply and `metadata.managedFields`, as upstream's field manager
//! (`k8s.io/apimachinery/pkg/util/managedfields` over `sigs.k8s.io/structured-merge-diff`).
//!
//! - [`apply`] answers `PATCH` with `application/apply-patch+yaml`: it merges the user's
//!   configuration into the live object by each field's server-side-apply type (associative
//!   lists by key, sets, atomic values), removes what the manager applied before and now
//!   leaves out (when no one else owns it), and refuses to change a field another manager
//!   owns unless forced.
//! - [`track_update`] records who changed what on every other write (create, update, the
//!   other patch types): the fields a write changed move to its manager.
//!
//! Both take JSON objects and the current time, and give the object to store with its
//! `metadata.managedFields` rewritten. Neither reads a clock or the store.
//!
//! Upstream behaviours matched: the manager identifier (name, operation, subresource, and the
//! API version for updates only); entry order (operation, time in seconds, manager, API
//! version, subresource); type and object metadata never owned (`apiVersion`, `kind`,
//! `metadata.name`, `uid`…); a write changing nothing keeps the entry's time; at most ten
//! update entries, older ones folded into `ancient-changes`; an empty `managedFields` in a
//! write resets tracking and an unreadable one is ignored; status owned separately from the
//! rest ("reset fields") for kinds with a status subresource; and `kubectl` upgrading from
//! client-side apply without conflicts on the fields its last-applied annotation holds.

mod fieldset;
mod managed;
mod schema;
mod typed;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use fieldset::{FieldSet, PathElement, path_string, values_equal};
use managed::{ManagerId, Managers, Operation};
use schema::Ty;

/// How deeply objects may nest; deeper ones are refused before any recursive walk.
const MAX_DEPTH: usize = 256;

/// The annotation `kubectl apply` (client side) keeps its last configuration in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manager whose server-side applies upgrade client-side apply (upstream special-cases
/// this name; other managers opt out of the upgrade).
const KUBECTL: &str = "kubectl";

/// Who writes what: the object's kind and version, the subresource written, the field
/// manager, and the time of the write.
#[derive(Clone, Copy, Debug)]
pub struct Write<'a> {
    /// The API group ("" for core).
    pub group: &'a str,
    /// The version the request was made in, e.g. `v1`.
    pub version: &'a str,
    /// The kind, e.g. `Deployment`.
    pub kind: &'a str,
    /// The subresource written: "" for the object itself, or `status`.
    pub subresource: &'a str,
    /// The field manager: `?fieldManager=`, or the name the server derives from the user
    /// agent (`kubectl-client-side-apply`, `kubectl-edit`…); empty means `unknown`.
    pub manager: &'a str,
    /// The time of the write, RFC 3339 in UTC with seconds (`2024-01-02T03:04:05Z`).
    pub now: &'a str,
}

impl<'a> Write<'a> {
    /// A write to the object itself (not a subresource).
    pub fn new(
        group: &'a str,
        version: &'a str,
        kind: &'a str,
        manager: &'a str,
        now: &'a str,
    ) -> Self {
        Write {
            group,
            version,
            kind,
            subresource: "",
            manager,
            now,
        }
    }

    /// The same write made to a subresource (`status`).
    pub fn to_subresource(self, subresource: &'a str) -> Self {
        Write {
            subresource,
            ..self
        }
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn manager_id(&self, operation: Operation) -> ManagerId {
        ManagerId::new(
            self.manager,
            operation,
            &self.api_version(),
            self.subresource,
        )
    }

    /// The fields this write may not change, which no manager gets from it: the status on
    /// the main resource of a kind with a status subresource, and the spec (with what else
    /// the kind's status strategy resets) on the status subresource.
    fn reset_fields(&self) -> FieldSet {
        let mut set = FieldSet::new();
        let field = |name: &str| PathElement::Field(name.to_owned());
        match self.subresource {
            "" => {
                let has_status = crate::registry::all()
                    .by_kind(self.group, self.kind)
                    .is_some_and(|t| t.has_subresource("status"));
                if has_status {
                    set.insert(&[field("status")]);
                }
            }
            "status" => {
                set.insert(&[field("spec")]);
                match (self.group, self.kind) {
                    ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
                        set.insert(&[field("metadata"), field("labels")]);
                    }
                    ("", "Pod") => {
                        set.insert(&[field("metadata"), field("deletionTimestamp")]);
                        set.insert(&[field("metadata"), field("ownerReferences")]);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        set
    }
}

/// One field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The owner as upstream names it: `"kubectl-client-side-apply" using apps/v1`.
    pub manager: String,
    /// The field: `.spec.replicas`, `.spec.template.spec.containers[name="web"].image`.
    pub field: String,
}

/// Why an apply (or, rarely, update tracking) failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// 409 Conflict: fields owned by other managers; upstream's message, e.g.
    /// `Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using
    /// apps/v1: .spec.replicas`.
    #[error("{message}")]
    Conflicts {
        /// The whole message.
        message: String,
        /// Each conflicting field, sorted by manager then field.
        conflicts: Vec<Conflict>,
    },
    /// 400 BadRequest: an apply configuration that cannot be applied (wrong version or
    /// kind, `managedFields` set, duplicate list keys…).
    #[error("{0}")]
    BadRequest(String),
    /// 500: the stored object cannot be handled.
    #[error("{0}")]
    Internal(String),
}

impl ApplyError {
    /// The `details.causes` of the status, one `FieldManagerConflict` per conflict.
    pub fn causes(&self) -> Vec<Value> {
        match self {
            ApplyError::Conflicts { conflicts, .. } => conflicts
                .iter()
                .map(|c| {
                    json!({
                        "reason": "FieldManagerConflict",
                        "message": format!("conflict with {}", c.manager),
                        "field": c.field,
                    })
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The whole `metav1.Status` upstream answers with. A conflict needs this rather than
    /// [`ApiError`], which has no way to carry its message verbatim nor its causes.
    pub fn to_status(&self) -> Value {
        let (code, reason) = match self {
            ApplyError::Conflicts { .. } => (409, "Conflict"),
            ApplyError::BadRequest(_) => (400, "BadRequest"),
            ApplyError::Internal(_) => (500, "InternalError"),
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code,
        });
        let causes = self.causes();
        if !causes.is_empty() {
            status["details"] = json!({ "causes": causes });
        }
        status
    }

    /// The nearest [`ApiError`], for callers that only speak that (a conflict loses its
    /// causes and gains the "Operation cannot be fulfilled" prefix: prefer [`Self::to_status`]).
    pub fn to_api_error(&self, resource: &str, name: &str) -> ApiError {
        match self {
            ApplyError::Conflicts { message, .. } => ApiError::Conflict {
                group: String::new(),
                resource: resource.to_owned(),
                name: name.to_owned(),
                message: message.clone(),
            },
            ApplyError::BadRequest(message) => ApiError::BadRequest(message.clone()),
            ApplyError::Internal(message) => ApiError::Internal(message.clone()),
        }
    }
}

/// Upstream's conflict message: one conflict inline, several grouped by manager.
fn conflict_error(mut conflicts: Vec<Conflict>) -> ApplyError {
    conflicts.sort_by(|a, b| {
        a.manager
            .cmp(&b.manager)
            .then_with(|| a.field.cmp(&b.field))
    });
    let message = match conflicts.as_slice() {
        [one] => format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.manager, one.field
        ),
        many => {
            let mut lines = Vec::new();
            let mut current: Option<&str> = None;
            for c in many {
                if current != Some(c.manager.as_str()) {
                    lines.push(format!("conflicts with {}:", c.manager));
                    current = Some(&c.manager);
                }
                lines.push(format!("- {}", c.field));
            }
            format!(
                "Apply failed with {} conflicts: {}",
                many.len(),
                lines.join("\n")
            )
        }
    };
    ApplyError::Conflicts { message, conflicts }
}

/// Whether `value` nests no deeper than [`MAX_DEPTH`], found without recursion.
fn within_depth(value: &Value) -> bool {
    let mut stack = vec![(value, 1usize)];
    while let Some((value, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return false;
        }
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    true
}

/// The paths no manager ever owns: type metadata and the object metadata the server sets.
fn stripped_fields() -> FieldSet {
    let mut set = FieldSet::new();
    let field = |name: &str| PathElement::Field(name.to_owned());
    set.insert(&[field("apiVersion")]);
    set.insert(&[field("kind")]);
    set.insert(&[field("metadata")]);
    for name in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        set.insert(&[field("metadata"), field(name)]);
    }
    set
}

/// The object without `metadata.managedFields`, and that field's value.
fn split_managed_fields(object: &Value) -> (Value, Option<Value>) {
    let mut object = object.clone();
    let managed = object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("managedFields"));
    (object, managed)
}

/// `object` with `metadata.managedFields` set to the encoded managers (or left out).
fn with_managed_fields(mut object: Value, managers: &Managers) -> Value {
    let encoded = managed::encode(managers);
    if let Value::Object(map) = &mut object {
        let metadata = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(metadata) = metadata {
            match encoded {
                Some(entries) => {
                    metadata.insert("managedFields".to_owned(), entries);
                }
                None => {
                    metadata.remove("managedFields");
                }
            }
        }
    }
    object
}

/// Whether a path of field names names a struct field (every field of a built-in kind is one
/// except keys of maps, which only ever hold scalars in the paths sets keep below them).
fn named_field(ty: Ty) -> impl Fn(&[PathElement]) -> bool {
    move |path: &[PathElement]| {
        let mut current = ty;
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        for element in parents {
            current = match element {
                PathElement::Field(name) => current.field(name),
                _ => current.item(),
            };
        }
        matches!(last, PathElement::Field(_)) && current.declares_fields()
    }
}

/// Upstream's `Updater.update`: compares `old` with `new` and takes what changed away from
/// every manager but `writer` (refusing, unless `force`, to take fields that were set or
/// changed). Returns the comparison.
fn take_changed_fields(
    write: &Write<'_>,
    old: &Value,
    new: &Value,
    managers: &mut Managers,
    writer: &ManagerId,
    force: bool,
) -> Result<typed::Comparison, ApplyError> {
    let zero = zero_value(write.group, write.kind);
    let old = with_zero_values(old, &zero);
    let new = with_zero_values(new, &zero);
    let ty = schema::for_kind(write.group, write.kind);
    let comparison = typed::compare(&old, &new, ty)
        .map_err(|e| ApplyError::Internal(format!("failed to compare objects: {e}")))?
        .exclude(&write.reset_fields());
    let changed = comparison.modified.union(&comparison.added);
    let mut conflicts = Vec::new();
    for (id, managed) in managers.iter_mut() {
        if id == writer {
            continue;
        }
        let taken = managed.set.intersection(&changed);
        if !taken.is_empty() {
            if !force {
                conflicts.extend(taken.paths().iter().map(|p| Conflict {
                    manager: id.describe(),
                    field: path_string(p),
                }));
                continue;
            }
            managed.set = managed.set.difference(&taken);
        }
        managed.set = managed.set.difference(&comparison.removed);
    }
    if !conflicts.is_empty() {
        return Err(conflict_error(conflicts));
    }
    managers.retain(|_, m| !m.set.is_empty());
    Ok(comparison)
}

/// Upstream's `Updater.prune`: removes from `merged` the fields `last` (what the manager
/// applied before) holds and no manager owns now, keeping fields nobody ever owned
/// (defaults the server filled in).
fn prune(
    merged: &Value,
    managers: &Managers,
    last: &FieldSet,
    ty: Ty,
) -> Result<Value, ApplyError> {
    if last.is_empty() {
        return Ok(merged.clone());
    }
    let named = named_field(ty);
    let fields = |v: &Option<Value>| -> Result<FieldSet, ApplyError> {
        match v {
            Some(v) => typed::to_field_set(v, ty)
                .map(|s| s.with_named_members(&named))
                .map_err(|e| ApplyError::Internal(format!("failed to prune fields: {e}"))),
            None => Ok(FieldSet::new()),
        }
    };
    let last = last.with_named_members(&named);
    let owned = managers
        .values()
        .fold(FieldSet::new(), |all, m| all.union(&m.set))
        .with_named_members(&named);
    let merged_set = fields(&Some(merged.clone()))?;
    let pruned = typed::remove_items(merged, &last, ty);
    let kept = fields(&pruned)?.union(&owned);
    let with_owned = typed::remove_items(merged, &merged_set.difference(&kept), ty);
    let dangling = merged_set
        .difference(&fields(&with_owned)?)
        .intersection(&last);
    Ok(typed::remove_items(merged, &dangling, ty).unwrap_or_else(|| json!({})))
}

/// Server-side apply of `applied` (the user's configuration, a JSON object) onto `live` (the
/// stored object, `None` when the apply creates it), as upstream's field manager.
///
/// The result is the object to store: `live` with the configuration merged in, fields the
/// manager applied before and now leaves out removed when no one else owns them, and
/// `metadata.managedFields` rewritten (the manager's `Apply` entry holds exactly the fields
/// the configuration sets; its time is `now` when the object changed). A field another
/// manager owns that the configuration sets to a different value is a conflict, unless
/// `force`, which moves it to this manager.
pub fn apply(
    write: &Write<'_>,
    live: Option<&Value>,
    applied: &Value,
    force: bool,
) -> Result<Value, ApplyError> {
    if !within_depth(applied) {
        return Err(ApplyError::BadRequest(format!(
            "the apply configuration is nested more than {MAX_DEPTH} levels deep"
        )));
    }
    if live.is_some_and(|l| !within_depth(l)) {
        return Err(ApplyError::Internal(format!(
            "the object is nested more than {MAX_DEPTH} levels deep"
        )));
    }
    let Value::Object(config) = applied else {
        return Err(ApplyError::BadRequest(
            "the apply configuration must be a JSON object".to_owned(),
        ));
    };
    // Upstream's version check: the configuration's group, version and kind must be the
    // request's, and the message shows them as Go prints a GroupVersionKind.
    let patch_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let patch_kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    if patch_version != write.api_version() || patch_kind != write.kind {
        let (group, version) = patch_version.split_once('/').unwrap_or(("", patch_version));
        return Err(ApplyError::BadRequest(format!(
            "invalid object type: {group}/{version}, Kind={patch_kind}"
        )));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".to_owned(),
        ));
    }
    let (live, live_managed) = match live {
        Some(live) => split_managed_fields(live),
        None => (json!({}), None),
    };
    let managers = managed::decode(live_managed.as_ref())
        .map_err(|e| ApplyError::Internal(format!("failed to decode managed fields: {e}")))?;
    let ty = schema::for_kind(write.group, write.kind);
    let outcome = match apply_with(write, &live, applied, &managers, ty, force) {
        Err(ApplyError::Conflicts { conflicts, .. }) if write.manager == KUBECTL && !force => {
            upgrade_from_client_side_apply(write, &live, applied, &managers, ty, conflicts)?
        }
        other => other?,
    };
    let (mut object, managers) = outcome;
    if write.manager == KUBECTL && has_last_applied(&live) {
        set_last_applied(&mut object, applied);
    }
    Ok(with_managed_fields(object, &managers))
}

/// Upstream's `lastAppliedManager`: `kubectl` taking over from client-side apply may
/// override the fields its last-applied annotation still describes truly; any other
/// conflict stands.
fn upgrade_from_client_side_apply(
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
fn allowed_by_last_applied(write: &Write<'_>, live: &Value, ty: Ty) -> Option<FieldSet> {
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

fn has_last_applied(object: &Value) -> bool {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

/// Keeps the client-side annotation in step with server-side applies by `kubectl`, as
/// upstream's `lastAppliedUpdater`: the configuration without the annotation itself, as
/// Go's JSON encoder writes it (with a final newline).
fn set_last_applied(object: &mut Value, applied: &Value) {
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

/// The structured merge of one apply: merge, own, prune, take over, time-stamp.
fn apply_with(
    write: &Write<'_>,
    live: &Value,
    applied: &Value,
    managers: &Managers,
    ty: Ty,
    force: bool,
) -> Result<(Value, Managers), ApplyError> {
    let mut managers = managers.clone();
    let me = write.manager_id(Operation::Apply);
    let reset = write.reset_fields();
    let merged = typed::merge(Some(live), Some(applied), ty)
        .map_err(|e| ApplyError::BadRequest(format!("failed to merge config: {e}")))?
        .unwrap_or_else(|| json!({}));
    let last = managers.get(&me).map(|m| m.set.clone()).unwrap_or_default();
    let mine = typed::to_field_set(applied, ty)
        .map_err(|e| ApplyError::BadRequest(format!("failed to get field set: {e}")))?
        .recursive_difference(&reset);
    let previous_time = managers.get(&me).and_then(|m| m.time.clone());
    managers.insert(
        me.clone(),
        managed::Managed {
            set: mine,
            api_version: write.api_version(),
            time: previous_time,
        },
    );
    let new = prune(&merged, &managers, &last, ty)?;
    take_changed_fields(write, live, &new, &mut managers, &me, force)?;
    strip(&mut managers, &me);
    // As upstream, the entry's time moves only when the apply changed the object; a
    // manager whose first apply changes nothing gets an entry without a time.
    let changed = !values_equal(live, &new);
    if changed && let Some(entry) = managers.get_mut(&me) {
        entry.time = Some(write.now.to_owned());
    }
    let object = if changed { new } else { live.clone() };
    Ok((object, managers))
}

/// Takes the never-owned fields out of one manager's set, dropping it if nothing is left.
fn strip(managers: &mut Managers, id: &ManagerId) {
    if let Some(entry) = managers.get_mut(id) {
        entry.set = entry.set.difference(&stripped_fields());
        if entry.set.is_empty() {
            managers.remove(id);
        }
    }
}

/// Records an ordinary write (create, update, JSON/merge/strategic patch) in
/// `metadata.managedFields`, as upstream's field manager does for operation `Update`.
///
/// `old` is the stored object (`None` on create), `new` the object about to be stored. The
/// fields the write set or changed move to the writer's `Update` entry (at `now`); fields it
/// removed leave every manager. A client may send `managedFields` itself: a readable list is
/// taken as the starting point (on the main resource), an empty list (or one empty entry)
/// clears tracking, and an unreadable one is ignored in favour of the stored entries.
pub fn track_update(
    write: &Write<'_>,
    old: Option<&Value>,
    new: &Value,
) -> Result<Value, ApplyError> {
    if !within_depth(new) || old.is_some_and(|o| !within_depth(o)) {
        return Err(ApplyError::Internal(format!(
            "the object is nested more than {MAX_DEPTH} levels deep"
        )));
    }
    let (old, old_managed) = match old {
        Some(old) => split_managed_fields(old),
        None => (json!({}), None),
    };
    let (new, new_managed) = split_managed_fields(new);
    let stored = || managed::decode(old_managed.as_ref()).unwrap_or_default();
    let mut managers = if !write.subresource.is_empty() {
        stored()
    } else if managed::is_reset(new_managed.as_ref()) {
        Managers::new()
    } else {
        match managed::decode(new_managed.as_ref()) {
            Ok(managers) if !managers.is_empty() => managers,
            _ => stored(),
        }
    };
    let reset = write.reset_fields();
    // Upstream runs the write as a placeholder manager, then folds what it got into the
    // writer's entry, so that an entry's time moves only when the write changed something.
    let current = ManagerId {
        manager: "current-operation".to_owned(),
        ..write.manager_id(Operation::Update)
    };
    let comparison = take_changed_fields(write, &old, &new, &mut managers, &current, true)?;
    let mut taken = comparison
        .modified
        .union(&comparison.added)
        .recursive_difference(&reset)
        .difference(&stripped_fields());
    if !taken.is_empty() {
        let me = write.manager_id(Operation::Update);
        if let Some(previous) = managers.get(&me) {
            taken = taken.union(&previous.set);
        }
        managers.insert(
            me,
            managed::Managed {
                set: taken,
                api_version: write.api_version(),
                time: Some(write.now.to_owned()),
            },
        );
    }
    managed::cap_update_managers(&mut managers);
    Ok(with_managed_fields(new, &managers))
}

/// `value` with the fields of `zero` it lacks filled in (maps merged, nothing replaced).
fn with_zero_values(value: &Value, zero: &Value) -> Value {
    match (value, zero) {
        (Value::Object(map), Value::Object(zero)) => {
            let mut out = map.clone();
            for (key, z) in zero {
                let filled = match map.get(key) {
                    Some(v) => with_zero_values(v, z),
                    None => z.clone(),
                };
                out.insert(key.clone(), filled);
            }
            Value::Object(out)
        }
        _ => value.clone(),
    }
}

/// What upstream's Go structs always carry: non-pointer struct fields serialize as `{}` and
/// un-omitted lists as `null`. Objects are compared with these filled in (a create against
/// this alone, as upstream compares with the kind's empty struct), so that a write does not
/// own `spec`, `status`, a pod template or the containers list wholesale (no `.` entry)
/// whether or not the stored JSON spells them out.
fn zero_value(group: &str, kind: &str) -> Value {
    let template = json!({"metadata": {}, "spec": {"containers": null}});
    match (group, kind) {
        ("apps", "Deployment") => json!({
            "metadata": {},
            "spec": {"template": template, "strategy": {}},
            "status": {},
        }),
        ("apps", "ReplicaSet" | "DaemonSet" | "StatefulSet") | ("batch", "Job") => json!({
            "metadata": {},
            "spec": {"template": template},
            "status": {},
        }),
        ("batch", "CronJob") => json!({
            "metadata": {},
            "spec": {"jobTemplate": {"metadata": {}, "spec": {"template": template}}},
            "status": {},
        }),
        ("", "PodTemplate") => json!({"metadata": {}, "template": template}),
        ("", "ConfigMap" | "Secret" | "ServiceAccount" | "Endpoints" | "Event")
        | ("rbac.authorization.k8s.io", _)
        | ("events.k8s.io", _)
        | ("coordination.k8s.io", "Lease") => json!({"metadata": {}}),
        ("", "Pod") => json!({"metadata": {}, "spec": {"containers": null}, "status": {}}),
        // Custom resources are unstructured upstream: their empty object is `{}`, so a
        // create owns `spec` itself (`f:spec: {".": {}, …}`).
        _ if crate::registry::all().by_kind(group, kind).is_some() => {
            json!({"metadata": {}, "spec": {}, "status": {}})
        }
        _ => json!({}),
    }
}
