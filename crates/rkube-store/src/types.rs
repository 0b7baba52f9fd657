//! The values that cross the storage contract.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use crate::error::{Error, Result};

/// A point in the store's history: the value of the global write counter.
pub type Revision = i64;

/// The id of a TTL lease.
pub type LeaseId = i64;

/// The largest value the store accepts: 1.5 MiB, etcd's default request limit.
pub const MAX_VALUE_SIZE: usize = 1024 * 1024 * 3 / 2;

/// A key with its value and the revisions that created and last changed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The stored bytes.
    pub value: Bytes,
    /// The revision of the write that created the key (unchanged by updates).
    pub create_revision: Revision,
    /// The revision of the write that last changed the key.
    pub mod_revision: Revision,
    /// The lease the key is bound to, if any.
    pub lease: Option<LeaseId>,
}

/// How to read a range of keys.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Read as of this revision (`None`: the latest).
    pub revision: Option<Revision>,
    /// At most this many keys (`None` or 0: all).
    pub limit: Option<usize>,
    /// Start at this key (inclusive) instead of the prefix itself; it must lie under the
    /// prefix. Pages continue with [`continue_after`] of the last key returned.
    pub start: Option<String>,
}

/// One page of keys.
#[derive(Clone, Debug, Default)]
pub struct ListResult {
    /// The keys, in key order.
    pub items: Vec<KeyValue>,
    /// The revision the page was read at.
    pub revision: Revision,
    /// Whether keys remain after the last one returned.
    pub more: bool,
    /// How many keys the whole range holds, from the start key to the end of the prefix.
    pub count: i64,
}

/// A change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was created (`prev` is `None`) or updated.
    Put {
        /// The key as written; its `mod_revision` is the event's revision.
        kv: KeyValue,
        /// The value it replaced.
        prev: Option<KeyValue>,
    },
    /// A key was deleted.
    Delete {
        /// The deleted key.
        key: String,
        /// The revision of the deletion.
        revision: Revision,
        /// The value that was deleted (etcd may omit it if it was compacted away).
        prev: Option<KeyValue>,
    },
    /// Nothing happened under the watched prefix up to and including `revision`: every
    /// event at or below it has been delivered.
    Progress {
        /// The store's revision when the notification was made.
        revision: Revision,
    },
}

impl WatchEvent {
    /// The revision the event happened at (for progress: the revision it vouches for).
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put { kv, .. } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
            WatchEvent::Progress { revision } => *revision,
        }
    }

    /// The key changed (`None` for progress notifications).
    pub fn key(&self) -> Option<&str> {
        match self {
            WatchEvent::Put { kv, .. } => Some(&kv.key),
            WatchEvent::Delete { key, .. } => Some(key),
            WatchEvent::Progress { .. } => None,
        }
    }
}

/// How to watch.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// The first revision to deliver (inclusive); 0 means the revision after the current one.
    /// It must lie after the store's compaction point.
    pub start_revision: Revision,
    /// Send [`WatchEvent::Progress`] after this long without events (`None`: never).
    pub progress_notify: Option<Duration>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            start_revision: 0,
            progress_notify: Some(Duration::from_secs(5)),
        }
    }
}

impl WatchOptions {
    /// Watches from `revision` on (inclusive).
    pub fn from_revision(revision: Revision) -> Self {
        Self {
            start_revision: revision,
            ..Self::default()
        }
    }
}

/// The stream a watch delivers. It ends only when dropped or on an error, which is its last
/// item ([`Error::Compacted`] when the watcher fell behind compaction).
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

/// The smallest key greater than every key starting with `prefix` (`None`: there is no such
/// bound, the range runs to the end). Keys compare as UTF-8 bytes, which is code point order,
/// so raising the last character is enough.
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The start key of the page after one ending at `last_key`.
pub fn continue_after(last_key: &str) -> String {
    format!("{last_key}\0")
}

/// The range `[start, end)` a list under `prefix` reads.
pub(crate) fn list_range(prefix: &str, options: &ListOptions) -> Result<(String, Option<String>)> {
    let start = match &options.start {
        Some(start) if !start.starts_with(prefix) => {
            return Err(Error::InvalidArgument(format!(
                "start key {start:?} is not under the prefix {prefix:?}"
            )));
        }
        Some(start) => start.clone(),
        None => prefix.to_owned(),
    };
    Ok((start, prefix_end(prefix)))
}

/// Rejects a value the store cannot take.
pub(crate) fn check_value(key: &str, value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_SIZE {
        return Err(Error::ValueTooLarge {
            key: key.to_owned(),
            size: value.len(),
            limit: MAX_VALUE_SIZE,
        });
    }
    Ok(())
}

/// A lease TTL in whole seconds, as etcd counts it.
pub(crate) fn ttl_seconds(ttl: Duration) -> i64 {
    // Round up so a sub-second TTL never means "no TTL".
    (ttl.as_millis().div_ceil(1000)).max(1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_raises_the_last_character() {
        assert_eq!(
            prefix_end("/registry/pods/").as_deref(),
            Some("/registry/pods0")
        );
        assert_eq!(prefix_end("a").as_deref(), Some("b"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
    }

    #[test]
    fn continue_after_is_the_next_possible_key() {
        let next = continue_after("/a/b");
        assert!(next.as_str() > "/a/b");
        assert!(next.as_str() < "/a/b\u{1}");
    }

    #[test]
    fn a_value_over_the_limit_is_rejected() {
        assert!(check_value("k", &vec![0; MAX_VALUE_SIZE]).is_ok());
        let err = check_value("k", &vec![0; MAX_VALUE_SIZE + 1]).unwrap_err();
        assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    }
}
