//! The store's errors. The API server maps each to one Kubernetes status.

use std::path::PathBuf;

use crate::types::{KeyValue, LeaseId, Revision};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A create found the key already there.
    #[error("key {key:?} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// The key does not exist.
    #[error("key {key:?} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// A compare-and-swap failed: the key changed since the caller read it.
    #[error(
        "key {key:?} was modified: expected revision {expected}, found {}",
        current_revision(current)
    )]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The key as it is now (`None`: it no longer exists).
        current: Option<Box<KeyValue>>,
    },
    /// The revision asked for is older than the last compaction.
    #[error("required revision {requested} has been compacted (oldest available: {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        compacted: Revision,
    },
    /// The revision asked for has not been written yet.
    #[error("required revision {requested} is a future revision (current: {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The current revision.
        current: Revision,
    },
    /// A value over [`crate::MAX_VALUE_SIZE`].
    #[error("value for key {key:?} is {size} bytes, over the limit of {limit} bytes")]
    ValueTooLarge {
        /// The key.
        key: String,
        /// The value's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The lease does not exist (never granted, revoked or expired).
    #[error("lease {0} not found")]
    LeaseNotFound(LeaseId),
    /// The caller passed something the store cannot act on.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The database file cannot be used: missing permissions, not a database, damaged.
    #[error("cannot use database {}: {message}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// The underlying error, if there is one.
        #[source]
        source: Option<rusqlite::Error>,
    },
    /// The backend cannot be reached now; the request may be retried.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
    },
    /// The store has shut down.
    #[error("store is closed")]
    Closed,
    /// Anything else: a bug or an unexpected answer from the backend.
    #[error("internal store error: {0}")]
    Internal(String),
}

impl Error {
    /// A copy of this error for each of several callers that share one failure (a failed
    /// group commit answers every write in it). The underlying source is kept as text.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Database {
                path,
                message,
                source,
            } => Error::Database {
                path: path.clone(),
                message: match source {
                    Some(s) => format!("{message}: {s}"),
                    None => message.clone(),
                },
                source: None,
            },
            Error::Unavailable { message } => Error::Unavailable {
                message: message.clone(),
            },
            Error::Closed => Error::Closed,
            other => Error::Internal(other.to_string()),
        }
    }
}

fn current_revision(current: &Option<Box<KeyValue>>) -> String {
    match current {
        Some(kv) => kv.mod_revision.to_string(),
        None => "no key".to_owned(),
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
