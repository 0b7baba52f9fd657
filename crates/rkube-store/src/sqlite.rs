//! The embedded backend: one SQLite database file in WAL mode.
//!
//! One table holds the data: `log` has one row per revision (a value, or a deletion), indexed
//! by key and revision. A key's current value is its newest row unless that row is a deletion;
//! the same index serves reads at past revisions, and the revision order serves watch replay.
//! A write is one appended row and one index entry, so a commit dirties few pages. Every
//! commit is synced to disk before any write in it is acknowledged (`synchronous=FULL`); the
//! single writer thread batches concurrent writes into one commit.
//! The file can be inspected with the `sqlite3` tool through the `current` view:
//! `SELECT key, revision, CAST(value AS TEXT) FROM current`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};

use crate::error::{Error, Result};
use crate::local::{Batch, Engine, LocalStore, Txn, WriteOp, apply};
use crate::types::{KeyValue, LeaseId, ListOptions, ListResult, Revision, WatchEvent, list_range};

/// Version 1 kept a `current` table beside the log, updated on every write; version 2 reads
/// the current values from the log's index (databases at version 1 are upgraded on open).
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    revision        INTEGER PRIMARY KEY,
    key             TEXT    NOT NULL,
    deleted         INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER,
    lease           INTEGER,
    value           BLOB
);
CREATE INDEX IF NOT EXISTS log_by_key ON log (key, revision);
CREATE INDEX IF NOT EXISTS log_by_lease ON log (lease) WHERE lease IS NOT NULL;
CREATE TABLE IF NOT EXISTS lease (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ttl        INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Every live key's newest row. Created once the version-1 `current` table is gone.
const CURRENT_VIEW: &str = "
CREATE VIEW IF NOT EXISTS current AS
    SELECT key, value, create_revision, revision, lease FROM log l
    WHERE deleted = 0
      AND NOT EXISTS (SELECT 1 FROM log n WHERE n.key = l.key AND n.revision > l.revision);
";

/// Where and how to keep the database.
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// The database file; created with its directory if missing.
    pub path: PathBuf,
    /// How many read connections to keep open.
    pub readers: usize,
}

impl SqliteConfig {
    /// The defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            readers: 4,
        }
    }
}

struct SqliteEngine {
    path: PathBuf,
    /// The writer's connection and the revision of its last commit.
    writer: Mutex<(Connection, Revision)>,
    /// The revision of the last commit, readable without waiting for the writer.
    revision: AtomicI64,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

/// The store on an embedded SQLite file.
pub struct SqliteStore {
    inner: LocalStore<SqliteEngine>,
}

impl SqliteStore {
    /// Opens (or creates) the database. A file that is not a database, or is damaged, is an
    /// [`Error::Database`] naming it. Must be called inside a tokio runtime.
    pub async fn open(config: SqliteConfig) -> Result<Self> {
        let engine = tokio::task::spawn_blocking(move || SqliteEngine::open(&config))
            .await
            .map_err(|e| Error::Internal(format!("opening the database: {e}")))??;
        Ok(Self {
            inner: LocalStore::start(engine, "sqlite-store")?,
        })
    }
}

crate::local::delegate_store!(SqliteStore);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Connections hold no state of ours that a panic could leave half-changed.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Maps SQLite failures to errors that name the file.
fn db_error(path: &Path, message: &str) -> impl Fn(rusqlite::Error) -> Error {
    let path = path.to_owned();
    let message = message.to_owned();
    move |source| Error::Database {
        path: path.clone(),
        message: message.clone(),
        source: Some(source),
    }
}

/// Refuses a file that exists but does not start like a database, before SQLite touches it.
fn check_header(path: &Path) -> Result<()> {
    let fail = |message: String| Error::Database {
        path: path.to_owned(),
        message,
        source: None,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fail(format!("cannot read it: {e}"))),
    };
    let mut header = Vec::with_capacity(16);
    (&mut file)
        .take(16)
        .read_to_end(&mut header)
        .map_err(|e| fail(format!("cannot read it: {e}")))?;
    if header.is_empty() || header == b"SQLite format 3\0" {
        Ok(())
    } else {
        Err(fail(
            "the file is not an SQLite database (its header is wrong)".to_owned(),
        ))
    }
}

