//! The in-memory backend, for tests: the same semantics as the others, nothing on disk.

use std::collections::{BTreeMap, HashMap};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, Result};
use crate::local::{Batch, Engine, LocalStore, Txn, WriteOp, apply};
use crate::types::{KeyValue, LeaseId, ListOptions, ListResult, Revision, WatchEvent, list_range};

/// One version of a key: its value from `revision` on, `None` once deleted.
#[derive(Clone, Debug)]
struct Version {
    revision: Revision,
    kv: Option<KeyValue>,
}

#[derive(Default)]
struct State {
    revision: Revision,
    compacted: Revision,
    /// Each key's versions, oldest first.
    keys: BTreeMap<String, Vec<Version>>,
    /// Every event since the compaction point, by revision.
    log: BTreeMap<Revision, WatchEvent>,
    /// Lease id → expiry time in ms since the epoch.
    leases: HashMap<LeaseId, i64>,
    last_lease: LeaseId,
}

impl State {
    fn check_readable(&self, revision: Revision) -> Result<()> {
        if revision < self.compacted {
            Err(Error::Compacted {
                requested: revision,
                compacted: self.compacted,
            })
        } else if revision > self.revision {
            Err(Error::FutureRevision {
                requested: revision,
                current: self.revision,
            })
        } else {
            Ok(())
        }
    }

    fn at(versions: &[Version], revision: Revision) -> Option<&KeyValue> {
        let idx = versions.partition_point(|v| v.revision <= revision);
        idx.checked_sub(1).and_then(|i| versions[i].kv.as_ref())
    }
}

struct MemoryEngine {
    state: RwLock<State>,
}

impl MemoryEngine {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Txn for State {
    fn current(&mut self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self
            .keys
            .get(key)
            .and_then(|v| v.last())
            .and_then(|v| v.kv.clone()))
    }

    fn put(&mut self, kv: &KeyValue, prev: Option<&KeyValue>) -> Result<()> {
        let version = Version {
            revision: kv.mod_revision,
            kv: Some(kv.clone()),
        };
        self.keys.entry(kv.key.clone()).or_default().push(version);
        let event = WatchEvent::Put {
            kv: kv.clone(),
            prev: prev.cloned(),
        };
        self.log.insert(kv.mod_revision, event);
        Ok(())
    }

    fn delete(&mut self, revision: Revision, prev: &KeyValue) -> Result<()> {
        self.keys
            .entry(prev.key.clone())
            .or_default()
            .push(Version { revision, kv: None });
        let event = WatchEvent::Delete {
            key: prev.key.clone(),
            revision,
            prev: Some(prev.clone()),
        };
        self.log.insert(revision, event);
        Ok(())
    }

    fn lease_exists(&mut self, id: LeaseId) -> Result<bool> {
        Ok(self.leases.contains_key(&id))
    }

    fn grant_lease(&mut self, _ttl_seconds: i64, expires_at_ms: i64) -> Result<LeaseId> {
        self.last_lease += 1;
        self.leases.insert(self.last_lease, expires_at_ms);
        Ok(self.last_lease)
    }

    fn lease_keys(&mut self, id: LeaseId) -> Result<Vec<KeyValue>> {
        Ok(self
            .keys
            .values()
            .filter_map(|v| v.last().and_then(|v| v.kv.as_ref()))
            .filter(|kv| kv.lease == Some(id))
            .cloned()
            .collect())
    }

    fn remove_lease(&mut self, id: LeaseId) -> Result<bool> {
        Ok(self.leases.remove(&id).is_some())
    }

    fn compact_revision(&mut self) -> Result<Revision> {
        Ok(self.compacted)
    }

    fn compact(&mut self, _from: Revision, to: Revision) -> Result<()> {
        self.keys.retain(|_, versions| {
            // Keep the versions from `to` on, and the one in force at `to` if it is a value.
            let first_kept = versions.partition_point(|v| v.revision < to);
            let mut kept = versions.split_off(first_kept);
            if let Some(last_before) = versions.pop().filter(|v| v.kv.is_some()) {
                kept.insert(0, last_before);
            }
            *versions = kept;
            !versions.is_empty()
        });
        self.log = self.log.split_off(&to);
        self.compacted = to;
        Ok(())
    }
}

impl Engine for MemoryEngine {
    fn write(&self, ops: Vec<WriteOp>) -> Result<Batch> {
        let mut state = self.write_lock();
        let revision = state.revision;
        let batch = apply(&mut *state, revision, ops)?;
        state.revision = batch.revision;
        Ok(batch)
    }

    fn current_revision(&self) -> Result<Revision> {
        Ok(self.read().revision)
    }

    fn compact_revision(&self) -> Result<Revision> {
        Ok(self.read().compacted)
    }

    fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>> {
        let state = self.read();
        let revision = revision.unwrap_or(state.revision);
        state.check_readable(revision)?;
        Ok(state
            .keys
            .get(key)
            .and_then(|v| State::at(v, revision))
            .cloned())
    }

    fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListResult> {
        let (start, end) = list_range(prefix, options)?;
        let state = self.read();
        let revision = options
            .revision
            .filter(|r| *r > 0)
            .unwrap_or(state.revision);
        state.check_readable(revision)?;
        let limit = options.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let range = match &end {
            Some(end) => state.keys.range(start..end.clone()),
            None => state.keys.range(start..),
        };
        let mut result = ListResult {
            revision,
            ..ListResult::default()
        };
        for versions in range.map(|(_, v)| v) {
            if let Some(kv) = State::at(versions, revision) {
                result.count += 1;
                if result.items.len() < limit {
                    result.items.push(kv.clone());
                } else {
                    result.more = true;
                }
            }
        }
        Ok(result)
    }

    fn events(
        &self,
        prefix: &str,
        start: Revision,
        end: Revision,
        limit: usize,
    ) -> Result<Vec<WatchEvent>> {
        let state = self.read();
        if start <= state.compacted {
            return Err(Error::Compacted {
                requested: start,
                compacted: state.compacted,
            });
        }
        if start > end {
            return Ok(Vec::new());
        }
        Ok(state
            .log
            .range(start..=end)
            .map(|(_, e)| e)
            .filter(|e| e.key().is_some_and(|k| k.starts_with(prefix)))
            .take(limit)
            .cloned()
            .collect())
    }

    fn expired_leases(&self, now_ms: i64) -> Result<Vec<LeaseId>> {
        Ok(self
            .read()
            .leases
            .iter()
            .filter(|(_, exp)| **exp <= now_ms)
            .map(|(id, _)| *id)
            .collect())
    }
}

/// A store kept in memory and lost when dropped. Same semantics as the other backends.
pub struct MemoryStore {
    inner: LocalStore<MemoryEngine>,
}

impl MemoryStore {
    /// An empty store at revision 0. Must be called inside a tokio runtime.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let engine = MemoryEngine {
            state: RwLock::new(State::default()),
        };
        match LocalStore::start(engine, "memory-store") {
            Ok(inner) => Self { inner },
            // Starting can only fail if the OS refuses a thread; nothing can go on then.
            Err(err) => panic!("cannot start the memory store: {err}"),
        }
    }
}

crate::local::delegate_store!(MemoryStore);
