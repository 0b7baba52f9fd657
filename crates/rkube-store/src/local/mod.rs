//! The machinery shared by the backends that keep data in this process (sqlite and memory).
//!
//! Writes go through one writer thread. It takes every request waiting in its queue, applies
//! them in one transaction and makes that transaction durable once, so concurrent writers share
//! the cost of a sync (group commit). The semantics of each write live here, in [`apply`], once;
//! a backend only says how to read and change its rows ([`Txn`]) and how to read history
//! ([`Engine`]).

mod watch;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::types::{
    KeyValue, LeaseId, ListOptions, ListResult, Revision, WatchEvent, WatchOptions, WatchStream,
    check_value, ttl_seconds,
};
pub(crate) use watch::Hub;

/// The most requests one transaction takes.
const MAX_BATCH: usize = 2048;
/// A batch smaller than this waits for one yield of the writer's core before it commits:
/// on a busy machine the threads about to write are often the ones waiting for that core,
/// so the commit takes them too (fewer, larger commits and syncs: a third as many in the
/// scheduler benchmark). With nothing else to run the yield returns at once.
const SMALL_BATCH: usize = 32;

/// How often expired leases are looked for.
const LEASE_SWEEP: Duration = Duration::from_millis(250);

/// One write, as queued for the writer.
#[derive(Debug)]
pub(crate) enum WriteOp {
    Create {
        key: String,
        value: Bytes,
        lease: Option<LeaseId>,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    GrantLease {
        ttl_seconds: i64,
        now_ms: i64,
    },
    RevokeLease {
        id: LeaseId,
    },
    Compact {
        revision: Revision,
    },
}

/// What a successful write returns.
#[derive(Debug)]
pub(crate) enum WriteDone {
    Revision(Revision),
    Deleted(Revision, KeyValue),
    Lease(LeaseId),
    Done,
}

/// The rows a write transaction reads and changes. Every method works inside the one open
/// transaction; nothing is visible to readers until the engine commits it.
pub(crate) trait Txn {
    /// The current value of `key`.
    fn current(&mut self, key: &str) -> Result<Option<KeyValue>>;
    /// Records `kv` (revisions already assigned) as the key's newest version.
    fn put(&mut self, kv: &KeyValue, prev: Option<&KeyValue>) -> Result<()>;
    /// Records the deletion of `prev.key` at `revision`.
    fn delete(&mut self, revision: Revision, prev: &KeyValue) -> Result<()>;
    fn lease_exists(&mut self, id: LeaseId) -> Result<bool>;
    fn grant_lease(&mut self, ttl_seconds: i64, expires_at_ms: i64) -> Result<LeaseId>;
    /// The keys currently bound to `id`.
    fn lease_keys(&mut self, id: LeaseId) -> Result<Vec<KeyValue>>;
    /// Forgets lease `id`; false if there was none.
    fn remove_lease(&mut self, id: LeaseId) -> Result<bool>;
    fn compact_revision(&mut self) -> Result<Revision>;
    /// Drops history below `to`, given that everything below `from` was dropped before:
    /// every version superseded below `to` and every deletion below `to` goes, so reads at
    /// `to` and later, and watches from `to` (with their previous values), still work.
    fn compact(&mut self, from: Revision, to: Revision) -> Result<()>;
}

/// The outcome of one transaction.
pub(crate) struct Batch {
    pub results: Vec<Result<WriteDone>>,
    pub events: Vec<WatchEvent>,
    pub revision: Revision,
}

/// Applies `ops` in order on `txn`, starting from `revision`. A write that fails its own
/// preconditions gets its error and changes nothing; the others go on. An `Err` from this
/// function means the storage itself failed and the transaction must be rolled back.
pub(crate) fn apply(
    txn: &mut impl Txn,
    mut revision: Revision,
    ops: Vec<WriteOp>,
) -> Result<Batch> {
    let mut results = Vec::with_capacity(ops.len());
    let mut events = Vec::new();
    for op in ops {
        let result = match op {
            WriteOp::Create { key, value, lease } => {
                if let Some(err) = missing_lease(txn, lease)? {
                    Err(err)
                } else if txn.current(&key)?.is_some() {
                    Err(Error::AlreadyExists { key })
                } else {
                    revision += 1;
                    let kv = KeyValue {
                        key,
                        value,
                        create_revision: revision,
                        mod_revision: revision,
                        lease,
                    };
                    txn.put(&kv, None)?;
                    events.push(WatchEvent::Put { kv, prev: None });
                    Ok(WriteDone::Revision(revision))
                }
            }
            WriteOp::Update {
                key,
                value,
                expected,
                lease,
            } => {
                if let Some(err) = missing_lease(txn, lease)? {
                    Err(err)
                } else {
                    match txn.current(&key)? {
                        None => Err(Error::NotFound { key }),
                        Some(cur) if cur.mod_revision != expected => Err(Error::Conflict {
                            key,
                            expected,
                            current: Some(Box::new(cur)),
                        }),
                        Some(cur) => {
                            revision += 1;
                            let kv = KeyValue {
                                key,
                                value,
                                create_revision: cur.create_revision,
                                mod_revision: revision,
                                lease,
                            };
                            txn.put(&kv, Some(&cur))?;
                            events.push(WatchEvent::Put {
                                kv,
                                prev: Some(cur),
                            });
                            Ok(WriteDone::Revision(revision))
                        }
                    }
                }
            }
            WriteOp::Delete { key, expected } => match txn.current(&key)? {
                None => Err(Error::NotFound { key }),
                Some(cur) if expected.is_some_and(|e| e != cur.mod_revision) => {
                    Err(Error::Conflict {
                        key,
                        expected: expected.unwrap_or_default(),
                        current: Some(Box::new(cur)),
                    })
                }
                Some(cur) => {
                    revision += 1;
                    txn.delete(revision, &cur)?;
                    events.push(WatchEvent::Delete {
                        key,
                        revision,
                        prev: Some(cur.clone()),
                    });
                    Ok(WriteDone::Deleted(revision, cur))
                }
            },
            WriteOp::GrantLease {
                ttl_seconds,
                now_ms,
            } => txn
                .grant_lease(ttl_seconds, now_ms + ttl_seconds * 1000)
                .map(WriteDone::Lease),
            WriteOp::RevokeLease { id } => {
                let keys = txn.lease_keys(id)?;
                if !txn.remove_lease(id)? {
                    Err(Error::LeaseNotFound(id))
                } else {
                    // One revision per deleted key, so every event has a revision of its own.
                    for cur in keys {
                        revision += 1;
                        txn.delete(revision, &cur)?;
                        events.push(WatchEvent::Delete {
                            key: cur.key.clone(),
                            revision,
                            prev: Some(cur),
                        });
                    }
                    Ok(WriteDone::Done)
                }
            }
            WriteOp::Compact { revision: to } => {
                let from = txn.compact_revision()?;
                if to <= from {
                    Err(Error::Compacted {
                        requested: to,
                        compacted: from,
                    })
                } else if to > revision {
                    Err(Error::FutureRevision {
                        requested: to,
                        current: revision,
                    })
                } else {
                    txn.compact(from, to)?;
                    Ok(WriteDone::Done)
                }
            }
        };
        results.push(result);
    }
    Ok(Batch {
        results,
        events,
        revision,
    })
}

fn missing_lease(txn: &mut impl Txn, lease: Option<LeaseId>) -> Result<Option<Error>> {
    match lease {
        Some(id) if !txn.lease_exists(id)? => Ok(Some(Error::LeaseNotFound(id))),
        _ => Ok(None),
    }
}

/// A backend that keeps its data in this process.
pub(crate) trait Engine: Send + Sync + 'static {
    /// Applies `ops` in one durable transaction (see [`apply`]). Only the writer thread calls
    /// it, so calls never overlap.
    fn write(&self, ops: Vec<WriteOp>) -> Result<Batch>;
    /// The revision of the last commit, from memory: it must not wait on I/O.
    fn current_revision(&self) -> Result<Revision>;
    fn compact_revision(&self) -> Result<Revision>;
    fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>>;
    fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListResult>;
    /// Up to `limit` events under `prefix` with `start <= revision <= end`, in order.
    /// [`Error::Compacted`] unless `start` lies after the compaction point.
    fn events(
        &self,
        prefix: &str,
        start: Revision,
        end: Revision,
        limit: usize,
    ) -> Result<Vec<WatchEvent>>;
    /// Leases whose expiry time is at or before `now_ms`.
    fn expired_leases(&self, now_ms: i64) -> Result<Vec<LeaseId>>;
}

