//! What the workload controllers (StatefulSet, DaemonSet, Job, CronJob) share: informers that
//! feed a work queue, controller references, pod predicates, and creation expectations.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::informer::OwnerIndex;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Resource};

/// What a workload reconcile can fail with; the work queue retries it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error("API request: {0}")]
    Api(#[from] kube::Error),
    /// An object could not be turned into JSON or back.
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
    /// The informer stopped.
    #[error("the informer cache is gone")]
    CacheGone,
}

/// Result of a workload reconcile.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Drains a reconcile result stream, logging failures.
pub(crate) async fn drain<S, T, E>(name: &'static str, results: S)
where
    S: Stream<Item = std::result::Result<T, E>>,
    E: std::fmt::Display,
{
    results
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(controller = name, error = %err, "reconcile");
            }
        })
        .await;
}

/// A controller reference to `owner`, as every pod (or job, claim) a workload creates carries.
pub(crate) fn controller_reference<K>(owner: &K) -> OwnerReference
where
    K: Resource<DynamicType = ()>,
{
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `meta`'s controller is the object with `uid`.
pub(crate) fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// The pods whose controller is `owner` (in its namespace), from the pod cache's index.
pub(crate) fn owned_pods<K: Resource>(pods: &OwnerIndex<Pod>, owner: &K) -> Vec<Arc<Pod>> {
    let uid = owner.meta().uid.as_deref().unwrap_or_default();
    let mut owned = pods.controlled_by(uid);
    owned.retain(|pod| pod.metadata.namespace == owner.meta().namespace);
    owned
}

/// The pod's phase, `Pending` when it has none yet.
pub(crate) fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Succeeded or Failed: its containers will not run again.
pub(crate) fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Being deleted.
pub(crate) fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The time the pod's Ready condition became true, if it is true.
pub(crate) fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// Running with its Ready condition true.
pub(crate) fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`, as upstream's `IsPodAvailable`.
pub(crate) fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => now.as_second() - since.as_second() >= i64::from(min_ready_seconds),
    }
}

/// A pod built from `template`: its labels, annotations and spec, owned by its controller.
pub(crate) fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    owner: OwnerReference,
) -> Pod {
    let from = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            namespace: Some(namespace.to_owned()),
            labels: from.labels,
            annotations: from.annotations,
            finalizers: from.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

pub(crate) use crate::informer::{is_conflict, is_not_found};

/// Deletes `pod` only if it is still the same object (a uid precondition). `Ok(true)` when
/// this call deleted it, `Ok(false)` when it was already gone or replaced.
pub(crate) async fn delete_exact(client: &kube::Client, pod: &Pod) -> Result<bool, kube::Error> {
    let api: Api<Pod> = Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let params = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..kube::api::DeleteParams::default()
    };
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    match api.delete(name, &params).await {
        Ok(_) => Ok(true),
        Err(err) if is_not_found(&err) || is_conflict(&err) => Ok(false),
        Err(err) => Err(err),
    }
}

/// How long an expectation is trusted before the cache is believed instead, as upstream's
/// `ExpectationsTimeout`.
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Pods a controller created or deleted that its cache may not show yet.
#[derive(Default)]
struct Pending {
    created: HashSet<String>,
    deleted: HashSet<String>,
    unfinalized: HashSet<(String, String)>,
    since: Option<Instant>,
}

/// Creation and deletion expectations per owner (keyed by uid), so that a cache lagging
/// behind the controller's own writes never makes it create or delete twice: an owner is
/// synced only once every pod it created is in the cache and every pod it deleted is gone
/// from it (or marked for deletion).
#[derive(Clone, Default)]
pub(crate) struct Expectations {
    inner: Arc<Mutex<HashMap<String, Pending>>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes that `owner` created the pod `name`.
    pub(crate) fn created(&self, owner: &str, name: &str) {
        let mut map = self.lock();
        let pending = map.entry(owner.to_owned()).or_default();
        pending.created.insert(name.to_owned());
        pending.since.get_or_insert_with(Instant::now);
    }

    /// Notes that `owner` deleted the pod `name`.
    pub(crate) fn deleted(&self, owner: &str, name: &str) {
        let mut map = self.lock();
        let pending = map.entry(owner.to_owned()).or_default();
        pending.deleted.insert(name.to_owned());
        pending.since.get_or_insert_with(Instant::now);
    }

    /// Whether the cache (the owner's pods in it) has caught up with what `owner` did.
    pub(crate) fn satisfied(&self, owner: &str, pods: &[Arc<Pod>]) -> bool {
        let mut map = self.lock();
        let Some(pending) = map.get_mut(owner) else {
            return true;
        };
        let seen: HashMap<&str, &Pod> = pods
            .iter()
            .filter_map(|p| p.metadata.name.as_deref().map(|n| (n, p.as_ref())))
            .collect();
        pending
            .created
            .retain(|name| !seen.contains_key(name.as_str()));
        pending
            .deleted
            .retain(|name| seen.get(name.as_str()).is_some_and(|p| !is_terminating(p)));
        pending.unfinalized.retain(|(name, finalizer)| {
            seen.get(name.as_str()).is_some_and(|p| {
                p.metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == finalizer)
            })
        });
        let expired = pending
            .since
            .is_some_and(|since| since.elapsed() > EXPECTATIONS_TIMEOUT);
        let caught_up = pending.created.is_empty()
            && pending.deleted.is_empty()
            && pending.unfinalized.is_empty();
        if caught_up || expired {
            map.remove(owner);
            return true;
        }
        false
    }

    /// Notes that `owner` removed `finalizer` from the pod `name`.
    pub(crate) fn finalizer_removed(&self, owner: &str, name: &str, finalizer: &str) {
        let mut map = self.lock();
        let pending = map.entry(owner.to_owned()).or_default();
        pending
            .unfinalized
            .insert((name.to_owned(), finalizer.to_owned()));
        pending.since.get_or_insert_with(Instant::now);
    }
}

/// `hash` as upstream's `rand.SafeEncodeString` spells it: no vowels, no confusable digits.
fn safe_encode(hash: u32) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    hash.to_string()
        .bytes()
        .map(|digit| ALPHABET[usize::from(digit - b'0') % ALPHABET.len()] as char)
        .collect()
}

/// A short, stable hash of a JSON value (FNV-1a, 32 bits, of its compact serialization), used
/// for revision names and the `controller-revision-hash` label.
pub(crate) fn hash_of(value: &serde_json::Value, collision_count: i32) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u32::from(*byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(value.to_string().as_bytes());
    if collision_count > 0 {
        feed(&collision_count.to_le_bytes());
    }
    safe_encode(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_use_the_safe_alphabet() {
        let a = hash_of(&serde_json::json!({"a": 1}), 0);
        assert_eq!(a, hash_of(&serde_json::json!({"a": 1}), 0));
        assert_ne!(a, hash_of(&serde_json::json!({"a": 2}), 0));
        assert_ne!(a, hash_of(&serde_json::json!({"a": 1}), 1));
        assert!(a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn expectations_wait_for_the_cache() {
        let exp = Expectations::default();
        assert!(exp.satisfied("u", &[]));
        exp.created("u", "p-1");
        assert!(!exp.satisfied("u", &[]));
        let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "p-1"}}))
            .unwrap_or_default();
        let pods = vec![Arc::new(pod)];
        assert!(exp.satisfied("u", &pods));
        exp.deleted("u", "p-1");
        assert!(!exp.satisfied("u", &pods));
        assert!(exp.satisfied("u", &[]));
    }
}
