//! Events the scheduler writes (Scheduled, FailedScheduling, Preempted), as core/v1 Events
//! from the profile that scheduled the pod (`default-scheduler` unless configured). Like upstream's event broadcaster, writing is best effort and
//! never slows scheduling: events wait in a bounded buffer and are dropped when it is full.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::mpsc;

use crate::types::PodInfo;

/// How many events may wait to be written.
const BUFFER: usize = 1000;
/// How many are written at once.
const WRITERS: usize = 8;

/// One event to write: its namespace and its JSON.
struct Pending {
    namespace: String,
    body: Vec<u8>,
}

/// The scheduler's event writer.
pub struct EventSink {
    tx: mpsc::Sender<Pending>,
}

impl EventSink {
    /// Starts the writer; it stops when the sink is dropped and the buffer is drained.
    pub fn start(client: kube::Client) -> Self {
        let (tx, rx) = mpsc::channel::<Pending>(BUFFER);
        tokio::spawn(async move {
            tokio_stream_from(rx)
                .for_each_concurrent(WRITERS, |event| {
                    let client = client.clone();
                    async move {
                        let path = format!("/api/v1/namespaces/{}/events", event.namespace);
                        if let Err(err) = post_json(&client, path, event.body).await {
                            tracing::debug!(error = %err, "writing a scheduler event");
                        }
                    }
                })
                .await;
        });
        EventSink { tx }
    }

    /// A FailedScheduling warning about a pod, from its own profile.
    pub fn failed_scheduling(&self, pod: &Arc<PodInfo>, message: String) {
        self.publish(
            &pod.scheduler_name,
            pod,
            "Warning",
            "FailedScheduling",
            message,
        );
    }

    /// Queues an event about a pod from the profile `by`; dropped if the buffer is full.
    pub fn publish(
        &self,
        by: &str,
        pod: &Arc<PodInfo>,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        let now = k8s_openapi::jiff::Timestamp::now();
        let name = format!("{}.{:x}", pod.name, now.as_nanosecond());
        let event = Event {
            metadata: Metadata {
                name: &name,
                namespace: &pod.namespace,
            },
            involved_object: Involved {
                api_version: "v1",
                kind: "Pod",
                namespace: &pod.namespace,
                name: &pod.name,
                uid: &pod.uid,
            },
            reason,
            message: &message,
            type_,
            source: Source { component: by },
            reporting_component: by,
            reporting_instance: by,
            first_timestamp: Time(now),
            last_timestamp: Time(now),
            count: 1,
        };
        if let Ok(body) = serde_json::to_vec(&event) {
            let _ = self.tx.try_send(Pending {
                namespace: pod.namespace.clone(),
                body,
            });
        }
    }
}

/// A core/v1 Event as the scheduler writes it, serialized without building a JSON tree.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    metadata: Metadata<'a>,
    involved_object: Involved<'a>,
    reason: &'a str,
    message: &'a str,
    #[serde(rename = "type")]
    type_: &'a str,
    source: Source<'a>,
    reporting_component: &'a str,
    reporting_instance: &'a str,
    first_timestamp: Time,
    last_timestamp: Time,
    count: i32,
}

#[derive(serde::Serialize)]
struct Metadata<'a> {
    name: &'a str,
    namespace: &'a str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Involved<'a> {
    api_version: &'a str,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
    uid: &'a str,
}

#[derive(serde::Serialize)]
struct Source<'a> {
    component: &'a str,
}

/// POSTs a JSON body to `path` for its side effect: the object or Status the server
/// answers with is not decoded; a refusal comes back as the API error.
pub(crate) async fn post_json(
    client: &kube::Client,
    path: String,
    body: Vec<u8>,
) -> Result<(), kube::Error> {
    let request = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(kube::Error::HttpError)?;
    client.request_text(request).await.map(drop)
}

/// A receiver as a stream.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
