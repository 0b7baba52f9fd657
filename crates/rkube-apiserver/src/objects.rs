//! Kubernetes objects in the store: keys, JSON values, `resourceVersion` (the store's
//! modification revision, never stored inside the value), continue tokens, and the mapping of
//! store errors to API errors.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use rkube_api::ApiError;
use rkube_api::registry::ResourceType;
use rkube_store::{KeyValue, LeaseId, ListOptions, Revision, Store, continue_after};
use serde_json::{Map, Value, json};

/// The message of a 409 for a stale update, as upstream words it.
pub const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// The store key of one object.
pub fn key(rt: &ResourceType, namespace: Option<&str>, name: &str) -> String {
    format!("{}{name}", prefix(rt, namespace))
}

/// The key prefix of all objects of a resource (in one namespace, if given).
pub fn prefix(rt: &ResourceType, namespace: Option<&str>) -> String {
    let group = if rt.group.is_empty() {
        "core"
    } else {
        rt.group
    };
    match namespace.filter(|_| rt.namespaced) {
        Some(ns) => format!("/registry/{group}/{}/{ns}/", rt.plural),
        None => format!("/registry/{group}/{}/", rt.plural),
    }
}

/// A 409 about `name` of `rt`: `Operation cannot be fulfilled on <resource> "<name>": …`.
pub fn conflict(rt: &ResourceType, name: &str, message: impl Into<String>) -> ApiError {
    ApiError::Conflict {
        group: rt.group.into(),
        resource: rt.qualified_plural(),
        name: name.into(),
        message: message.into(),
    }
}

/// Maps a store error about `name` of `rt` to the API error a client expects.
pub fn store_error(rt: &ResourceType, name: &str, err: rkube_store::Error) -> ApiError {
    use rkube_store::Error as E;
    let group = rt.group.to_owned();
    let resource = rt.qualified_plural();
    let name = name.to_owned();
    match err {
        E::AlreadyExists { .. } => ApiError::AlreadyExists {
            group,
            resource,
            name,
        },
        E::NotFound { .. } => ApiError::NotFound {
            group,
            resource,
            name,
        },
        E::Conflict { .. } => ApiError::Conflict {
            group,
            resource,
            name,
            message: MODIFIED.into(),
        },
        E::Compacted {
            requested,
            compacted,
        } => ApiError::Gone(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        E::FutureRevision { requested, current } => ApiError::Timeout(format!(
            "Too large resource version: {requested}, current: {current}"
        )),
        E::ValueTooLarge { .. } => ApiError::RequestEntityTooLarge(err.to_string()),
        E::Unavailable { .. } | E::Closed => ApiError::Unavailable(err.to_string()),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Sets `metadata.resourceVersion`.
/// The object member `key` of `map`, made an empty object if it is missing or not one.
pub(crate) fn object_member<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> &'a mut Map<String, Value> {
    let slot = map.entry(key).or_insert(Value::Null);
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("made an object above")
}

/// The list member `key` of `map`, made an empty list if it is missing or not one.
pub(crate) fn array_member<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = map.entry(key).or_insert(Value::Null);
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut().expect("made a list above")
}

pub fn set_resource_version(object: &mut Value, revision: Revision) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(revision.to_string()));
    }
}

/// Reads a stored object, stamping its resource version.
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut object: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::Internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    set_resource_version(&mut object, kv.mod_revision);
    Ok(object)
}

/// The bytes to store: the object without its resource version.
pub fn encode(object: &Value) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(2048);
    serde_json::to_writer(&mut out, &WithoutVersion(object))
        .map_err(|e| ApiError::Internal(format!("encoding object: {e}")))?;
    Ok(out)
}

/// An object serialized without `metadata.resourceVersion` (the store's revision is the
/// version), without copying it first.
struct WithoutVersion<'a>(&'a Value);

impl serde::Serialize for WithoutVersion<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Some(fields) = self.0.as_object() else {
            return self.0.serialize(serializer);
        };
        let mut map = serializer.serialize_map(Some(fields.len()))?;
        for (key, value) in fields {
            match value.as_object() {
                Some(meta) if key == "metadata" => {
                    let kept = MetadataWithoutVersion(meta);
                    map.serialize_entry(key, &kept)?;
                }
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

struct MetadataWithoutVersion<'a>(&'a serde_json::Map<String, Value>);

impl serde::Serialize for MetadataWithoutVersion<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self.0.iter().filter(|(k, _)| *k != "resourceVersion");
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in fields {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// The metadata field of an object, as a string.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// The object's resource version as a revision.
pub fn resource_version(object: &Value) -> Option<Revision> {
    meta_str(object, "resourceVersion")?.parse().ok()
}

/// How to list.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    /// At most this many objects.
    pub limit: Option<usize>,
    /// The token of the previous page.
    pub continue_token: Option<String>,
    /// Read exactly at this revision (`resourceVersionMatch=Exact`).
    pub exact_revision: Option<Revision>,
}

/// One page of a list.
#[derive(Debug, Default)]
pub struct ListPage {
    /// The objects, each with its resource version.
    pub items: Vec<Value>,
    /// The revision the page was read at.
    pub revision: Revision,
    /// The token for the next page.
    pub continue_token: Option<String>,
    /// How many objects remain after this page (when known).
    pub remaining: Option<i64>,
}

/// How long one lease is handed to new Events before a fresh one is granted: as upstream, at
/// most a minute and at most 5% of the TTL, so Events do not each cost a lease and none
/// outlives its TTL by much.
fn lease_reuse(ttl: Duration) -> Duration {
    (ttl / 20).min(Duration::from_secs(60))
}

/// Objects of every resource, over the store.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn Store>,
    event_ttl: Duration,
    event_lease: Arc<Mutex<Option<(Instant, LeaseId)>>>,
}

