//! `metadata.managedFields`: decoding the entries into field sets keyed by manager, and
//! encoding them back in upstream's order.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::fieldset::FieldSet;

/// The operation an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// A server-side apply.
    Apply,
    /// Any other write: create, update, patch.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// What tells two entries apart, as upstream's manager identifier: the name, the
/// operation, the subresource, and for updates (never applies) the API version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ManagerId {
    /// The field manager's name.
    pub(super) manager: String,
    /// The operation.
    pub(super) operation: Operation,
    /// The API version, for updates only.
    pub(super) api_version: Option<String>,
    /// The subresource written ("" for the main resource).
    pub(super) subresource: String,
}

impl ManagerId {
    /// The identifier of `manager` writing with `operation` at `api_version`.
    pub(super) fn new(
        manager: &str,
        operation: Operation,
        api_version: &str,
        subresource: &str,
    ) -> ManagerId {
        ManagerId {
            manager: if manager.is_empty() {
                "unknown".to_owned()
            } else {
                manager.to_owned()
            },
            operation,
            api_version: (operation == Operation::Update).then(|| api_version.to_owned()),
            subresource: subresource.to_owned(),
        }
    }

    /// As upstream names a manager in conflict messages:
    /// `"kubectl-client-side-apply" using apps/v1`, `"kubectl"`, with the subresource.
    pub(super) fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if let Some(version) = &self.api_version {
            out.push_str(&format!(" using {version}"));
        }
        out
    }
}

/// One manager's fields.
#[derive(Clone, Debug)]
pub(super) struct Managed {
    /// The fields it owns.
    pub(super) set: FieldSet,
    /// The API version its paths are in.
    pub(super) api_version: String,
    /// When it last changed the object (RFC 3339), if known.
    pub(super) time: Option<String>,
}

/// All managers of an object.
pub(super) type Managers = BTreeMap<ManagerId, Managed>;

/// Why a `managedFields` list could not be decoded.
pub(super) type DecodeError = String;

/// Decodes `metadata.managedFields` (absent or null: no managers).
pub(super) fn decode(entries: Option<&Value>) -> Result<Managers, DecodeError> {
    let mut managers = Managers::new();
    let entries = match entries {
        None | Some(Value::Null) => return Ok(managers),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err("managedFields must be a list".to_owned()),
    };
    for (i, entry) in entries.iter().enumerate() {
        let Value::Object(entry) = entry else {
            return Err(format!("managed fields entry {i} is not an object"));
        };
        let text = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or("");
        let operation = match text("operation") {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".to_owned()),
        };
        let api_version = text("apiVersion");
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".to_owned());
        }
        match text("fieldsType") {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {i}"
                ));
            }
        }
        let set = match entry.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(fields) => {
                FieldSet::from_fields_v1(fields).map_err(|e| format!("error decoding set: {e}"))?
            }
        };
        let id = ManagerId {
            manager: text("manager").to_owned(),
            operation,
            api_version: (operation == Operation::Update).then(|| api_version.to_owned()),
            subresource: text("subresource").to_owned(),
        };
        let time = entry.get("time").and_then(Value::as_str).map(str::to_owned);
        managers.insert(
            id,
            Managed {
                set,
                api_version: api_version.to_owned(),
                time,
            },
        );
    }
    Ok(managers)
}

/// Whether a client's `managedFields` asks for a reset: an empty list, or a list of one
/// empty entry.
pub(super) fn is_reset(entries: Option<&Value>) -> bool {
    match entries {
        Some(Value::Array(entries)) => match entries.as_slice() {
            [] => true,
            [only] => only.as_object().is_some_and(Map::is_empty),
            _ => false,
        },
        _ => false,
    }
}

/// Seconds since the epoch of an RFC 3339 time, 0 when absent or unreadable (as upstream
/// sorts entries without a time).
fn unix_seconds(time: Option<&str>) -> i64 {
    time.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_second())
}

