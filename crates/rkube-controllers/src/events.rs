//! Events for what controllers do, written as core/v1 Events so that `kubectl describe` and
//! `kubectl get events` show them. Repeats of the same event on the same object are folded
//! into one Event whose count and lastTimestamp grow, as upstream's event correlator does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};

/// Normal or Warning, the two event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something went wrong or needs attention.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Events already written, by (object uid, type, reason, message): name, namespace and count.
type Seen = HashMap<(String, EventType, String, String), (String, String, i32)>;

/// Writes Events on behalf of one component (e.g. `deployment-controller`).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: String,
    instance: String,
    seen: Arc<Mutex<Seen>>,
}

/// A reference to `obj` as an Event's involvedObject.
pub fn object_reference<K>(obj: &K) -> ObjectReference
where
    K: Resource<DynamicType = ()>,
{
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        field_path: None,
    }
}

impl Recorder {
    /// A recorder for `component`, e.g. `replicaset-controller`.
    pub fn new(client: kube::Client, component: impl Into<String>) -> Self {
        let component = component.into();
        Self {
            client,
            instance: component.clone(),
            component,
            seen: Arc::default(),
        }
    }

    /// Records an event about `obj`; failures are logged, never returned, as for upstream's
    /// recorder (an event that cannot be written must not stop a controller).
    pub async fn publish<K>(&self, obj: &K, type_: EventType, reason: &str, message: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish_ref(object_reference(obj), type_, reason, message)
            .await
    }

    /// Records an event about the object `involved` refers to.
    pub async fn publish_ref(
        &self,
        involved: ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        if let Err(err) = self.write(involved, type_, reason, message).await {
            tracing::debug!(error = %err, reason, "writing an event");
        }
    }

    async fn write(
        &self,
        involved: ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let key = (
            involved.uid.clone().unwrap_or_default(),
            type_,
            reason.to_owned(),
            message.to_owned(),
        );
        let previous = self.lock().get(&key).cloned();
        if let Some((name, namespace, count)) = previous {
            let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
            let patch = serde_json::json!({
                "count": count + 1,
                "lastTimestamp": Time(now),
            });
            if events
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                self.lock().insert(key, (name, namespace, count + 1));
                return Ok(());
            }
        }
        let namespace = involved
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let mut event = Event {
            involved_object: involved.clone(),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            type_: Some(type_.as_str().to_owned()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        // Named as upstream's recorder names events: `<object>.<unix nanoseconds in hex>`
        // (a generateName ending in '.' is not a valid name prefix).
        event.metadata.name = Some(format!(
            "{}.{:x}",
            involved.name.as_deref().unwrap_or("object"),
            now.as_nanosecond()
        ));
        event.metadata.namespace = Some(namespace.clone());
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let created = events.create(&PostParams::default(), &event).await?;
        let mut seen = self.lock();
        if seen.len() > 4096 {
            seen.clear();
        }
        seen.insert(key, (created.name_any(), namespace, 1));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
