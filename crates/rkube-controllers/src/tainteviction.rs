//! Taint-based eviction: a pod on a node with a NoExecute taint it does not tolerate is
//! deleted at once; one that tolerates every such taint for a limited time
//! (`tolerationSeconds`) is deleted when the shortest of those times has passed since the
//! taint was added; one that tolerates them for ever stays. Pods get tolerations for the
//! not-ready and unreachable taints with 300 seconds at admission, so a node that goes silent
//! loses its pods five minutes later.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::events::{EventType, Recorder};
use crate::informer::SharedInformers;
use crate::informer::{
    AbortOnDrop, Change, Next, WorkQueue, feed, is_conflict, is_not_found, key_of,
};

/// Whether `toleration` tolerates `taint` (upstream's `ToleratesTaint`): the effects match
/// (an empty effect matches all), and the key matches with `Exists` (an empty key with
/// `Exists` matches every taint) or the key and value match with `Equal`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// What to do with a pod on a tainted node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// It tolerates every NoExecute taint for ever (or there are none).
    Keep,
    /// Some NoExecute taint is not tolerated, or its time is up.
    Now,
    /// It may stay until then.
    At(Timestamp),
}

/// The eviction decision for a pod with `tolerations` on a node with `taints`, at `now`.
/// `since` is when the taints were first seen, for taints without `timeAdded`.
pub fn eviction(
    tolerations: &[Toleration],
    taints: &[Taint],
    since: Timestamp,
    now: Timestamp,
) -> Eviction {
    let mut deadline: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Eviction::Now;
        }
        // The shortest bounded toleration counts; unbounded ones tolerate for ever.
        let Some(seconds) = matching.iter().filter_map(|t| t.toleration_seconds).min() else {
            continue;
        };
        let added = taint.time_added.as_ref().map_or(since, |t| t.0);
        let at = added
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(seconds.max(0)))
            .unwrap_or(added);
        deadline = Some(deadline.map_or(at, |d| d.min(at)));
    }
    match deadline {
        None => Eviction::Keep,
        Some(at) if at <= now => Eviction::Now,
        Some(at) => Eviction::At(at),
    }
}

/// The node's NoExecute taints.
fn no_execute_taints(node: &Node) -> Vec<&Taint> {
    node.spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .filter(|t| t.effect == "NoExecute")
        .collect()
}

/// Deletes pods from nodes whose NoExecute taints they do not tolerate (long enough).
pub struct TaintEvictionController {
    client: kube::Client,
    informers: SharedInformers,
    recorder: Recorder,
    /// When each pod (`namespace/name`) was first seen on a tainted node (for taints without
    /// `timeAdded`).
    first_seen: Mutex<HashMap<String, Timestamp>>,
}