/// Encodes the managers as upstream does: sorted by operation, time (seconds), manager, API
/// version and subresource; `None` when there are none (the field is then left out).
pub(super) fn encode(managers: &Managers) -> Option<Value> {
    if managers.is_empty() {
        return None;
    }
    let mut entries: Vec<(&ManagerId, &Managed)> = managers.iter().collect();
    entries.sort_by(|(a, am), (b, bm)| {
        a.operation
            .as_str()
            .cmp(b.operation.as_str())
            .then_with(|| unix_seconds(am.time.as_deref()).cmp(&unix_seconds(bm.time.as_deref())))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| am.api_version.cmp(&bm.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let encoded = entries
        .into_iter()
        .map(|(id, managed)| {
            let mut entry = Map::new();
            entry.insert("manager".to_owned(), json!(id.manager));
            entry.insert("operation".to_owned(), json!(id.operation.as_str()));
            entry.insert("apiVersion".to_owned(), json!(managed.api_version));
            if let Some(time) = &managed.time {
                entry.insert("time".to_owned(), json!(time));
            }
            entry.insert("fieldsType".to_owned(), json!("FieldsV1"));
            entry.insert("fieldsV1".to_owned(), managed.set.to_fields_v1());
            if !id.subresource.is_empty() {
                entry.insert("subresource".to_owned(), json!(id.subresource));
            }
            Value::Object(entry)
        })
        .collect();
    Some(Value::Array(encoded))
}

/// The most update entries kept; older ones are merged into per-version
/// `ancient-changes` entries, as upstream's `DefaultMaxUpdateManagers`.
pub(super) const MAX_UPDATE_MANAGERS: usize = 10;

/// Merges the oldest update entries into `ancient-changes` buckets, one per API version,
/// until at most [`MAX_UPDATE_MANAGERS`] update entries are left.
pub(super) fn cap_update_managers(managers: &mut Managers) {
    let mut updaters: Vec<ManagerId> = managers
        .keys()
        .filter(|id| id.operation == Operation::Update)
        .cloned()
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    let seconds = |managers: &Managers, id: &ManagerId| {
        unix_seconds(managers.get(id).and_then(|m| m.time.as_deref()))
    };
    updaters.sort_by(|a, b| {
        seconds(managers, a)
            .cmp(&seconds(managers, b))
            .then_with(|| identifier(a).cmp(&identifier(b)))
    });
    let mut first_of_version: BTreeMap<String, ManagerId> = BTreeMap::new();
    let mut length = updaters.len();
    for id in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(managed) = managers.get(&id).cloned() else {
            continue;
        };
        let version = managed.api_version.clone();
        let bucket = ManagerId::new("ancient-changes", Operation::Update, &version, "");
        match first_of_version.get(&version) {
            Some(first) => {
                if !managers.contains_key(&bucket)
                    && let Some(moved) = managers.remove(first)
                {
                    managers.insert(bucket.clone(), moved);
                }
                let merged = match managers.get(&bucket) {
                    Some(existing) => existing.set.union(&managed.set),
                    None => managed.set.clone(),
                };
                managers.remove(&id);
                managers.insert(
                    bucket,
                    Managed {
                        set: merged,
                        api_version: version,
                        time: managed.time,
                    },
                );
                length -= 1;
            }
            None => {
                first_of_version.insert(version, id);
            }
        }
    }
}

/// Upstream's identifier string, whose order breaks ties between equally old updates.
fn identifier(id: &ManagerId) -> String {
    // Go marshals the struct in field order: manager, operation, apiVersion, …
    let mut out = format!(
        "{{\"manager\":{},\"operation\":{}",
        json!(id.manager),
        json!(id.operation.as_str())
    );
    if let Some(version) = &id.api_version {
        out.push_str(&format!(",\"apiVersion\":{}", json!(version)));
    }
    if !id.subresource.is_empty() {
        out.push_str(&format!(",\"subresource\":{}", json!(id.subresource)));
    }
    out.push('}');
    out
}
