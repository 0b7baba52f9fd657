//! Storage for rkube with etcd semantics.
//!
//! Everything the cluster knows is kept here as opaque values under string keys
//! (`/registry/<group>/<resource>/<namespace>/<name>`). The contract is the one etcd offers and
//! the Kubernetes API server relies on:
//!
//! - one global **revision**, raised by exactly one for every key written or deleted;
//! - every key carries the revision that created it and the revision that last changed it;
//! - writes are compare-and-swap on those revisions;
//! - reads can be served at any past revision that has not been compacted;
//! - **watch** replays every change from a revision on, in order, without gaps or duplicates;
//! - keys can be bound to a TTL **lease** and vanish when it expires.
//!
//! Three backends implement [`Store`]: [`SqliteStore`] (embedded, the default),
//! [`EtcdStore`] (a real etcd cluster) and [`MemoryStore`] (unit tests). [`open`] picks one from
//! a [`StoreConfig`].

mod error;
mod etcd;
mod local;
mod memory;
mod sqlite;
mod types;

use std::sync::Arc;
use std::time::Duration;

pub use error::{Error, Result};
pub use etcd::{EtcdConfig, EtcdStore};
pub use memory::MemoryStore;
pub use sqlite::{SqliteConfig, SqliteStore};
pub use types::{
    KeyValue, LeaseId, ListOptions, ListResult, MAX_VALUE_SIZE, Revision, WatchEvent, WatchOptions,
    WatchStream, continue_after, prefix_end,
};

/// The storage contract shared by every backend.
///
/// Revisions: the store has one revision counter. It starts at 0 for an empty sqlite or memory
/// store (etcd starts at 1) and every successful [`create`](Store::create),
/// [`update`](Store::update) and [`delete`](Store::delete) raises it by exactly one; the new value
/// is the write's revision and becomes the key's `mod_revision`. Keys deleted by an expiring
/// lease take one revision each. Failed writes, lease grants and compaction do not change it.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The revision of the newest write. Reading it does not change it.
    async fn current_revision(&self) -> Result<Revision>;

    /// The value of `key` at `revision` (`None`: the latest), or `None` if the key did not exist
    /// then. A revision older than the last compaction is [`Error::Compacted`]; one newer than
    /// the current revision is [`Error::FutureRevision`].
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>>;

    /// The keys under `prefix`, in key order, as they were at `options.revision` (`None`: the
    /// latest). The result carries the revision it was read at: pass it back with the next
    /// page's start key (see [`continue_after`]) to page through one consistent snapshot.
    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult>;

    /// Creates `key`. Fails with [`Error::AlreadyExists`] if it exists. Returns the new
    /// revision, which is both the key's `create_revision` and `mod_revision`.
    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision>;

    /// Replaces `key` if its `mod_revision` is still `expected_revision`. A key that does not
    /// exist is [`Error::NotFound`]; one changed since is [`Error::Conflict`], carrying the
    /// current value. Returns the new revision (the key's new `mod_revision`).
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_revision: Revision,
        lease: Option<LeaseId>,
    ) -> Result<Revision>;

    /// Deletes `key`, if `expected_revision` is given only while its `mod_revision` still equals
    /// it ([`Error::Conflict`] otherwise). A missing key is [`Error::NotFound`]. Returns the
    /// revision of the deletion and the value that was deleted.
    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<Revision>,
    ) -> Result<(Revision, KeyValue)>;

    /// Streams every change under `prefix` whose revision is at least `options.start_revision`
    /// (0: only changes after the current revision), in revision order, each exactly once.
    /// The start must lie after the compaction point ([`Error::Compacted`] otherwise): a
    /// compacted store still answers reads *at* that point, but its history begins after it. While idle the stream sends
    /// [`WatchEvent::Progress`] with a revision up to which everything has been delivered.
    async fn watch(&self, prefix: &str, options: WatchOptions) -> Result<WatchStream>;

    /// Discards history older than `revision`: afterwards reads at revisions below it fail with
    /// [`Error::Compacted`] while `revision` itself stays readable, and watches must start
    /// after it. Compacting
    /// at or below the current compaction point is [`Error::Compacted`]; past the current
    /// revision, [`Error::FutureRevision`].
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The oldest revision still readable (0 when nothing was compacted).
    async fn compact_revision(&self) -> Result<Revision>;

    /// Grants a lease that expires `ttl` from now (whole seconds, at least one). Keys written
    /// with it are deleted when it expires, each deletion taking a revision and sending a
    /// watch event like any other.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;

    /// Revokes a lease at once, deleting its keys as expiry would.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;
}

/// Which backend to open, and how.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// The embedded SQLite database (the default).
    Sqlite(SqliteConfig),
    /// A real etcd cluster.
    Etcd(EtcdConfig),
    /// In memory, lost on exit: for tests.
    Memory,
}

impl StoreConfig {
    /// Parses a datastore endpoint as users give it: `etcd://host:port[,host:port…]`,
    /// `sqlite:///path/to/file.db` or `memory://`.
    pub fn from_endpoint(endpoint: &str) -> Result<Self> {
        if let Some(hosts) = endpoint.strip_prefix("etcd://") {
            let endpoints: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| format!("http://{h}"))
                .collect();
            if endpoints.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "datastore endpoint {endpoint:?} names no etcd host"
                )));
            }
            Ok(Self::Etcd(EtcdConfig::new(endpoints)))
        } else if let Some(path) = endpoint.strip_prefix("sqlite://") {
            Ok(Self::Sqlite(SqliteConfig::new(path)))
        } else if endpoint == "memory://" {
            Ok(Self::Memory)
        } else {
            Err(Error::InvalidArgument(format!(
                "datastore endpoint {endpoint:?} is not etcd://host:port, sqlite://path or memory://"
            )))
        }
    }
}

/// Opens the store `config` names.
pub async fn open(config: StoreConfig) -> Result<Arc<dyn Store>> {
    Ok(match config {
        StoreConfig::Sqlite(c) => Arc::new(SqliteStore::open(c).await?),
        StoreConfig::Etcd(c) => Arc::new(EtcdStore::connect(c).await?),
        StoreConfig::Memory => Arc::new(MemoryStore::new()),
    })
}
