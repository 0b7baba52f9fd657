//! Watches for the local backends: history replayed from the engine, then live events from the
//! hub the writer publishes to.
//!
//! No gaps, no duplicates: a watcher subscribes to the hub and, under the hub's lock, learns the
//! last revision published. Everything up to that revision is committed and is replayed from the
//! engine; everything after it arrives through the subscription.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;

use super::Engine;
use crate::error::{Error, Result};
use crate::types::{Revision, WatchEvent, WatchOptions, WatchStream, prefix_end};

/// How many events one replay read fetches.
const REPLAY_CHUNK: usize = 1000;

type EventBatch = Arc<[WatchEvent]>;

/// A key range `[prefix, end)`.
#[derive(Clone, Debug)]
struct KeyRange {
    prefix: String,
    end: Option<String>,
}

impl KeyRange {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            end: prefix_end(prefix),
        }
    }

    fn contains(&self, key: &str) -> bool {
        key >= self.prefix.as_str() && self.end.as_deref().is_none_or(|end| key < end)
    }
}

struct Subscriber {
    range: KeyRange,
    events: mpsc::UnboundedSender<EventBatch>,
}

struct HubState {
    revision: Revision,
    subscribers: Vec<Subscriber>,
}

/// Fans committed events out to live watchers.
pub(crate) struct Hub {
    state: Mutex<HubState>,
}

impl Hub {
    pub(crate) fn new(revision: Revision) -> Self {
        Self {
            state: Mutex::new(HubState {
                revision,
                subscribers: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding this lock cannot leave the state half-changed (each change is
        // one assignment or one Vec operation), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes the events of one committed transaction, which left the store at `revision`.
    /// Called by the writer only, in commit order.
    pub(crate) fn publish(&self, revision: Revision, events: Vec<WatchEvent>) {
        let mut state = self.lock();
        state.revision = revision;
        if events.is_empty() {
            return;
        }
        let batch: EventBatch = events.into();
        state.subscribers.retain(|s| {
            if batch
                .iter()
                .any(|e| e.key().is_some_and(|k| s.range.contains(k)))
            {
                s.events.send(batch.clone()).is_ok()
            } else {
                !s.events.is_closed()
            }
        });
    }

    /// The last revision published.
    pub(crate) fn revision(&self) -> Revision {
        self.lock().revision
    }

    /// Subscribes to events under `range`; returns the revision after which they start.
    fn subscribe(&self, range: KeyRange) -> (Revision, mpsc::UnboundedReceiver<EventBatch>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = self.lock();
        state.subscribers.push(Subscriber { range, events: tx });
        (state.revision, rx)
    }
}

/// One watcher's state.
struct LocalWatch<E: Engine> {
    engine: Arc<E>,
    hub: Arc<Hub>,
    range: KeyRange,
    /// The lowest revision still to deliver.
    next: Revision,
    /// Revisions up to here come from the engine, later ones from the hub.
    replay_until: Revision,
    live: mpsc::UnboundedReceiver<EventBatch>,
    ready: VecDeque<WatchEvent>,
    progress_every: Option<Duration>,
    finished: bool,
}

pub(crate) fn stream<E: Engine>(
    engine: Arc<E>,
    hub: Arc<Hub>,
    prefix: &str,
    options: WatchOptions,
) -> WatchStream {
    let range = KeyRange::new(prefix);
    let (published, live) = hub.subscribe(range.clone());
    let next = if options.start_revision > 0 {
        options.start_revision
    } else {
        published + 1
    };
    let watch = LocalWatch {
        engine,
        hub,
        range,
        next,
        replay_until: published,
        live,
        ready: VecDeque::new(),
        progress_every: options.progress_notify,
        finished: false,
    };
    Box::pin(futures::stream::unfold(watch, |mut w| async move {
        let item = w.next_event().await?;
        Some((item, w))
    }))
}

impl<E: Engine> LocalWatch<E> {
    async fn next_event(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if self.next <= self.replay_until {
                if let Err(err) = self.replay_chunk().await {
                    self.finished = true;
                    return Some(Err(err));
                }
                continue;
            }
            let received = match self.progress_every {
                Some(every) => match tokio::time::timeout(every, self.live.recv()).await {
                    Ok(received) => received,
                    Err(_) => {
                        if let Some(progress) = self.progress() {
                            return Some(Ok(progress));
                        }
                        continue;
                    }
                },
                None => self.live.recv().await,
            };
            let Some(batch) = received else {
                self.finished = true;
                return Some(Err(Error::Closed));
            };
            for event in batch.iter() {
                if event.revision() >= self.next
                    && event.key().is_some_and(|k| self.range.contains(k))
                {
                    self.ready.push_back(event.clone());
                }
            }
        }
    }

    async fn replay_chunk(&mut self) -> Result<()> {
        let engine = self.engine.clone();
        let (prefix, start, end) = (self.range.prefix.clone(), self.next, self.replay_until);
        let events =
            tokio::task::spawn_blocking(move || engine.events(&prefix, start, end, REPLAY_CHUNK))
                .await
                .map_err(|e| Error::Internal(format!("watch replay task failed: {e}")))??;
        self.next = match events.last() {
            Some(last) if events.len() == REPLAY_CHUNK => last.revision() + 1,
            _ => end + 1,
        };
        self.ready.extend(events);
        Ok(())
    }

    /// A progress notification, if nothing is waiting: the hub's revision, read first, vouches
    /// that every event up to it has been queued to us, so an empty queue means all delivered.
    fn progress(&self) -> Option<WatchEvent> {
        let revision = self.hub.revision();
        self.live
            .is_empty()
            .then_some(WatchEvent::Progress { revision })
    }
}
