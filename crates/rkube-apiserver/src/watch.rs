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

use crate::app::App;
use crate::cache::{CachedEvent, CachedObject, EventKind, Freshness, ResourceCache, WatchCache};
use crate::encode::{Accept, Body};
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
        if self.accept == Accept::Protobuf {
            let object = self.served(kind, object);
            // Length-prefixed metav1.WatchEvent frames, as upstream's protobuf stream
            // serializer writes them; an object without a protobuf form becomes an error.
            return match rkube_proto::encode_watch_event(kind, &object) {
                Ok(frame) => Bytes::from(frame),
                Err(err) => {
                    let status = error_event(&ApiError::Internal(format!(
                        "encoding a watch event as protobuf: {err}"
                    )));
                    Bytes::from(
                        rkube_proto::encode_watch_event("ERROR", &status).unwrap_or_default(),
                    )
                }
            };
        }
        let object = match self.accept {
            Accept::Table if kind != "BOOKMARK" && kind != "ERROR" => {
                // Rows are computed from the stored form, whatever version is watched.
                let stored = rkube_api::registry::all().storage_of(self.rt);
                crate::tables::table_value(stored, object, &self.query)
            }
            Accept::Metadata if kind != "ERROR" => crate::tables::metadata_value(object),
            _ => self.served(kind, object),
        };
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    /// An event's object in the version watched: a stored object is converted when that
    /// version is served from another one's storage (an error event is left as it is).
    fn served(&self, kind: &str, object: Value) -> Value {
        match self.rt.conversion {
            Some(conversion) if kind != "ERROR" && kind != "BOOKMARK" => {
                (conversion.from_storage)(object).unwrap_or_else(|err| crate::status::status(&err))
            }
            _ => object,
        }
    }

    /// The event line of a cached object, stamped with `revision`: plain JSON is spliced
    /// from the stored bytes, other formats go through the parsed object.
    fn cached_line(&self, kind: &str, object: &CachedObject, revision: i64) -> Option<Bytes> {
        if self.accept == Accept::Json && self.rt.conversion.is_none() {
            let mut line = Vec::with_capacity(object.value.len() + 64);
            line.extend_from_slice(b"{\"type\":\"");
            line.extend_from_slice(kind.as_bytes());
            line.extend_from_slice(b"\",\"object\":");
            object.write_json(&mut line, revision, false).ok()?;
            line.extend_from_slice(b"}\n");
            return Some(Bytes::from(line));
        }
        Some(self.line(kind, object.to_value(revision).ok()?))
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
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let freshness = match rv {
        None => Freshness::Consistent,
        Some(n) if n > 0 && with_initial => Freshness::NotOlderThan(n),
        Some(_) => Freshness::Any,
    };
    if let Some(resource) = app.cache.ready_for(rt, freshness).await? {
        let watch = CachedWatch {
            cache: app.cache.clone(),
            resource: resource.clone(),
            generation: app.cache.generation(),
            namespace: ns.map(|ns| format!("{ns}/")),
            encoder,
            filter,
            bookmarks,
        };
        let start = if with_initial {
            Start::Initial {
                end_bookmark: send_initial == Some(true),
            }
        } else {
            match rv {
                Some(rv) if rv > 0 => Start::After(rv),
                _ => Start::Latest,
            }
        };
        tokio::spawn(watch.pump(start, tx, timeout));
        return Ok(stream_response(rx, accept));
    }
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
    Ok(stream_response(rx, accept))
}

fn stream_response(rx: mpsc::Receiver<Bytes>, accept: Accept) -> Response<Body> {
    let body = StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    }));
    let mut response = Response::new(body.boxed_unsync());
    let media = if accept == Accept::Protobuf {
        "application/vnd.kubernetes.protobuf;stream=watch"
    } else {
        "application/json"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    response
}

/// Where a watch served from the cache begins.
enum Start {
    /// With the current objects as ADDED events (and the initial-events-end bookmark).
    Initial { end_bookmark: bool },
    /// With the events after this revision.
    After(i64),
    /// With the events from now on.
    Latest,
}

/// How many window events a watcher takes per turn of its read lock.
const EVENTS_PER_TURN: usize = 256;

/// A watch served from the watch cache.
struct CachedWatch {
    cache: Arc<WatchCache>,
    resource: Arc<ResourceCache>,
    generation: u64,
    /// `namespace/` when the watch is in one namespace.
    namespace: Option<String>,
    encoder: Encoder,
    filter: ObjectFilter,
    bookmarks: bool,
}

