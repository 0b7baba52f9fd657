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

mod error;
mod fieldset;
mod last_applied;
mod managed;
mod memo;
mod schema;
mod typed;
mod zero;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

pub use error::{ApplyError, Conflict};

use error::conflict_error;
use fieldset::{FieldSet, PathElement, path_string, values_equal};
use last_applied::{has_last_applied, set_last_applied, upgrade_from_client_side_apply};
use managed::{ManagerId, Managers, Operation};
use schema::Ty;
use zero::{with_zero_values, zero_value};

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
    /// The subresource written: "" for the object itself, `status`, or `scale` (whose writes
    /// are tracked on the parent object, where upstream records them: an `Update` entry with
    /// `subresource: scale` owning `.spec.replicas`).
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

    /// The same write made to a subresource (`status`, `scale`).
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

/// Whether `value` nests no deeper than [`MAX_DEPTH`].
fn within_depth(value: &Value) -> bool {
    crate::patch::within_depth(value, MAX_DEPTH)
}

/// The paths no manager ever owns: type metadata and the object metadata the server sets.
fn stripped_fields() -> &'static FieldSet {
    static STRIPPED: std::sync::OnceLock<FieldSet> = std::sync::OnceLock::new();
    STRIPPED.get_or_init(build_stripped_fields)
}

fn build_stripped_fields() -> FieldSet {
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
fn with_managed_fields(object: Value, managers: &Managers) -> Value {
    with_encoded_managed_fields(object, managed::encode(managers))
}

/// `object` with `metadata.managedFields` set to `encoded` (or left out).
fn with_encoded_managed_fields(mut object: Value, encoded: Option<Value>) -> Value {
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

/// [`track_update`] for a create (no old object), without copying the object: the fields
/// the new object sets go to the writer. A create carrying its own `managedFields` takes
/// the general path, which keeps them.
pub fn track_create(write: &Write<'_>, mut new: Value) -> Result<Value, ApplyError> {
    if !within_depth(&new) {
        return Err(ApplyError::Internal(format!(
            "the object is nested more than {MAX_DEPTH} levels deep"
        )));
    }
    let metadata = new.get_mut("metadata").and_then(Value::as_object_mut);
    if let Some(metadata) = metadata
        && let Some(given) = metadata.remove("managedFields")
    {
        let kept = write.subresource.is_empty()
            && !managed::is_reset(Some(&given))
            && managed::decode(Some(&given)).is_ok_and(|m| !m.is_empty());
        if kept {
            metadata.insert("managedFields".to_owned(), given);
            return track_update(write, None, &new);
        }
    }
    let key = memo::key(write, &new);
    if let Some(known) = key.as_deref().and_then(memo::get) {
        let encoded = known
            .as_ref()
            .as_ref()
            .map(|m| memo::with_time(m, write.now));
        return Ok(with_encoded_managed_fields(new, encoded));
    }
    let zero = zero_value(write.group, write.kind);
    let ty = schema::for_kind(write.group, write.kind);
    let mut comparison = typed::Comparison::default();
    typed::compare_created(Some(&zero), &new, ty, &mut Vec::new(), &mut comparison)
        .map_err(|e| ApplyError::Internal(format!("failed to compare objects: {e}")))?;
    let mut taken = comparison.added;
    taken.absorb(comparison.modified);
    taken.remove_all(&write.reset_fields(), true);
    taken.remove_all(stripped_fields(), false);
    let mut managers = Managers::new();
    if !taken.is_empty() {
        managers.insert(
            write.manager_id(Operation::Update),
            managed::Managed {
                set: taken,
                api_version: write.api_version(),
                time: Some(write.now.to_owned()),
            },
        );
    }
    let encoded = managed::encode(&managers);
    if let Some(key) = key {
        memo::put(key, encoded.clone());
    }
    Ok(with_encoded_managed_fields(new, encoded))
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
        entry.set = entry.set.difference(stripped_fields());
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
        .difference(stripped_fields());
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
