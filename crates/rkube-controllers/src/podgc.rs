//! Pod garbage collection, as upstream's PodGC: finished pods (Succeeded or Failed) beyond
//! `--terminated-pod-gc-threshold` are deleted oldest first; pods bound to a node that no
//! longer exists are deleted once the node has been missing for a quarantine period (checked
//! against the API, not only the cache); pods being deleted that were never scheduled are
//! deleted at once, since no kubelet will ever finish them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::time::Instant;

use crate::endpoints::is_pod_terminal;
use crate::informer::SharedInformers;
use crate::informer::{
    AbortOnDrop, Change, Next, WorkQueue, feed, is_conflict, is_not_found, key_of,
};

/// What the PodGC queue holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GcKey {
    /// Look at one pod (namespace, name).
    Pod(String, String),
    /// Count the finished pods against the threshold.
    Terminated,
}

/// The finished pods to delete so that at most `threshold` remain: the oldest by creation
/// time (then by name, for a stable order). A threshold of 0 keeps them all.
pub fn terminated_to_delete<'a>(pods: &[&'a Pod], threshold: usize) -> Vec<&'a Pod> {
    if threshold == 0 {
        return Vec::new();
    }
    let mut finished: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| is_pod_terminal(p) && p.metadata.deletion_timestamp.is_none())
        .collect();
    if finished.len() <= threshold {
        return Vec::new();
    }
    finished.sort_by(|a, b| {
        let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| key_of(*a).cmp(&key_of(*b)))
    });
    let excess = finished.len() - threshold;
    finished.truncate(excess);
    finished
}

/// Deletes pods nobody will ever finish or that are too many.
pub struct PodGcController {
    client: kube::Client,
    informers: SharedInformers,
    threshold: usize,
    quarantine: Duration,
    /// When each missing node was first noticed missing.
    missing_since: Mutex<HashMap<String, Instant>>,
}

impl PodGcController {
    /// A controller with the settings' threshold and quarantine.
    pub fn new(client: impl Into<SharedInformers>, settings: &crate::Settings) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            client: informers.client().clone(),
            informers,
            threshold: settings.terminated_pod_gc_threshold,
            quarantine: settings.orphan_pod_quarantine,
            missing_since: Mutex::default(),
        }
    }

    fn missing_since(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.missing_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
                |change: &Change<Pod>| {
                    let pod = change.object();
                    let (ns, name) = key_of(pod);
                    let mut keys = vec![GcKey::Pod(ns, name)];
                    if is_pod_terminal(pod) {
                        keys.push(GcKey::Terminated);
                    }
                    keys
                },
            ))),
            // A node going away orphans its pods.
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                node_events,
                move |change: &Change<Node>| {
                    let Change::Deleted(node) = change else {
                        return Vec::new();
                    };
                    by_node
                        .get(node.metadata.name.as_deref().unwrap_or_default())
                        .iter()
                        .map(|pod| {
                            let (ns, name) = key_of(pod.as_ref());
                            GcKey::Pod(ns, name)
                        })
                        .collect()
                },
            ))),
        ];
        if nodes.wait_until_ready().await.is_err() || pods.wait_until_ready().await.is_err() {
            return;
        }
        queue.add(GcKey::Terminated);
        let this = &self;
        let (nodes, pods) = (&nodes, &pods);
        queue
            .run("pod-garbage-collector", |key| async move {
                match key {
                    GcKey::Terminated => this.collect_terminated(pods).await,
                    GcKey::Pod(ns, name) => this.reconcile(nodes, pods, &ns, &name).await,
                }
            })
            .await;
    }

    /// Deletes the oldest finished pods beyond the threshold.
    pub async fn collect_terminated(&self, pods: &Store<Pod>) -> Result<Next, kube::Error> {
        let all = pods.state();
        let refs: Vec<&Pod> = all.iter().map(Arc::as_ref).collect();
        let doomed = terminated_to_delete(&refs, self.threshold);
        if !doomed.is_empty() {
            tracing::info!(
                count = doomed.len(),
                threshold = self.threshold,
                "deleting finished pods over the threshold"
            );
        }
        for pod in doomed {
            self.delete(pod, None).await?;
        }
        Ok(Next::Wait)
    }

    /// Deletes one pod if it is orphaned or was never scheduled and is terminating.
    pub async fn reconcile(
        &self,
        nodes: &Store<Node>,
        pods: &Store<Pod>,
        ns: &str,
        name: &str,
    ) -> Result<Next, kube::Error> {
        let Some(pod) = pods.get(&ObjectRef::new(name).within(ns)) else {
            return Ok(Next::Wait);
        };
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let Some(node) = node else {
            if pod.metadata.deletion_timestamp.is_some() {
                self.delete(&pod, None).await?;
            }
            return Ok(Next::Wait);
        };
        if nodes.get(&ObjectRef::new(&node)).is_some() {
            self.missing_since().remove(&node);
            return Ok(Next::Wait);
        }
        let now = Instant::now();
        let since = *self.missing_since().entry(node.clone()).or_insert(now);
        let waited = now.duration_since(since);
        if waited < self.quarantine {
            return Ok(Next::After(self.quarantine - waited));
        }
        // The cache may lag: ask the API server before deleting anything.
        let api: Api<Node> = Api::all(self.client.clone());
        if api.get_opt(&node).await?.is_some() {
            self.missing_since().remove(&node);
            return Ok(Next::Wait);
        }
        tracing::info!(namespace = ns, pod = name, node = %node, "deleting a pod bound to a node that does not exist");
        self.delete(&pod, Some("DeletionByPodGC")).await?;
        Ok(Next::Wait)
    }

    /// Deletes `pod` at once (grace period 0), pinned to its uid; with `reason`, first marks it
    /// with a DisruptionTarget condition saying why.
    async fn delete(&self, pod: &Pod, reason: Option<&str>) -> Result<(), kube::Error> {
        let (ns, name) = key_of(pod);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if let Some(reason) = reason {
            let condition = serde_json::json!({"status": {"conditions": [{
                "type": "DisruptionTarget", "status": "True", "reason": reason,
                "message": "PodGC: node no longer exists",
                "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
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
        }
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
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
    use serde_json::json;

    fn pod(name: &str, phase: &str, created: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn the_oldest_finished_pods_over_the_threshold_go() {
        let pods = [
            pod("new-done", "Succeeded", "2026-01-03T00:00:00Z"),
            pod("old-failed", "Failed", "2026-01-01T00:00:00Z"),
            pod("running", "Running", "2025-01-01T00:00:00Z"),
            pod("mid-done", "Succeeded", "2026-01-02T00:00:00Z"),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let names = |threshold| -> Vec<String> {
            terminated_to_delete(&refs, threshold)
                .iter()
                .map(|p| p.metadata.name.clone().unwrap())
                .collect()
        };
        assert_eq!(names(1), ["old-failed", "mid-done"]);
        assert_eq!(names(2), ["old-failed"]);
        assert!(names(3).is_empty());
        assert!(names(0).is_empty(), "a threshold of 0 turns collection off");
    }
}