impl CachedWatch {
    fn in_scope(&self, object: &CachedObject) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| object.key.starts_with(ns))
    }

    /// The state at the start: the initial objects and the revision they reflect, or an
    /// error event when the requested revision has left the window.
    fn begin(&self, start: &Start) -> Result<(Vec<Arc<CachedObject>>, i64), ApiError> {
        let state = self.resource.read();
        let revision = state.revision(self.cache.seen());
        match *start {
            Start::Initial { .. } => {
                let objects = state
                    .objects
                    .values()
                    .filter(|o| self.in_scope(o) && self.filter.matches_cached(o))
                    .cloned()
                    .collect();
                Ok((objects, revision))
            }
            Start::After(rv) if rv < state.floor => Err(ApiError::Gone(format!(
                "too old resource version: {rv} ({})",
                state.floor
            ))),
            Start::After(rv) => Ok((Vec::new(), rv)),
            Start::Latest => Ok((Vec::new(), revision)),
        }
    }

    /// The store's compaction point still bounds how far back a watch may start, as it does
    /// for watches served by the store.
    async fn check_compacted(&self, start: &Start) -> Result<(), ApiError> {
        if let Start::After(rv) = *start {
            let compacted = self.cache.store().compact_revision().await.unwrap_or(0);
            if rv < compacted {
                return Err(ApiError::Gone(format!(
                    "too old resource version: {rv} ({compacted})"
                )));
            }
        }
        Ok(())
    }

    async fn pump(self, start: Start, tx: mpsc::Sender<Bytes>, timeout: Duration) {
        let begun = match self.check_compacted(&start).await {
            Ok(()) => self.begin(&start),
            Err(err) => Err(err),
        };
        let mut position = match begun {
            Ok((objects, revision)) => {
                for object in objects {
                    let Some(line) = self.encoder.cached_line("ADDED", &object, object.revision)
                    else {
                        continue;
                    };
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
                if let Start::Initial { end_bookmark: true } = start
                    && tx
                        .send(self.encoder.bookmark(revision, true))
                        .await
                        .is_err()
                {
                    return;
                }
                revision
            }
            Err(err) => {
                let _ = tx.send(self.encoder.line("ERROR", error_event(&err))).await;
                return;
            }
        };
        let mut changed = self.resource.subscribe();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        loop {
            changed.borrow_and_update();
            let (events, revision) = {
                let state = self.resource.read();
                if state.generation != self.generation {
                    // The cache reloaded: end the watch; the client watches again.
                    return;
                }
                let revision = state.revision(self.cache.seen());
                match state.events_after(position, EVENTS_PER_TURN) {
                    Some(events) => (events, revision),
                    // The watcher fell behind the window; like upstream, it is closed.
                    None => return,
                }
            };
            let full = events.len() == EVENTS_PER_TURN;
            position = match (full, events.last()) {
                (true, Some(last)) => last.revision,
                _ => position.max(revision),
            };
            for event in &events {
                if let Some(line) = self.translate(event)
                    && tx.send(line).await.is_err()
                {
                    return;
                }
            }
            if full {
                continue;
            }
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                result = changed.changed() => {
                    if result.is_err() {
                        return;
                    }
                }
                _ = ticks.tick() => {
                    if self.bookmarks && tx.send(self.encoder.bookmark(position, false)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// One window event for this watcher, as [`translate`] does for store events.
    fn translate(&self, event: &CachedEvent) -> Option<Bytes> {
        if !self.in_scope(&event.object) {
            return None;
        }
        let name = match event.kind {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        };
        if self.filter.is_empty() && self.encoder.accept == Accept::Json {
            return event.json_line(|| {
                self.encoder
                    .cached_line(name, &event.object, event.revision)
            });
        }
        let kind = match event.kind {
            EventKind::Deleted => {
                if !self.filter.matches_cached(&event.object) {
                    return None;
                }
                "DELETED"
            }
            EventKind::Added | EventKind::Modified => {
                let now = self.filter.matches_cached(&event.object);
                let before = event.prev.as_ref().map(|p| self.filter.matches_cached(p));
                match (now, before) {
                    (true, Some(true)) => "MODIFIED",
                    (true, _) => "ADDED",
                    (false, Some(true)) => "DELETED",
                    (false, _) => return None,
                }
            }
        };
        self.encoder
            .cached_line(kind, &event.object, event.revision)
    }
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
    // Lines are shared between watchers of the stored form only.
    if filter.is_empty() && encoder.accept == Accept::Json && encoder.rt.conversion.is_none() {
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
