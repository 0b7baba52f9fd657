//! The etcd backend: the etcd v3 API, so several rkube servers can share one etcd cluster.
//!
//! Revisions are etcd's own. Compare-and-swap is an etcd transaction on the key's
//! `create_revision` / `mod_revision`. Watches survive a lost connection: they resume from the
//! revision after the last one delivered, so a consumer sees no gap and no duplicate.
//!
//! etcd does not say where it was compacted, so [`Store::compact`] records the compaction
//! point under [`COMPACT_KEY`] (as the Kubernetes API server does); that write takes a revision.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, PutOptions,
    Txn, TxnOp, TxnOpResponse, WatchOptions as EtcdWatchOptions,
};
use tokio::sync::mpsc;
use tonic::Code;

use crate::Store;
use crate::error::{Error, Result};
use crate::types::{
    KeyValue, LeaseId, ListOptions, ListResult, Revision, WatchEvent, WatchOptions, WatchStream,
    check_value, list_range, ttl_seconds,
};

/// The key that records the last compaction point.
pub const COMPACT_KEY: &str = "/rkube/compact_revision";

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// How long one request may take before it is [`Error::Unavailable`].
    pub request_timeout: Duration,
    /// How long a watch keeps trying to resume after losing etcd before it gives up.
    pub watch_retry_for: Duration,
}

impl EtcdConfig {
    /// The defaults for these endpoints.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            request_timeout: Duration::from_secs(5),
            watch_retry_for: Duration::from_secs(60),
        }
    }
}

/// The store on a real etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    config: EtcdConfig,
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable {
        message: e.to_string(),
    }
}

/// Whether a status message is the client's report of a broken or refused connection.
fn is_connection_failure(message: &str) -> bool {
    [
        "transport error",
        "connection",
        "broken pipe",
        "h2 protocol error",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// Maps an etcd client error to the store's errors by the messages etcd documents.
fn map_error(err: etcd_client::Error) -> Error {
    match err {
        etcd_client::Error::GRpcStatus(status) => {
            let message = status.message();
            if message.contains("required revision has been compacted") {
                Error::Compacted {
                    requested: 0,
                    compacted: 0,
                }
            } else if message.contains("required revision is a future revision") {
                Error::FutureRevision {
                    requested: 0,
                    current: 0,
                }
            } else if message.contains("requested lease not found") {
                Error::LeaseNotFound(0)
            } else if message.contains("request is too large") {
                Error::ValueTooLarge {
                    key: String::new(),
                    size: 0,
                    limit: crate::MAX_VALUE_SIZE,
                }
            } else {
                match status.code() {
                    Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                        unavailable(message)
                    }
                    // A connection that breaks while a request is in flight surfaces as
                    // status Unknown carrying the transport's own error.
                    Code::Unknown if is_connection_failure(message) => unavailable(message),
                    _ => Error::Internal(format!("etcd: {message}")),
                }
            }
        }
        etcd_client::Error::TransportError(e) => unavailable(e),
        etcd_client::Error::IoError(e) => unavailable(e),
        etcd_client::Error::WatchError(e) => unavailable(e),
        other => Error::Internal(format!("etcd: {other}")),
    }
}

fn key_value(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: String::from_utf8(kv.key().to_vec())
            .map_err(|_| Error::Internal("etcd returned a key that is not UTF-8".to_owned()))?,
        value: kv.value().to_vec().into(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        lease: Some(kv.lease()).filter(|l| *l != 0),
    })
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| Error::Internal("etcd answered without a header".to_owned()))
}

impl EtcdStore {
    /// Connects and checks that etcd answers ([`Error::Unavailable`] if it does not). Once
    /// connected, the client reconnects by itself when etcd comes back after an outage.
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        let options = ConnectOptions::new()
            .with_connect_timeout(config.request_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(map_error)?;
        let store = Self { client, config };
        store.current_revision().await?;
        Ok(store)
    }

