//! What the workload controller tests share: waiting for an outcome, and playing the kubelet
//! by writing pod status through the status subresource.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

/// Polls `check` until it yields a value, failing the test after `secs` seconds.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pods in `default`, sorted by name.
pub async fn pods(client: &kube::Client) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut items = api.list(&ListParams::default()).await.unwrap().items;
    items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    items
}

/// The names of the pods in `default` that are not being deleted.
pub async fn live_pod_names(client: &kube::Client) -> Vec<String> {
    pods(client)
        .await
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect()
}

/// Marks a pod Running and Ready, as its kubelet would.
pub async fn mark_ready(client: &kube::Client, name: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
    ]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// Marks a pod finished with `phase` (Succeeded or Failed) and its first container's exit code.
pub async fn mark_finished(client: &kube::Client, name: &str, phase: &str, exit_code: i32) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = api.get(name).await.unwrap();
    let container = pod.spec.unwrap().containers[0].name.clone();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {"phase": phase, "containerStatuses": [{
        "name": container, "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": exit_code, "startedAt": now, "finishedAt": now,
                                 "reason": if exit_code == 0 { "Completed" } else { "Error" }}},
    }]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// The `(reason, message)` of every event in `default`.
pub async fn events(client: &kube::Client) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

/// Runs a controller for the rest of the test.
pub fn spawn<F: Future<Output = ()> + Send + 'static>(controller: F) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(controller))
}

/// Stops its task when dropped.
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