fn open_connection(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(db_error(path, "cannot open it"))?;
    let err = db_error(path, "cannot configure it");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(&err)?;
    // A new file gets 16 KiB pages (an existing one keeps its own): a commit appends a batch
    // of objects of a few KiB each to the log, and every page it writes costs the log two
    // writes, so fewer, larger pages write the same batch with a quarter of the calls.
    conn.pragma_update(None, "page_size", 16_384)
        .map_err(&err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(&err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Database {
            path: path.to_owned(),
            message: format!("it cannot be put in WAL mode (journal mode is {mode})"),
            source: None,
        });
    }
    // FULL: in WAL mode every commit syncs the log, so an acknowledged write survives a crash.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(&err)?;
    // 8 MiB of pages (SQLite's default is 2): the log is append-only and the kernel's page
    // cache holds the file, so a larger cache would mostly keep pages never read again.
    conn.pragma_update(None, "cache_size", -8_192)
        .map_err(&err)?;
    // Checkpoint after ~40 MB of log instead of 4 MB: a page written many times between
    // checkpoints (an index page, the newest log page) is copied into the database once.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)
        .map_err(&err)?;
    // Plans must not depend on bound values: otherwise a statement compared against the
    // partial lease index is compiled again each time a new key is bound.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(&err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteEngine {
    fn open(config: &SqliteConfig) -> Result<Self> {
        let path = config.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Database {
                path: path.clone(),
                message: format!("cannot create its directory: {e}"),
                source: None,
            })?;
        }
        check_header(&path)?;
        let mut conn = open_connection(&path)?;
        Self::check_integrity(&conn, &path)?;
        let revision = Self::prepare_schema(&mut conn, &path)?;
        let readers = (0..config.readers.max(1))
            .map(|_| {
                let reader = open_connection(&path)?;
                reader
                    .pragma_update(None, "query_only", true)
                    .map_err(db_error(&path, "cannot configure it"))?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            path,
            writer: Mutex::new((conn, revision)),
            revision: AtomicI64::new(revision),
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    /// A damaged file must stop the server with a clear message, not lose data later.
    fn check_integrity(conn: &Connection, path: &Path) -> Result<()> {
        let err = db_error(path, "it is damaged");
        let mut stmt = conn.prepare("PRAGMA quick_check").map_err(&err)?;
        let problems: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(&err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(&err)?;
        if problems == ["ok"] {
            Ok(())
        } else {
            Err(Error::Database {
                path: path.to_owned(),
                message: format!("it is damaged: {}", problems.join("; ")),
                source: None,
            })
        }
    }

    /// Creates the tables if needed, checks the schema version, returns the current revision.
    fn prepare_schema(conn: &mut Connection, path: &Path) -> Result<Revision> {
        let err = db_error(path, "cannot set up its tables");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        tx.execute_batch(SCHEMA).map_err(&err)?;
        let version: Option<i64> = tx
            .query_row(
                "SELECT value FROM meta WHERE name = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(&err)?;
        match version {
            None => {
                tx.execute(
                    "INSERT INTO meta (name, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION],
                )
                .map_err(&err)?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(1) => {
                // Everything the version-1 table held is in the log: its newest rows.
                tx.execute_batch(
                    "DROP TABLE current; \
                     UPDATE meta SET value = 2 WHERE name = 'schema_version';",
                )
                .map_err(&err)?;
            }
            Some(other) => {
                return Err(Error::Database {
                    path: path.to_owned(),
                    message: format!(
                        "its schema version is {other}; this build reads version {SCHEMA_VERSION}"
                    ),
                    source: None,
                });
            }
        }
        tx.execute_batch(CURRENT_VIEW).map_err(&err)?;
        let revision = max_revision(&tx).map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(revision)
    }

    /// A read connection: a free one if there is one, otherwise wait for the next in turn.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let n = self.readers.len();
        let first = self.next_reader.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(conn) = self.readers[(first + i) % n].try_lock() {
                return conn;
            }
        }
        lock(&self.readers[first])
    }

    /// Runs `f` in one read transaction, so everything it reads is one snapshot, with that
    /// snapshot's current and compaction revisions.
    fn snapshot<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, Revision, Revision) -> rusqlite::Result<Result<T>>,
    ) -> Result<T> {
        let err = db_error(&self.path, "read failed");
        let mut conn = self.reader();
        let tx = conn.transaction().map_err(&err)?;
        let current = max_revision(&tx).map_err(&err)?;
        let compacted = compact_revision(&tx).map_err(&err)?;
        let result = f(&tx, current, compacted).map_err(&err)?;
        tx.finish().map_err(&err)?;
        result
    }
}