impl TaintEvictionController {
    /// A controller acting through `client`.
    pub fn new(client: impl Into<SharedInformers>) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            recorder: Recorder::new(informers.client().clone(), "taint-eviction-controller"),
            client: informers.client().clone(),
            informers,
            first_seen: Mutex::default(),
        }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let queue = WorkQueue::new();
        let (nodes, node_events) = self.informers.informer::<Node>().await;
        let (pods, pod_events) = self.informers.informer::<Pod>().await;
        let by_node = crate::podutil::pods_by_node(&self.informers).await;
        let _guards = [
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                pod_events,
                |change: &Change<Pod>| vec![key_of(change.object())],
            ))),
            // A node's NoExecute taints changing concerns every pod on it. Other changes to
            // the node (status reports) do not: as upstream, only a change of those taints
            // (or a node appearing with some, or going) looks for the node's pods.
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                node_events,
                move |change: &Change<Node>| {
                    let concerns_pods = match change {
                        Change::Added(node) => !no_execute_taints(node).is_empty(),
                        Change::Updated { old, new } => {
                            no_execute_taints(old) != no_execute_taints(new)
                        }
                        Change::Deleted(_) => true,
                    };
                    if !concerns_pods {
                        return Vec::new();
                    }
                    let node = change.object().metadata.name.as_deref().unwrap_or_default();
                    by_node
                        .get(node)
                        .iter()
                        .map(|pod| key_of(pod.as_ref()))
                        .collect()
                },
            ))),
        ];
        if nodes.wait_until_ready().await.is_err() || pods.wait_until_ready().await.is_err() {
            return;
        }
        let this = &self;
        let (nodes, pods) = (&nodes, &pods);
        queue
            .run("taint-eviction", |key| async move {
                this.reconcile(nodes, pods, &key).await
            })
            .await;
    }

    fn first_seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, Timestamp>> {
        self.first_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides one pod's fate and carries it out.
    pub async fn reconcile(
        &self,
        nodes: &Store<Node>,
        pods: &Store<Pod>,
        key: &(String, String),
    ) -> Result<Next, kube::Error> {
        let tracked = format!("{}/{}", key.0, key.1);
        let Some(pod) = pods.get(&ObjectRef::new(&key.1).within(&key.0)) else {
            self.first_seen().remove(&tracked);
            return Ok(Next::Wait);
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let taints: Vec<Taint> = node_name
            .and_then(|n| nodes.get(&ObjectRef::new(&n)))
            .and_then(|n| n.spec.as_ref()?.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.effect == "NoExecute")
            .collect();
        if taints.is_empty() || pod.metadata.deletion_timestamp.is_some() {
            self.first_seen().remove(&tracked);
            return Ok(Next::Wait);
        }
        let now = Timestamp::now();
        let since = *self.first_seen().entry(tracked.clone()).or_insert(now);
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        match eviction(&tolerations, &taints, since, now) {
            Eviction::Keep => Ok(Next::Wait),
            Eviction::At(at) => {
                let wait = now.duration_until(at).unsigned_abs();
                Ok(Next::After(wait.max(Duration::from_millis(10))))
            }
            Eviction::Now => {
                self.evict(&pod, &uid).await?;
                self.first_seen().remove(&tracked);
                Ok(Next::Wait)
            }
        }
    }

    async fn evict(&self, pod: &Pod, uid: &str) -> Result<(), kube::Error> {
        let (ns, name) = key_of(pod);
        tracing::info!(namespace = %ns, pod = %name, "evicting pod from a NoExecute-tainted node");
        self.recorder
            .publish(
                pod,
                EventType::Normal,
                "TaintManagerEviction",
                &format!("Marking for deletion Pod {ns}/{name}"),
            )
            .await;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        // Say why, as upstream does, before the pod goes.
        let condition = serde_json::json!({"status": {"conditions": [{
            "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
        }]}});
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Strategic(&condition),
            )
            .await
        {
            Ok(_) => {}
            Err(err) if is_not_found(&err) => return Ok(()),
            Err(err) => return Err(err),
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(err) if is_not_found(&err) || is_conflict(&err) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn toleration(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    fn unreachable(added: &str) -> Taint {
        Taint {
            key: "node.kubernetes.io/unreachable".into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(added.parse().unwrap())),
            value: None,
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn toleration_matching_follows_operator_key_and_effect() {
        let taint = Taint {
            key: "dedicated".into(),
            value: Some("gpu".into()),
            effect: "NoExecute".into(),
            time_added: None,
        };
        assert!(tolerates(
            &toleration(json!({"key": "dedicated", "value": "gpu"})),
            &taint
        ));
        assert!(!tolerates(
            &toleration(json!({"key": "dedicated", "value": "cpu"})),
            &taint
        ));
        assert!(tolerates(
            &toleration(json!({"key": "dedicated", "operator": "Exists"})),
            &taint
        ));
        assert!(tolerates(
            &toleration(json!({"operator": "Exists"})),
            &taint
        ));
        assert!(!tolerates(
            &toleration(json!({"operator": "Exists", "effect": "NoSchedule"})),
            &taint
        ));
        assert!(!tolerates(
            &toleration(json!({"key": "other", "operator": "Exists"})),
            &taint
        ));
    }

    #[test]
    fn untolerated_taints_evict_at_once_and_bounded_tolerations_later() {
        let taints = [unreachable("2026-11-22T08:00:00Z")];
        let since = t("2026-11-22T08:00:05Z");
        let now = t("2026-11-22T08:01:00Z");
        assert_eq!(eviction(&[], &taints, since, now), Eviction::Now);
        let forever = toleration(
            json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        );
        assert_eq!(
            eviction(std::slice::from_ref(&forever), &taints, since, now),
            Eviction::Keep
        );
        let five_minutes = toleration(
            json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
        );
        assert_eq!(
            eviction(std::slice::from_ref(&five_minutes), &taints, since, now),
            Eviction::At(t("2026-11-22T08:05:00Z"))
        );
        // The shortest bounded toleration wins over an unbounded one.
        assert_eq!(
            eviction(&[forever, five_minutes.clone()], &taints, since, now),
            Eviction::At(t("2026-11-22T08:05:00Z"))
        );
        assert_eq!(
            eviction(&[five_minutes], &taints, since, t("2026-11-22T08:05:00Z")),
            Eviction::Now
        );
    }

    #[test]
    fn taints_without_a_time_count_from_when_they_were_first_seen() {
        let mut taint = unreachable("2026-11-22T08:00:00Z");
        taint.time_added = None;
        let tol = toleration(json!({"operator": "Exists", "tolerationSeconds": 60}));
        assert_eq!(
            eviction(
                &[tol],
                &[taint],
                t("2026-11-22T08:10:00Z"),
                t("2026-11-22T08:10:30Z")
            ),
            Eviction::At(t("2026-11-22T08:11:00Z"))
        );
    }

    #[test]
    fn no_schedule_taints_never_evict() {
        let mut taint = unreachable("2026-11-22T08:00:00Z");
        taint.effect = "NoSchedule".into();
        assert_eq!(
            eviction(
                &[],
                &[taint],
                t("2026-11-22T08:00:00Z"),
                t("2026-11-22T09:00:00Z")
            ),
            Eviction::Keep
        );
    }
}
