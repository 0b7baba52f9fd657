//! Controller expectations, as upstream's `ControllerExpectations`: after a controller asks
//! for pods to be created or deleted, it waits until its cache has seen those changes before
//! it counts pods again, so that a cache that lags behind its own writes never makes it
//! create or delete twice. Expectations that are not met within five minutes expire (a watch
//! event can be lost), after which the controller counts again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::informer::Key;

/// How long unmet expectations hold a controller back.
pub const EXPECTATIONS_TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Record {
    /// Creations asked for and not yet seen.
    adds: i64,
    /// Uids of pods whose deletion was asked for and not yet seen.
    deletes: HashSet<String>,
    set_at: Instant,
}

/// Pending creations and deletions per controller object.
#[derive(Clone, Default)]
pub struct Expectations {
    records: Arc<Mutex<HashMap<Key, Record>>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Record>> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the controller of `key` may count pods again: nothing pending, or the
    /// expectations expired.
    pub fn satisfied(&self, key: &Key) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(record) => {
                (record.adds <= 0 && record.deletes.is_empty())
                    || record.set_at.elapsed() > EXPECTATIONS_TTL
            }
        }
    }

    /// Expects `count` creations for `key` (replacing what was expected before).
    pub fn expect_creations(&self, key: &Key, count: usize) {
        self.lock().insert(
            key.clone(),
            Record {
                adds: i64::try_from(count).unwrap_or(i64::MAX),
                deletes: HashSet::new(),
                set_at: Instant::now(),
            },
        );
    }

    /// Expects the deletion of the pods with these uids (replacing what was expected before).
    pub fn expect_deletions(&self, key: &Key, uids: impl IntoIterator<Item = String>) {
        self.lock().insert(
            key.clone(),
            Record {
                adds: 0,
                deletes: uids.into_iter().collect(),
                set_at: Instant::now(),
            },
        );
    }

    /// One expected creation was seen (or will never happen because the create failed).
    pub fn creation_observed(&self, key: &Key) {
        if let Some(record) = self.lock().get_mut(key) {
            record.adds -= 1;
        }
    }

    /// The deletion of the pod with `uid` was seen (or will never happen).
    pub fn deletion_observed(&self, key: &Key, uid: &str) {
        if let Some(record) = self.lock().get_mut(key) {
            record.deletes.remove(uid);
        }
    }

    /// Forgets `key` (its object is gone).
    pub fn forget(&self, key: &Key) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key {
            namespace: "ns".into(),
            name: "rs".into(),
        }
    }

    #[test]
    fn creations_hold_the_controller_until_each_is_observed() {
        let e = Expectations::default();
        assert!(e.satisfied(&key()));
        e.expect_creations(&key(), 2);
        assert!(!e.satisfied(&key()));
        e.creation_observed(&key());
        assert!(!e.satisfied(&key()));
        e.creation_observed(&key());
        assert!(e.satisfied(&key()));
    }

    #[test]
    fn deletions_are_tracked_by_pod_uid() {
        let e = Expectations::default();
        e.expect_deletions(&key(), ["a".to_owned(), "b".to_owned()]);
        e.deletion_observed(&key(), "a");
        e.deletion_observed(&key(), "a");
        assert!(
            !e.satisfied(&key()),
            "seeing one pod twice does not count as two"
        );
        e.deletion_observed(&key(), "b");
        assert!(e.satisfied(&key()));
    }

    #[tokio::test(start_paused = true)]
    async fn unmet_expectations_expire() {
        let e = Expectations::default();
        e.expect_creations(&key(), 1);
        tokio::time::advance(EXPECTATIONS_TTL + Duration::from_secs(1)).await;
        assert!(e.satisfied(&key()));
    }
}