fn max_revision(conn: &Connection) -> rusqlite::Result<Revision> {
    conn.prepare_cached("SELECT coalesce(max(revision), 0) FROM log")?
        .query_row([], |r| r.get(0))
}

fn compact_revision(conn: &Connection) -> rusqlite::Result<Revision> {
    conn.prepare_cached("SELECT coalesce(max(value), 0) FROM meta WHERE name = 'compact_revision'")?
        .query_row([], |r| r.get(0))
}

fn readable(revision: Revision, current: Revision, compacted: Revision) -> Result<()> {
    if revision < compacted {
        Err(Error::Compacted {
            requested: revision,
            compacted,
        })
    } else if revision > current {
        Err(Error::FutureRevision {
            requested: revision,
            current,
        })
    } else {
        Ok(())
    }
}

/// Reads a key-value from columns `key, value, create_revision, mod_revision, lease` at `at`.
fn key_value(row: &Row<'_>, at: usize) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: row.get(at)?,
        value: row
            .get::<_, Option<Vec<u8>>>(at + 1)?
            .unwrap_or_default()
            .into(),
        create_revision: row.get(at + 2)?,
        mod_revision: row.get(at + 3)?,
        lease: row.get(at + 4)?,
    })
}

/// The upper bound of a key range in SQL, if it has one.
fn below(column: &str, end: &Option<String>, param: usize) -> String {
    match end {
        Some(_) => format!("AND {column} < ?{param}"),
        None => format!("AND ?{param} IS NULL"),
    }
}

struct SqlTxn<'a> {
    tx: &'a rusqlite::Transaction<'a>,
}

impl SqlTxn<'_> {
    fn current_of(&self, key: &str) -> rusqlite::Result<Option<KeyValue>> {
        let newest = self
            .tx
            .prepare_cached(
                "SELECT key, value, create_revision, revision, lease, deleted FROM log \
                 WHERE key = ?1 ORDER BY revision DESC LIMIT 1",
            )?
            .query_row([key], |r| Ok((key_value(r, 0)?, r.get::<_, bool>(5)?)))
            .optional()?;
        Ok(newest.filter(|(_, deleted)| !deleted).map(|(kv, _)| kv))
    }
}

