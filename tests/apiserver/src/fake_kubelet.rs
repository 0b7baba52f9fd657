//! A stand-in for the kubelets of a cluster, for controller tests: it watches pods and, as a
//! node would report them, marks each new pod Running and Ready through the status
//! subresource, and completes the deletion of pods being deleted (what a kubelet does once
//! their containers stopped).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use serde_json::json;

/// Running fake kubelets; dropping it stops them.
pub struct FakeKubelet {
    task: tokio::task::JoinHandle<()>,
    ready: Arc<AtomicBool>,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKubelet {
    /// Whether new pods are marked ready (true at start).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Marks a pod Running and Ready, as its kubelet would.
pub async fn mark_ready(pods: &Api<Pod>, name: &str) -> Result<Pod, kube::Error> {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
}

/// Starts fake kubelets for the pods of every namespace, handling up to `parallel` pods at once.
pub fn start(client: kube::Client, parallel: usize) -> FakeKubelet {
    let ready = Arc::new(AtomicBool::new(true));
    let flag = ready.clone();
    let task = tokio::spawn(async move {
        let all: Api<Pod> = Api::all(client.clone());
        watcher(all, watcher::Config::default())
            .filter_map(|event| async move {
                match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => Some(pod),
                    _ => None,
                }
            })
            .map(|pod| {
                let (client, flag) = (client.clone(), flag.clone());
                async move {
                    let pods: Api<Pod> =
                        Api::namespaced(client, &pod.namespace().unwrap_or_default());
                    if pod.metadata.deletion_timestamp.is_some() {
                        let params = DeleteParams {
                            grace_period_seconds: Some(0),
                            preconditions: Some(Preconditions {
                                uid: pod.metadata.uid.clone(),
                                resource_version: None,
                            }),
                            ..DeleteParams::default()
                        };
                        let _ = pods.delete(&pod.name_any(), &params).await;
                    } else if !is_ready(&pod) && flag.load(Ordering::SeqCst) {
                        let _ = mark_ready(&pods, &pod.name_any()).await;
                    }
                }
            })
            .buffer_unordered(parallel.max(1))
            .for_each(|()| async {})
            .await;
    });
    FakeKubelet { task, ready }
}