fn is_event(rt: &ResourceType) -> bool {
    rt.kind == "Event" && (rt.group.is_empty() || rt.group == "events.k8s.io")
}

/// Upstream's message for a continue token that can no longer be served.
const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent \
     list result. You can start a new list without the continue parameter, or use the continue \
     token in this response to retrieve the remainder of the results. Continuing with the provided \
     token results in an inconsistent list - objects that were created, modified, or deleted \
     between the time the first chunk was returned and now may show up in the list.";

pub(crate) fn encode_continue(revision: Revision, start: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": start});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

pub(crate) fn decode_continue(token: &str) -> Result<(Revision, String), ApiError> {
    let bad = |why: &str| ApiError::BadRequest(format!("continue key is not valid: {why}"));
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad("not base64"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad("not a continue token"))?;
    if value["v"] != "meta.k8s.io/v1" {
        return Err(bad(
            "incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        ));
    }
    let rev = value["rv"]
        .as_i64()
        .filter(|r| *r > 0)
        .ok_or_else(|| bad("no resource version"))?;
    let start = value["start"].as_str().ok_or_else(|| bad("no start key"))?;
    if start.contains("..") || start.starts_with('/') {
        return Err(bad("invalid start key"));
    }
    Ok((rev, start.to_owned()))
}

impl Objects {
    /// Objects in `store`; Events expire `event_ttl` after their last write.
    pub fn new(store: Arc<dyn Store>, event_ttl: Duration) -> Self {
        Self {
            store,
            event_ttl,
            event_lease: Arc::new(Mutex::new(None)),
        }
    }

    /// The lease a write of this resource is bound to: Events expire, nothing else does.
    async fn lease_for(&self, rt: &ResourceType) -> Result<Option<LeaseId>, ApiError> {
        if !is_event(rt) {
            return Ok(None);
        }
        if let Some((granted, id)) = *self.event_lease.lock().unwrap_or_else(|p| p.into_inner())
            && granted.elapsed() < lease_reuse(self.event_ttl)
        {
            return Ok(Some(id));
        }
        let id = self
            .store
            .grant_lease(self.event_ttl + lease_reuse(self.event_ttl))
            .await
            .map_err(|e| store_error(rt, "", e))?;
        *self.event_lease.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), id));
        Ok(Some(id))
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// One object.
    pub async fn get(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        match self.store.get(&key(rt, ns, name), None).await {
            Ok(Some(kv)) => decode(&kv),
            Ok(None) => Err(ApiError::NotFound {
                group: rt.group.into(),
                resource: rt.qualified_plural(),
                name: name.into(),
            }),
            Err(err) => Err(store_error(rt, name, err)),
        }
    }

    /// A page of objects that pass `keep`, reading further store pages as needed to fill it.
    pub async fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        params: &ListParams,
        keep: &(dyn Fn(&Value) -> bool + Sync),
    ) -> Result<ListPage, ApiError> {
        let prefix = prefix(rt, ns);
        let (mut revision, mut start) = match &params.continue_token {
            Some(token) => {
                let (rev, start) = decode_continue(token)?;
                (Some(rev), Some(format!("{prefix}{start}")))
            }
            None => (params.exact_revision, None),
        };
        let limit = params.limit.filter(|l| *l > 0);
        let mut page = ListPage::default();
        loop {
            let want = limit.map(|l| l - page.items.len());
            let options = ListOptions {
                revision,
                limit: want,
                start: start.clone(),
            };
            let result = match self.store.list(&prefix, options).await {
                Ok(r) => r,
                Err(rkube_store::Error::Compacted { .. }) if params.continue_token.is_some() => {
                    return Err(ApiError::Gone(CONTINUE_EXPIRED.into()));
                }
                Err(err) => return Err(store_error(rt, "", err)),
            };
            revision = Some(result.revision);
            page.revision = result.revision;
            let last_key = result.items.last().map(|kv| kv.key.clone());
            for kv in &result.items {
                let object = decode(kv)?;
                if keep(&object) {
                    page.items.push(object);
                }
            }
            let full = limit.is_some_and(|l| page.items.len() >= l);
            match last_key {
                Some(last) if result.more => {
                    if full {
                        let rest = last.strip_prefix(&prefix).unwrap_or(&last);
                        page.continue_token =
                            Some(encode_continue(result.revision, &continue_after(rest)));
                        // Like upstream, the count is only exact without a filter.
                        page.remaining = Some(result.count - result.items.len() as i64);
                        return Ok(page);
                    }
                    start = Some(continue_after(&last));
                }
                _ => return Ok(page),
            }
        }
    }

    /// Stores a new object, given as [`encode`] makes it; returns its JSON as a client sees
    /// it (the resource version spliced into the stored bytes) and its revision.
    pub async fn create(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<(Vec<u8>, Revision), ApiError> {
        let lease = self.lease_for(rt).await?;
        let rev = self
            .store
            .create(&key(rt, ns, name), bytes.clone(), lease)
            .await
            .map_err(|e| store_error(rt, name, e))?;
        let json = match crate::cache::stamp_version(&bytes, rev) {
            Some(json) => json,
            // Only an object without a metadata map, which create never stores.
            None => {
                let mut object: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::Internal(format!("decoding object: {e}")))?;
                set_resource_version(&mut object, rev);
                serde_json::to_vec(&object)
                    .map_err(|e| ApiError::Internal(format!("encoding object: {e}")))?
            }
        };
        Ok((json, rev))
    }

    /// Replaces an object whose stored revision is still `expected`.
    pub async fn update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        mut object: Value,
        expected: Revision,
    ) -> Result<Value, ApiError> {
        let rev = self
            .update_encoded(rt, ns, name, encode(&object)?, expected)
            .await?;
        set_resource_version(&mut object, rev);
        Ok(object)
    }

    /// As [`Objects::update`], with the object already encoded as the store keeps it
    /// (without `resourceVersion`); returns the new revision.
    pub async fn update_encoded(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        bytes: Vec<u8>,
        expected: Revision,
    ) -> Result<Revision, ApiError> {
        let lease = self.lease_for(rt).await?;
        self.store
            .update(&key(rt, ns, name), bytes, expected, lease)
            .await
            .map_err(|e| store_error(rt, name, e))
    }

    /// Deletes an object whose stored revision is still `expected` (if given); returns the
    /// deleted object with the deletion's resource version.
    pub async fn delete(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        expected: Option<Revision>,
    ) -> Result<Value, ApiError> {
        let (rev, kv) = self
            .store
            .delete(&key(rt, ns, name), expected)
            .await
            .map_err(|e| store_error(rt, name, e))?;
        let mut object = decode(&kv)?;
        set_resource_version(&mut object, rev);
        Ok(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_bytes_leave_out_the_resource_version_and_keep_the_rest() {
        let object = json!({
            "kind": "Pod",
            "metadata": {"name": "a", "resourceVersion": "42", "labels": {"resourceVersion": "x"}},
            "spec": {"resourceVersion": "kept"},
        });
        let stored: Value = serde_json::from_slice(&encode(&object).unwrap()).unwrap();
        let mut expected = object.clone();
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        assert_eq!(stored, expected);
        assert_eq!(
            serde_json::from_slice::<Value>(&encode(&json!("plain")).unwrap()).unwrap(),
            json!("plain")
        );
    }

    #[test]
    fn keys_follow_the_registry_layout() {
        let reg = rkube_api::registry::all();
        let pods = reg.by_path("", "v1", "pods").unwrap();
        assert_eq!(
            key(pods, Some("default"), "web"),
            "/registry/core/pods/default/web"
        );
        assert_eq!(prefix(pods, None), "/registry/core/pods/");
        let nodes = reg.by_path("", "v1", "nodes").unwrap();
        assert_eq!(key(nodes, Some("ignored"), "n1"), "/registry/core/nodes/n1");
        let deploy = reg.by_path("apps", "v1", "deployments").unwrap();
        assert_eq!(prefix(deploy, Some("a")), "/registry/apps/deployments/a/");
    }

    #[test]
    fn continue_tokens_round_trip_and_bad_ones_are_rejected() {
        let token = encode_continue(42, "ns/name\0");
        assert_eq!(
            decode_continue(&token).unwrap(),
            (42, "ns/name\0".to_owned())
        );
        assert!(matches!(
            decode_continue("!!!"),
            Err(ApiError::BadRequest(_))
        ));
        let sneaky = base64::engine::general_purpose::URL_SAFE
            .encode(json!({"v": "meta.k8s.io/v1", "rv": 3, "start": "../secrets/"}).to_string());
        assert!(matches!(
            decode_continue(&sneaky),
            Err(ApiError::BadRequest(_))
        ));
    }
}