struct WriteRequest {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteDone>>,
}

/// A [`crate::Store`] over an [`Engine`].
pub(crate) struct LocalStore<E: Engine> {
    engine: Arc<E>,
    hub: Arc<Hub>,
    writer: mpsc::UnboundedSender<WriteRequest>,
}

impl<E: Engine> LocalStore<E> {
    /// Starts the writer thread and the lease sweeper. Must be called inside a tokio runtime.
    pub(crate) fn start(engine: E, name: &str) -> Result<Self> {
        let engine = Arc::new(engine);
        let hub = Arc::new(Hub::new(engine.current_revision()?));
        let (writer, queue) = mpsc::unbounded_channel();
        {
            let engine = engine.clone();
            let hub = hub.clone();
            std::thread::Builder::new()
                .name(format!("{name}-writer"))
                .spawn(move || writer_loop(&*engine, &hub, queue))
                .map_err(|e| Error::Internal(format!("starting the writer thread: {e}")))?;
        }
        tokio::spawn(sweep_leases(engine.clone(), writer.downgrade()));
        Ok(Self {
            engine,
            hub,
            writer,
        })
    }

    async fn submit(&self, op: WriteOp) -> Result<WriteDone> {
        let (reply, done) = oneshot::channel();
        self.writer
            .send(WriteRequest { op, reply })
            .map_err(|_| Error::Closed)?;
        done.await.map_err(|_| Error::Closed)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&E) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| Error::Internal(format!("read task failed: {e}")))?
    }
}

