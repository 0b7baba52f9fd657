//! core/v1 Events about pods and the node, as upstream's kubelet writes them (source component `kubelet`,
//! the node as host); a repeat of the same event raises its count instead of adding another.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// Writes Events for one node. Writes happen in the background: a pod worker does not wait
/// for its events.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    node: String,
    seen: std::sync::Arc<tokio::sync::Mutex<HashMap<String, (String, i32)>>>,
}

impl Recorder {
    /// A recorder for `node`.
    pub fn new(client: kube::Client, node: String) -> Self {
        Self {
            client,
            node,
            seen: std::sync::Arc::new(tokio::sync::Mutex::new(HashMap::new())),
        }
    }

    /// Records an event about a pod (`field_path` names a container: `spec.containers{web}`).
    pub async fn pod(
        &self,
        pod: &Pod,
        field_path: Option<String>,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let object = ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Pod".to_owned()),
            name: pod.metadata.name.clone(),
            namespace: Some(
                pod.metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_owned()),
            ),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            field_path,
        };
        self.record(object, type_, reason, message);
    }

    /// Records an event about the node itself (in the default namespace, as upstream's).
    pub async fn node(&self, type_: &str, reason: &str, message: &str) {
        let object = ObjectReference {
            kind: Some("Node".to_owned()),
            name: Some(self.node.clone()),
            namespace: Some("default".to_owned()),
            uid: Some(self.node.clone()),
            ..Default::default()
        };
        self.record(object, type_, reason, message);
    }

    fn record(&self, object: ObjectReference, type_: &str, reason: &str, message: &str) {
        let (this, now) = (self.clone(), Timestamp::now());
        let (type_, reason, message) = (type_.to_owned(), reason.to_owned(), message.to_owned());
        tokio::spawn(async move {
            this.write(object, &type_, &reason, &message, now).await;
        });
    }

    async fn write(
        &self,
        object: ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) {
        let ns = object.namespace.clone().unwrap_or_default();
        let name = object.name.clone().unwrap_or_default();
        let key = format!(
            "{}\0{}\0{}\0{reason}\0{message}",
            object.kind.as_deref().unwrap_or_default(),
            object.uid.as_deref().unwrap_or_default(),
            object.field_path.as_deref().unwrap_or_default()
        );
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let mut seen = self.seen.lock().await;
        if let Some((event_name, count)) = seen.get_mut(&key) {
            *count += 1;
            let patch = serde_json::json!({"count": *count, "lastTimestamp": Time(now)});
            if api
                .patch(event_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                return;
            }
        }
        let event_name = format!(
            "{name}.{:x}",
            now.as_nanosecond() as u64 ^ rand::random::<u32>() as u64
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(event_name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: object,
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            type_: Some(type_.to_owned()),
            source: Some(EventSource {
                component: Some("kubelet".to_owned()),
                host: Some(self.node.clone()),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            reporting_component: Some("kubelet".to_owned()),
            reporting_instance: Some(self.node.clone()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                seen.insert(key, (event_name, 1));
                if seen.len() > 4096 {
                    seen.clear();
                }
            }
            Err(e) => tracing::debug!(error = %e, "writing an event"),
        }
    }
}