impl Txn for SqlTxn<'_> {
    fn current(&mut self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.current_of(key)?)
    }

    fn put(&mut self, kv: &KeyValue, prev: Option<&KeyValue>) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO log (revision, key, deleted, create_revision, prev_revision, lease, value) \
                 VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                kv.mod_revision,
                kv.key,
                kv.create_revision,
                prev.map(|p| p.mod_revision),
                kv.lease,
                &kv.value[..]
            ])?;
        Ok(())
    }

    fn delete(&mut self, revision: Revision, prev: &KeyValue) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO log (revision, key, deleted, create_revision, prev_revision) \
                 VALUES (?1, ?2, 1, ?3, ?4)",
            )?
            .execute(params![
                revision,
                prev.key,
                prev.create_revision,
                prev.mod_revision
            ])?;
        Ok(())
    }

    fn lease_exists(&mut self, id: LeaseId) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM lease WHERE id = ?1")?
            .exists([id])?)
    }

    fn grant_lease(&mut self, ttl_seconds: i64, expires_at_ms: i64) -> Result<LeaseId> {
        self.tx
            .prepare_cached("INSERT INTO lease (ttl, expires_at) VALUES (?1, ?2)")?
            .execute([ttl_seconds, expires_at_ms])?;
        Ok(self.tx.last_insert_rowid())
    }

    fn lease_keys(&mut self, id: LeaseId) -> Result<Vec<KeyValue>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT key, value, create_revision, revision, lease FROM current \
             WHERE lease = ?1 ORDER BY key",
        )?;
        let rows = stmt.query_map([id], |r| key_value(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn remove_lease(&mut self, id: LeaseId) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached("DELETE FROM lease WHERE id = ?1")?
            .execute([id])?
            > 0)
    }

    fn compact_revision(&mut self) -> Result<Revision> {
        Ok(compact_revision(self.tx)?)
    }

    fn compact(&mut self, from: Revision, to: Revision) -> Result<()> {
        // Each row in [from, to) supersedes its predecessor, which goes; then the deletions in
        // [from, to) go themselves. Rows before `from` were settled by earlier compactions.
        self.tx.execute(
            "DELETE FROM log WHERE revision IN (SELECT prev_revision FROM log \
             WHERE revision >= ?1 AND revision < ?2 AND prev_revision IS NOT NULL)",
            [from, to],
        )?;
        self.tx.execute(
            "DELETE FROM log WHERE revision >= ?1 AND revision < ?2 AND deleted = 1",
            [from, to],
        )?;
        self.tx.execute(
            "INSERT INTO meta (name, value) VALUES ('compact_revision', ?1) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            [to],
        )?;
        Ok(())
    }
}

impl From<rusqlite::Error> for Error {
    fn from(source: rusqlite::Error) -> Self {
        // Only reached from inside a transaction, whose caller replaces this with an error that
        // names the file (see `SqliteEngine::write`).
        Error::Internal(source.to_string())
    }
}

impl Engine for SqliteEngine {
    fn write(&self, ops: Vec<WriteOp>) -> Result<Batch> {
        let err = db_error(&self.path, "write failed");
        let named = |e: Error| match e {
            Error::Internal(message) => Error::Database {
                path: self.path.clone(),
                message: format!("write failed: {message}"),
                source: None,
            },
            other => other,
        };
        let mut writer = lock(&self.writer);
        let (conn, revision) = &mut *writer;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let batch = apply(&mut SqlTxn { tx: &tx }, *revision, ops).map_err(named)?;
        tx.commit().map_err(&err)?;
        *revision = batch.revision;
        self.revision.store(batch.revision, Ordering::Release);
        Ok(batch)
    }

    fn current_revision(&self) -> Result<Revision> {
        Ok(self.revision.load(Ordering::Acquire))
    }

    fn compact_revision(&self) -> Result<Revision> {
        let conn = self.reader();
        compact_revision(&conn).map_err(db_error(&self.path, "read failed"))
    }

    fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>> {
        self.snapshot(|tx, current, compacted| {
            let revision = revision.unwrap_or(current);
            if let Err(e) = readable(revision, current, compacted) {
                return Ok(Err(e));
            }
            let found = tx
                .prepare_cached(
                    "SELECT key, value, create_revision, revision, lease, deleted FROM log \
                     WHERE key = ?1 AND revision <= ?2 ORDER BY revision DESC LIMIT 1",
                )?
                .query_row(params![key, revision], |r| {
                    Ok((key_value(r, 0)?, r.get::<_, bool>(5)?))
                })
                .optional()?;
            Ok(Ok(found.filter(|(_, deleted)| !deleted).map(|(kv, _)| kv)))
        })
    }

    fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListResult> {
        let (start, end) = list_range(prefix, options)?;
        let limit = options.limit.filter(|l| *l > 0);
        self.snapshot(|tx, current, compacted| {
            let revision = options.revision.filter(|r| *r > 0).unwrap_or(current);
            if let Err(e) = readable(revision, current, compacted) {
                return Ok(Err(e));
            }
            let sql_limit = limit.map_or(-1, |l| l as i64 + 1);
            let (items, count_sql) = if revision == current {
                let sql = format!(
                    "SELECT key, value, create_revision, revision, lease FROM current \
                     WHERE key >= ?1 {} ORDER BY key LIMIT ?3",
                    below("key", &end, 2)
                );
                let mut stmt = tx.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![start, end, sql_limit], |r| key_value(r, 0))?;
                let items = rows.collect::<rusqlite::Result<Vec<_>>>()?;
                let count = format!(
                    "SELECT count(*), ?3 FROM current WHERE key >= ?1 {}",
                    below("key", &end, 2)
                );
                (items, count)
            } else {
                // The version of each key in force at `revision`: its newest row at or below
                // it (SQLite takes the bare columns from the row that holds the max).
                let versions = format!(
                    "SELECT key, value, create_revision, max(revision) AS revision, lease, deleted \
                     FROM log WHERE key >= ?1 {} AND revision <= ?3 GROUP BY key",
                    below("key", &end, 2)
                );
                let sql = format!(
                    "SELECT key, value, create_revision, revision, lease FROM ({versions}) \
                     WHERE deleted = 0 ORDER BY key LIMIT ?4"
                );
                let mut stmt = tx.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![start, end, revision, sql_limit], |r| {
                    key_value(r, 0)
                })?;
                let items = rows.collect::<rusqlite::Result<Vec<_>>>()?;
                (
                    items,
                    format!("SELECT count(*), ?3 FROM ({versions}) WHERE deleted = 0"),
                )
            };
            let mut result = ListResult {
                items,
                revision,
                more: false,
                count: 0,
            };
            if let Some(limit) = limit.filter(|l| result.items.len() > *l) {
                result.items.truncate(limit);
                result.more = true;
                result.count = tx
                    .prepare_cached(&count_sql)?
                    .query_row(params![start, end, revision], |r| r.get(0))?;
            } else {
                result.count = result.items.len() as i64;
            }
            Ok(Ok(result))
        })
    }

    fn events(
        &self,
        prefix: &str,
        start: Revision,
        end: Revision,
        limit: usize,
    ) -> Result<Vec<WatchEvent>> {
        let key_end = crate::prefix_end(prefix);
        self.snapshot(|tx, _current, compacted| {
            if start <= compacted {
                return Ok(Err(Error::Compacted {
                    requested: start,
                    compacted,
                }));
            }
            let sql = format!(
                "SELECT l.revision, l.deleted, \
                        l.key, l.value, l.create_revision, l.revision, l.lease, \
                        p.key, p.value, p.create_revision, p.revision, p.lease \
                 FROM log l LEFT JOIN log p ON p.revision = l.prev_revision \
                 WHERE l.revision >= ?1 AND l.revision <= ?2 AND l.key >= ?3 {} \
                 ORDER BY l.revision LIMIT ?5",
                below("l.key", &key_end, 4)
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![start, end, prefix, key_end, limit as i64], |r| {
                let revision: Revision = r.get(0)?;
                let deleted: bool = r.get(1)?;
                let prev = match r.get::<_, Option<String>>(7)? {
                    Some(_) => Some(key_value(r, 7)?),
                    None => None,
                };
                Ok(if deleted {
                    WatchEvent::Delete {
                        key: r.get(2)?,
                        revision,
                        prev,
                    }
                } else {
                    WatchEvent::Put {
                        kv: key_value(r, 2)?,
                        prev,
                    }
                })
            })?;
            Ok(Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?))
        })
    }

    fn expired_leases(&self, now_ms: i64) -> Result<Vec<LeaseId>> {
        let conn = self.reader();
        let err = db_error(&self.path, "read failed");
        let mut stmt = conn
            .prepare_cached("SELECT id FROM lease WHERE expires_at <= ?1")
            .map_err(&err)?;
        let ids = stmt.query_map([now_ms], |r| r.get(0)).map_err(&err)?;
        ids.collect::<rusqlite::Result<_>>().map_err(&err)
    }
}