fn writer_loop<E: Engine>(engine: &E, hub: &Hub, mut queue: mpsc::UnboundedReceiver<WriteRequest>) {
    let mut ops = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        ops.push(first.op);
        replies.push(first.reply);
        let mut yielded = false;
        while ops.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => {
                    ops.push(next.op);
                    replies.push(next.reply);
                }
                Err(_) if ops.len() < SMALL_BATCH && !yielded => {
                    yielded = true;
                    std::thread::yield_now();
                }
                Err(_) => break,
            }
        }
        match engine.write(std::mem::take(&mut ops)) {
            Ok(batch) => {
                // Publish before acknowledging: a writer that watches after its write returns
                // must find the hub at or past its revision.
                hub.publish(batch.revision, batch.events);
                for (reply, result) in replies.drain(..).zip(batch.results) {
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "store write transaction failed");
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(err.duplicate()));
                }
            }
        }
    }
}

async fn sweep_leases<E: Engine>(engine: Arc<E>, writer: mpsc::WeakUnboundedSender<WriteRequest>) {
    let mut tick = tokio::time::interval(LEASE_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(writer) = writer.upgrade() else {
            return;
        };
        let engine = engine.clone();
        let expired = tokio::task::spawn_blocking(move || engine.expired_leases(now_ms())).await;
        match expired {
            Ok(Ok(ids)) => {
                for id in ids {
                    // The reply is not awaited: a lease revoked meanwhile is simply not found.
                    let (reply, _) = oneshot::channel();
                    let _ = writer.send(WriteRequest {
                        op: WriteOp::RevokeLease { id },
                        reply,
                    });
                }
            }
            Ok(Err(err)) => tracing::warn!(error = %err, "looking for expired leases"),
            Err(err) => tracing::warn!(error = %err, "lease sweep task failed"),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn unexpected(done: WriteDone) -> Error {
    Error::Internal(format!(
        "writer answered with an unexpected result: {done:?}"
    ))
}

#[async_trait]
impl<E: Engine> crate::Store for LocalStore<E> {
    async fn current_revision(&self) -> Result<Revision> {
        // Engines answer this from memory, so it runs here rather than on a blocking thread.
        self.engine.current_revision()
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.read(move |e| e.get(&key, revision)).await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        let prefix = prefix.to_owned();
        self.read(move |e| e.list(&prefix, &options)).await
    }

    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        check_value(key, &value)?;
        let op = WriteOp::Create {
            key: key.to_owned(),
            value: value.into(),
            lease,
        };
        match self.submit(op).await? {
            WriteDone::Revision(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_revision: Revision,
        lease: Option<LeaseId>,
    ) -> Result<Revision> {
        check_value(key, &value)?;
        let op = WriteOp::Update {
            key: key.to_owned(),
            value: value.into(),
            expected: expected_revision,
            lease,
        };
        match self.submit(op).await? {
            WriteDone::Revision(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<Revision>,
    ) -> Result<(Revision, KeyValue)> {
        let op = WriteOp::Delete {
            key: key.to_owned(),
            expected: expected_revision,
        };
        match self.submit(op).await? {
            WriteDone::Deleted(r, kv) => Ok((r, kv)),
            other => Err(unexpected(other)),
        }
    }

    async fn watch(&self, prefix: &str, options: WatchOptions) -> Result<WatchStream> {
        let engine = self.engine.clone();
        let compacted = self.read(|e| e.compact_revision()).await?;
        if options.start_revision > 0 && options.start_revision <= compacted {
            return Err(Error::Compacted {
                requested: options.start_revision,
                compacted,
            });
        }
        Ok(watch::stream(engine, self.hub.clone(), prefix, options))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.submit(WriteOp::Compact { revision }).await.map(|_| ())
    }

    async fn compact_revision(&self) -> Result<Revision> {
        self.read(|e| e.compact_revision()).await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let op = WriteOp::GrantLease {
            ttl_seconds: ttl_seconds(ttl),
            now_ms: now_ms(),
        };
        match self.submit(op).await? {
            WriteDone::Lease(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.submit(WriteOp::RevokeLease { id: lease })
            .await
            .map(|_| ())
    }
}

/// Implements [`crate::Store`] for a public wrapper around a [`LocalStore`] in field `inner`.
macro_rules! delegate_store {
    ($wrapper:ty) => {
        #[async_trait::async_trait]
        impl crate::Store for $wrapper {
            async fn current_revision(&self) -> crate::Result<crate::Revision> {
                crate::Store::current_revision(&self.inner).await
            }
            async fn get(
                &self,
                key: &str,
                revision: Option<crate::Revision>,
            ) -> crate::Result<Option<crate::KeyValue>> {
                crate::Store::get(&self.inner, key, revision).await
            }
            async fn list(
                &self,
                prefix: &str,
                options: crate::ListOptions,
            ) -> crate::Result<crate::ListResult> {
                crate::Store::list(&self.inner, prefix, options).await
            }
            async fn create(
                &self,
                key: &str,
                value: Vec<u8>,
                lease: Option<crate::LeaseId>,
            ) -> crate::Result<crate::Revision> {
                crate::Store::create(&self.inner, key, value, lease).await
            }
            async fn update(
                &self,
                key: &str,
                value: Vec<u8>,
                expected_revision: crate::Revision,
                lease: Option<crate::LeaseId>,
            ) -> crate::Result<crate::Revision> {
                crate::Store::update(&self.inner, key, value, expected_revision, lease).await
            }
            async fn delete(
                &self,
                key: &str,
                expected_revision: Option<crate::Revision>,
            ) -> crate::Result<(crate::Revision, crate::KeyValue)> {
                crate::Store::delete(&self.inner, key, expected_revision).await
            }
            async fn watch(
                &self,
                prefix: &str,
                options: crate::WatchOptions,
            ) -> crate::Result<crate::WatchStream> {
                crate::Store::watch(&self.inner, prefix, options).await
            }
            async fn compact(&self, revision: crate::Revision) -> crate::Result<()> {
                crate::Store::compact(&self.inner, revision).await
            }
            async fn compact_revision(&self) -> crate::Result<crate::Revision> {
                crate::Store::compact_revision(&self.inner).await
            }
            async fn grant_lease(&self, ttl: std::time::Duration) -> crate::Result<crate::LeaseId> {
                crate::Store::grant_lease(&self.inner, ttl).await
            }
            async fn revoke_lease(&self, lease: crate::LeaseId) -> crate::Result<()> {
                crate::Store::revoke_lease(&self.inner, lease).await
            }
        }
    };
}
pub(crate) use delegate_store;