    /// Runs one etcd call under the request timeout.
    async fn call<T, F>(&self, f: impl FnOnce(Client) -> F) -> Result<T>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        match tokio::time::timeout(self.config.request_timeout, f(self.client.clone())).await {
            Ok(result) => result.map_err(map_error),
            Err(_) => Err(unavailable(format!(
                "etcd at {} did not answer within {:?}",
                self.config.endpoints.join(","),
                self.config.request_timeout
            ))),
        }
    }

    /// Fills in the revisions etcd leaves out of its compaction and future-revision errors.
    async fn explain(&self, err: Error, requested: Revision) -> Error {
        match err {
            Error::Compacted { .. } => Error::Compacted {
                requested,
                compacted: self.compact_revision().await.unwrap_or_default(),
            },
            Error::FutureRevision { .. } => Error::FutureRevision {
                requested,
                current: self.current_revision().await.unwrap_or_default(),
            },
            other => other,
        }
    }

    /// The current value of `key`, for the error of a failed compare-and-swap.
    fn current_in(responses: &[TxnOpResponse]) -> Result<Option<KeyValue>> {
        match responses.first() {
            Some(TxnOpResponse::Get(get)) => get.kvs().first().map(key_value).transpose(),
            _ => Err(Error::Internal(
                "etcd transaction answered without the key".to_owned(),
            )),
        }
    }

    async fn put_if(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
        conditions: Vec<Compare>,
    ) -> Result<(bool, Revision, Option<KeyValue>)> {
        let options = lease.map(|l| PutOptions::new().with_lease(l));
        let txn = Txn::new()
            .when(conditions)
            .and_then([TxnOp::put(key, value, options)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self
            .call(|mut c| async move { c.txn(txn).await })
            .await
            .map_err(|e| with_lease(e, lease))?;
        let revision = header_revision(resp.header())?;
        if resp.succeeded() {
            Ok((true, revision, None))
        } else {
            Ok((
                false,
                revision,
                Self::current_in(resp.op_responses().as_slice())?,
            ))
        }
    }
}

fn with_lease(err: Error, lease: Option<LeaseId>) -> Error {
    match (err, lease) {
        (Error::LeaseNotFound(_), Some(id)) => Error::LeaseNotFound(id),
        (other, _) => other,
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<Revision> {
        let resp = self
            .call(
                |mut c| async move { c.get("\0", Some(GetOptions::new().with_count_only())).await },
            )
            .await?;
        header_revision(resp.header())
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>> {
        let rev = revision.unwrap_or(0);
        let options = GetOptions::new().with_revision(rev);
        let key = key.to_owned();
        match self
            .call(|mut c| async move { c.get(key, Some(options)).await })
            .await
        {
            Ok(resp) => resp.kvs().first().map(key_value).transpose(),
            Err(err) => Err(self.explain(err, rev).await),
        }
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        let (start, end) = list_range(prefix, &options)?;
        let rev = options.revision.filter(|r| *r > 0).unwrap_or(0);
        let mut get = GetOptions::new()
            .with_range(end.map(String::into_bytes).unwrap_or_else(|| vec![0]))
            .with_revision(rev);
        if let Some(limit) = options.limit.filter(|l| *l > 0) {
            get = get.with_limit(limit as i64);
        }
        match self
            .call(|mut c| async move { c.get(start, Some(get)).await })
            .await
        {
            Ok(resp) => Ok(ListResult {
                items: resp.kvs().iter().map(key_value).collect::<Result<_>>()?,
                revision: if rev > 0 {
                    rev
                } else {
                    header_revision(resp.header())?
                },
                more: resp.more(),
                count: resp.count(),
            }),
            Err(err) => Err(self.explain(err, rev).await),
        }
    }

    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        check_value(key, &value)?;
        let absent = Compare::create_revision(key, CompareOp::Equal, 0);
        match self.put_if(key, value, lease, vec![absent]).await? {
            (true, revision, _) => Ok(revision),
            (false, _, _) => Err(Error::AlreadyExists {
                key: key.to_owned(),
            }),
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
        let conditions = vec![
            Compare::create_revision(key, CompareOp::NotEqual, 0),
            Compare::mod_revision(key, CompareOp::Equal, expected_revision),
        ];
        match self.put_if(key, value, lease, conditions).await? {
            (true, revision, _) => Ok(revision),
            (false, _, None) => Err(Error::NotFound {
                key: key.to_owned(),
            }),
            (false, _, Some(current)) => Err(Error::Conflict {
                key: key.to_owned(),
                expected: expected_revision,
                current: Some(Box::new(current)),
            }),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<Revision>,
    ) -> Result<(Revision, KeyValue)> {
        let mut conditions = vec![Compare::create_revision(key, CompareOp::NotEqual, 0)];
        if let Some(expected) = expected_revision {
            conditions.push(Compare::mod_revision(key, CompareOp::Equal, expected));
        }
        let txn = Txn::new()
            .when(conditions)
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.call(|mut c| async move { c.txn(txn).await }).await?;
        let revision = header_revision(resp.header())?;
        let responses = resp.op_responses();
        if resp.succeeded() {
            match responses.first() {
                Some(TxnOpResponse::Delete(d)) => match d.prev_kvs().first() {
                    Some(prev) => Ok((revision, key_value(prev)?)),
                    None => Err(Error::NotFound {
                        key: key.to_owned(),
                    }),
                },
                _ => Err(Error::Internal(
                    "etcd delete answered without the key".to_owned(),
                )),
            }
        } else {
            match Self::current_in(&responses)? {
                None => Err(Error::NotFound {
                    key: key.to_owned(),
                }),
                Some(current) => Err(Error::Conflict {
                    key: key.to_owned(),
                    expected: expected_revision.unwrap_or_default(),
                    current: Some(Box::new(current)),
                }),
            }
        }
    }

    async fn watch(&self, prefix: &str, options: WatchOptions) -> Result<WatchStream> {
        let start = match options.start_revision {
            r if r > 0 => r,
            _ => self.current_revision().await? + 1,
        };
        let compacted = self.compact_revision().await?;
        // etcd may drop a deletion made at the compaction point itself, so history is only
        // promised after it.
        if start <= compacted {
            return Err(Error::Compacted {
                requested: start,
                compacted,
            });
        }
        let (tx, rx) = mpsc::channel(1024);
        let watch = EtcdWatch {
            store: self.clone(),
            prefix: prefix.to_owned(),
            next: start,
            progress_every: options.progress_notify,
            events: tx,
        };
        tokio::spawn(watch.run());
        Ok(Box::pin(tokio_stream_from(rx)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self
            .call(|mut c| async move { c.compact(revision, None).await })
            .await
        {
            Ok(_) => {}
            Err(err) => return Err(self.explain(err, revision).await),
        }
        let value = revision.to_string().into_bytes();
        self.call(|mut c| async move { c.put(COMPACT_KEY, value, None).await })
            .await?;
        Ok(())
    }

    async fn compact_revision(&self) -> Result<Revision> {
        let resp = self
            .call(|mut c| async move { c.get(COMPACT_KEY, None).await })
            .await?;
        Ok(resp
            .kvs()
            .first()
            .and_then(|kv| std::str::from_utf8(kv.value()).ok()?.parse().ok())
            .unwrap_or(0))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let ttl = ttl_seconds(ttl);
        let resp = self
            .call(|mut c| async move { c.lease_grant(ttl, None).await })
            .await?;
        Ok(resp.id())
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.call(|mut c| async move { c.lease_revoke(lease).await })
            .await
            .map(|_| ())
            .map_err(|e| with_lease(e, Some(lease)))
    }
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<WatchEvent>>,
) -> impl futures::Stream<Item = Result<WatchEvent>> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// One watch, kept alive across lost connections.
struct EtcdWatch {
    store: EtcdStore,
    prefix: String,
    /// The lowest revision not yet delivered.
    next: Revision,
    progress_every: Option<Duration>,
    events: mpsc::Sender<Result<WatchEvent>>,
}

/// Why one etcd watch stream ended.
enum Ended {
    /// The consumer dropped the stream.
    Dropped,
    /// The stream failed; it may be resumed.
    Lost(Error),
    /// It cannot be resumed.
    Fatal(Error),
}

impl EtcdWatch {
    async fn run(mut self) {
        let mut lost_since: Option<tokio::time::Instant> = None;
        let mut backoff = Duration::from_millis(50);
        loop {
            let delivered_before = self.next;
            let err = match self.stream_once().await {
                Ended::Dropped => return,
                Ended::Fatal(err) => err,
                Ended::Lost(err) => {
                    if self.next > delivered_before {
                        lost_since = None;
                        backoff = Duration::from_millis(50);
                    }
                    let since = *lost_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() < self.store.config.watch_retry_for {
                        tracing::debug!(error = %err, next = self.next, "etcd watch lost; resuming");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    }
                    err
                }
            };
            let _ = self.events.send(Err(err)).await;
            return;
        }
    }

    /// Watches from `self.next` until the stream ends.
    async fn stream_once(&mut self) -> Ended {
        let options = EtcdWatchOptions::new()
            .with_prefix()
            .with_start_revision(self.next)
            .with_prev_key();
        let prefix = self.prefix.clone();
        let mut stream = match self
            .store
            .call(|mut c| async move { c.watch(prefix, Some(options)).await })
            .await
        {
            Ok(stream) => stream,
            Err(err) => return Ended::Lost(err),
        };
        loop {
            let message = match self.progress_every {
                Some(every) => match tokio::time::timeout(every, stream.message()).await {
                    Ok(message) => message,
                    Err(_) => {
                        // Ask etcd for a progress notification; it answers once every event up
                        // to its revision has been sent on this stream.
                        if let Err(err) = stream.request_progress().await {
                            return Ended::Lost(map_error(err));
                        }
                        continue;
                    }
                },
                None => stream.message().await,
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) => return Ended::Lost(unavailable("etcd closed the watch stream")),
                Err(err) => return Ended::Lost(map_error(err)),
            };
            if response.compact_revision() > 0 {
                return Ended::Fatal(Error::Compacted {
                    requested: self.next,
                    compacted: response.compact_revision(),
                });
            }
            if response.canceled() {
                return Ended::Lost(unavailable(format!(
                    "etcd cancelled the watch: {}",
                    response.cancel_reason()
                )));
            }
            if response.created() && response.events().is_empty() {
                continue;
            }
            if response.events().is_empty() {
                let Some(revision) = response.header().map(|h| h.revision()) else {
                    continue;
                };
                if self
                    .events
                    .send(Ok(WatchEvent::Progress { revision }))
                    .await
                    .is_err()
                {
                    return Ended::Dropped;
                }
                continue;
            }
            // etcd sends all events of one revision in one response (several keys of an
            // expired lease share a revision), so `next` moves on per response.
            let mut last = self.next - 1;
            for event in response.events() {
                let converted = match convert_event(event) {
                    Ok(e) => e,
                    Err(err) => return Ended::Fatal(err),
                };
                if converted.revision() < self.next {
                    continue;
                }
                last = last.max(converted.revision());
                if self.events.send(Ok(converted)).await.is_err() {
                    return Ended::Dropped;
                }
            }
            self.next = last + 1;
        }
    }
}

fn convert_event(event: &etcd_client::Event) -> Result<WatchEvent> {
    let kv = event
        .kv()
        .ok_or_else(|| Error::Internal("etcd sent an event without a key".to_owned()))?;
    let kv = key_value(kv)?;
    let prev = event.prev_kv().map(key_value).transpose()?;
    Ok(match event.event_type() {
        EventType::Put => WatchEvent::Put { kv, prev },
        EventType::Delete => WatchEvent::Delete {
            key: kv.key,
            revision: kv.mod_revision,
            prev,
        },
    })
}
