//! The pod watch: pods bound to the nodes this process runs, each handed to its node's pod
//! worker. The kubelet watches its own node's pods (a `spec.nodeName` field selector); a
//! simulated cluster watches every pod once and dispatches by `spec.nodeName`, so that a
//! thousand nodes cost the API server one watch, not a thousand.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;

use crate::kubelet::{PodEntry, Shared};

/// The nodes whose pods a watch serves.
pub trait Nodes: Send + Sync + 'static {
    /// The kubelet state of the node named `name`, if it runs here.
    fn node(&self, name: &str) -> Option<Arc<Shared>>;
    /// Every node that runs here.
    fn all(&self) -> Vec<Arc<Shared>>;
}

impl Nodes for Arc<Shared> {
    fn node(&self, name: &str) -> Option<Arc<Shared>> {
        (self.config.node_name == name).then(|| self.clone())
    }

    fn all(&self) -> Vec<Arc<Shared>> {
        vec![self.clone()]
    }
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// Watches pods (those matching `fields`, a field selector, when given) and hands each pod
/// bound to one of `nodes` to that node's worker.
pub async fn watch_pods(client: kube::Client, fields: Option<String>, nodes: impl Nodes) {
    let api: Api<Pod> = Api::all(client);
    let mut config = watcher::Config::default();
    if let Some(fields) = &fields {
        config = config.fields(fields);
    }
    let mut stream = watcher(api, config).boxed();
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(pod)) => {
                let Some(shared) = node_of(&pod).and_then(|n| nodes.node(n)) else {
                    continue;
                };
                if let Some(uid) = pod.metadata.uid.clone() {
                    listed.insert(uid);
                }
                upsert(&shared, pod).await;
            }
            Ok(watcher::Event::InitDone) => {
                // Pods that went away while the watch was down.
                for shared in nodes.all() {
                    let gone: Vec<Arc<PodEntry>> = shared
                        .pods
                        .lock()
                        .await
                        .iter()
                        .filter(|(uid, _)| !listed.contains(*uid))
                        .map(|(_, entry)| entry.clone())
                        .collect();
                    for entry in gone {
                        entry.removed.store(true, Ordering::SeqCst);
                        entry.notify.notify_one();
                    }
                    shared.synced.store(true, Ordering::SeqCst);
                }
            }
            Ok(watcher::Event::Apply(pod)) => {
                if let Some(shared) = node_of(&pod).and_then(|n| nodes.node(n)) {
                    upsert(&shared, pod).await;
                }
            }
            Ok(watcher::Event::Delete(pod)) => {
                let Some(shared) = node_of(&pod).and_then(|n| nodes.node(n)) else {
                    continue;
                };
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(entry) = shared.pods.lock().await.get(&uid) {
                    let mut pod = pod;
                    pod.metadata.managed_fields = None;
                    *entry.pod.lock().await = pod;
                    entry.removed.store(true, Ordering::SeqCst);
                    entry.notify.notify_one();
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "pod watch");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn upsert(shared: &Arc<Shared>, mut pod: Pod) {
    // The kubelet never reads managedFields, and they are a good part of every pod it keeps.
    pod.metadata.managed_fields = None;
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    // What the pod refers to is watched before its worker sees this version of it.
    shared.sources.register_pod(&pod);
    let mut pods = shared.pods.lock().await;
    match pods.get(&uid) {
        Some(entry) => {
            *entry.pod.lock().await = pod;
            entry.notify.notify_one();
        }
        None => {
            let entry = Arc::new(PodEntry::new(pod));
            pods.insert(uid.clone(), entry.clone());
            tokio::spawn(crate::worker::run(shared.clone(), uid, entry));
        }
    }
}
