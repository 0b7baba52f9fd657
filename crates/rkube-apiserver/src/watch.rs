//! Watch: a chunked stream of `{"type": …, "object": …}` events from a resource version, with
//! the initial state first when none is given, bookmarks, `timeoutSeconds`, and an `ERROR`
//! event (410) when the version is too old.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Response, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use rkube_api::ApiError;
use rkube_api::registry::ResourceType;
use rkube_store::{WatchEvent, WatchOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::app::{Accept, App, Body};
use crate::filter::ObjectFilter;
use crate::objects::{self, ListParams};
use crate::request::{Query, RequestInfo};

/// How often an idle watch with bookmarks enabled gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

/// The default watch length when the client sets none (upstream: 30 to 60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Encoder {
    rt: &'static ResourceType,
    accept: Accept,
    query: Query,
    lines: Arc<LineMemo>,
}

/// How many encoded events are kept for sharing between watchers.
const MEMO_CAPACITY: usize = 4096;

/// Recently encoded plain-JSON watch lines, shared by watchers: an unfiltered JSON watcher's
/// line for an event depends only on the key, the revision and the event type, so many
/// watchers of one resource decode and encode each event once between them.
#[derive(Default)]
pub(crate) struct LineMemo {
    state: std::sync::Mutex<(HashMap<LineKey, Bytes>, VecDeque<LineKey>)>,
}

/// An event's identity: store key, revision, event type.
type LineKey = (String, i64, &'static str);

impl LineMemo {
    fn get_or(&self, key: LineKey, make: impl FnOnce() -> Option<Bytes>) -> Option<Bytes> {
        if let Some(line) = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .get(&key)
        {
            return Some(line.clone());
        }
        let line = make()?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *state;
        if map.insert(key.clone(), line.clone()).is_none() {
            order.push_back(key);
            while order.len() > MEMO_CAPACITY {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
        Some(line)
    }
}

impl Encoder {
    fn line(&self, kind: &str, object: Value) -> Bytes {
        let object = match self.accept {
            Accept::Table if kind != "BOOKMARK" && kind != "ERROR" => {
                crate::tables::table_value(self.rt, object, &self.query)
            }
            Accept::Metadata if kind != "ERROR" => crate::tables::metadata_value(object),
            _ => object,
        };
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&self, revision: i64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.line(
            "BOOKMARK",
            json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta}),
        )
    }
}

fn error_event(err: &ApiError) -> Value {
    crate::status::status(err)
}

/// Starts a watch and returns the streaming response.
pub async fn serve(
    app: Arc<App>,
    rt: &'static ResourceType,
    info: &RequestInfo,
    query: &Query,
    accept: Accept,
) -> Result<Response<Body>, ApiError> {
    let ns = info.namespace.clone().filter(|_| rt.namespaced);
    let mut filter = app.filter(rt, query)?;
    if let Some(name) = &info.name {
        filter = filter.with_name(name);
    }
    let bookmarks = query.flag("allowWatchBookmarks");
    let send_initial = query
        .optional_bool("sendInitialEvents")
        .map_err(|v| ApiError::BadRequest(format!("invalid sendInitialEvents {v:?}")))?;
    if send_initial.is_some()
        && (query.get("resourceVersionMatch") != Some("NotOlderThan") || !bookmarks)
    {
        return Err(ApiError::Invalid {
            kind: "ListOptions.meta.k8s.io".into(),
            name: String::new(),
            causes: vec![rkube_api::FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is allowed with watch=true, resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true only",
            )],
        });
    }
    let timeout = match query.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    let rv: Option<i64> = match query.get("resourceVersion") {
        None => None,
        Some(v) => Some(
            v.parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {v:?}")))?,
        ),
    };
    // "" and "0" start with the current state (synthetic ADDED events); a specific version
    // starts after it, unless initial events are asked for.
    let with_initial = match (rv, send_initial) {
        (_, Some(initial)) => initial,
        (None | Some(0), None) => true,
        (Some(_), None) => false,
    };
    let encoder = Encoder {
        rt,
        accept,
        query: query.clone(),
        lines: app.watch_lines.clone(),
    };
    let mut initial_lines = Vec::new();
    let start = if with_initial {
        let page = app
            .objects
            .list(rt, ns.as_deref(), &ListParams::default(), &|o| {
                filter.matches(o)
            })
            .await?;
        for object in page.items {
            initial_lines.push(encoder.line("ADDED", object));
        }
        if send_initial == Some(true) {
            initial_lines.push(encoder.bookmark(page.revision, true));
        }
        page.revision + 1
    } else {
        rv.unwrap_or(0) + 1
    };

    let prefix = objects::prefix(rt, ns.as_deref());
    let options = WatchOptions {
        start_revision: start,
        progress_notify: Some(BOOKMARK_EVERY),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    match app.objects.store().watch(&prefix, options).await {
        Ok(stream) => {
            tokio::spawn(pump(
                stream,
                tx,
                initial_lines,
                encoder,
                filter,
                bookmarks,
                timeout,
            ));
        }
        Err(err) => {
            let api = objects::store_error(rt, "", err);
            let _ = tx.try_send(encoder.line("ERROR", error_event(&api)));
        }
    }
    let body = StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    }));
    let mut response = Response::new(body.boxed_unsync());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

async fn pump(
    mut stream: rkube_store::WatchStream,
    tx: mpsc::Sender<Bytes>,
    initial: Vec<Bytes>,
    encoder: Encoder,
    filter: ObjectFilter,
    bookmarks: bool,
    timeout: Duration,
) {
    for line in initial {
        if tx.send(line).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        let event = tokio::select! {
            _ = &mut deadline => return,
            _ = tx.closed() => return,
            event = stream.next() => event,
        };
        let line = match event {
            None => return,
            Some(Err(err)) => {
                let api = objects::store_error(encoder.rt, "", err);
                let _ = tx.send(encoder.line("ERROR", error_event(&api))).await;
                return;
            }
            Some(Ok(event)) => match translate(&encoder, &filter, event, bookmarks) {
                Some(line) => line,
                None => continue,
            },
        };
        if tx.send(line).await.is_err() {
            return;
        }
    }
}

/// One store event as a watch event, honouring the filter: an object that starts matching is
/// ADDED, one that stops matching is DELETED, as upstream's watch cache reports them.
fn translate(
    encoder: &Encoder,
    filter: &ObjectFilter,
    event: WatchEvent,
    bookmarks: bool,
) -> Option<Bytes> {
    let decode = |kv: &rkube_store::KeyValue| objects::decode(kv).ok();
    if filter.is_empty() && encoder.accept == Accept::Json {
        return match event {
            WatchEvent::Progress { revision } => {
                bookmarks.then(|| encoder.bookmark(revision, false))
            }
            WatchEvent::Put { kv, prev } => {
                let kind = if prev.is_some() { "MODIFIED" } else { "ADDED" };
                encoder
                    .lines
                    .get_or((kv.key.clone(), kv.mod_revision, kind), || {
                        Some(encoder.line(kind, decode(&kv)?))
                    })
            }
            WatchEvent::Delete {
                key,
                revision,
                prev,
            } => encoder.lines.get_or((key, revision, "DELETED"), || {
                let mut object = prev.as_ref().and_then(decode)?;
                objects::set_resource_version(&mut object, revision);
                Some(encoder.line("DELETED", object))
            }),
        };
    }
    match event {
        WatchEvent::Progress { revision } => bookmarks.then(|| encoder.bookmark(revision, false)),
        WatchEvent::Put { kv, prev } => {
            let object = decode(&kv)?;
            let now = filter.matches(&object);
            let before = prev.as_ref().and_then(decode).map(|p| filter.matches(&p));
            let kind = match (now, before) {
                (true, Some(true)) => "MODIFIED",
                (true, _) => "ADDED",
                (false, Some(true)) => "DELETED",
                (false, _) => return None,
            };
            Some(encoder.line(kind, object))
        }
        WatchEvent::Delete { revision, prev, .. } => {
            let mut object = prev.as_ref().and_then(decode)?;
            if !filter.matches(&object) {
                return None;
            }
            objects::set_resource_version(&mut object, revision);
            Some(encoder.line("DELETED", object))
        }
    }
}
