//! The sqlite backend's files: what survives a restart, and what a damaged file does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use rkube_store::{Error, SqliteConfig, SqliteStore, Store};
use rkube_store_tests::db_path;

async fn open(path: &std::path::Path) -> Result<SqliteStore, Error> {
    SqliteStore::open(SqliteConfig::new(path)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_revision_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let (rev, compacted) = {
        let store = open(&path).await.unwrap();
        let r1 = store.create("/keep/a", b"a".to_vec(), None).await.unwrap();
        store
            .update("/keep/a", b"a2".to_vec(), r1, None)
            .await
            .unwrap();
        let r3 = store.create("/keep/b", b"b".to_vec(), None).await.unwrap();
        store.compact(r3).await.unwrap();
        let (rev, _) = store.delete("/keep/b", None).await.unwrap();
        (rev, r3)
    };
    let store = open(&path).await.unwrap();
    assert_eq!(store.current_revision().await.unwrap(), rev);
    assert_eq!(store.compact_revision().await.unwrap(), compacted);
    assert_eq!(
        &store.get("/keep/a", None).await.unwrap().unwrap().value[..],
        b"a2"
    );
    assert!(store.get("/keep/b", None).await.unwrap().is_none());
    assert!(
        store
            .get("/keep/b", Some(compacted))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.create("/keep/c", b"c".to_vec(), None).await.unwrap(),
        rev + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_database_is_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    std::fs::write(&path, b"this is a text file, not a database\n".repeat(200)).unwrap();
    let err = open(&path).await.err().expect("opening garbage must fail");
    assert!(matches!(err, Error::Database { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "names the file: {err}"
    );
    // The file is left as it was.
    assert!(
        std::fs::read(&path)
            .unwrap()
            .starts_with(b"this is a text file")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_database_is_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    {
        let store = open(&path).await.unwrap();
        for i in 0..400 {
            store
                .create(&format!("/t/{i:04}"), vec![b'v'; 2000], None)
                .await
                .unwrap();
        }
    }
    // Fold the log into the main file, then cut the file in half. The store's connections
    // close a moment after it is dropped; until then the checkpoint reports itself busy.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let output = Command::new("sqlite3")
            .arg(&path)
            .arg("PRAGMA wal_checkpoint(TRUNCATE);")
            .output()
            .expect("the sqlite3 tool");
        assert!(output.status.success());
        // The row is `busy|log frames|checkpointed frames`.
        if String::from_utf8_lossy(&output.stdout).starts_with("0|") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the checkpoint stayed busy"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);

    let err = open(&path)
        .await
        .err()
        .expect("opening a truncated database must fail");
    assert!(matches!(err, Error::Database { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "names the file: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_can_be_read_with_the_sqlite3_tool() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let store = open(&path).await.unwrap();
    let rev = store
        .create(
            "/registry/pods/default/web",
            b"{\"kind\":\"Pod\"}".to_vec(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        sqlite3(
            &path,
            "SELECT key, revision, CAST(value AS TEXT) FROM current;"
        ),
        format!("/registry/pods/default/web|{rev}|{{\"kind\":\"Pod\"}}")
    );
    // A new file is laid out in 16 KiB pages.
    assert_eq!(sqlite3(&path, "PRAGMA page_size;"), "16384");
}

/// Runs SQL on the database file with the `sqlite3` tool; returns its output.
fn sqlite3(path: &std::path::Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg(sql)
        .output()
        .expect("the sqlite3 tool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_is_upgraded_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    // The version-1 layout kept a `current` table beside the log. History: /m/a created and
    // updated, /m/b created and deleted, /m/c created under lease 7.
    let far = 4_102_444_800_000_i64; // 2100-01-01, in ms
    sqlite3(
        &path,
        &format!(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE log (revision INTEGER PRIMARY KEY, key TEXT NOT NULL, deleted INTEGER NOT NULL,
                 create_revision INTEGER NOT NULL, prev_revision INTEGER, lease INTEGER, value BLOB);
             CREATE INDEX log_by_key ON log (key, revision);
             CREATE TABLE current (key TEXT PRIMARY KEY, revision INTEGER NOT NULL, lease INTEGER) WITHOUT ROWID;
             CREATE INDEX current_by_lease ON current (lease) WHERE lease IS NOT NULL;
             CREATE TABLE lease (id INTEGER PRIMARY KEY AUTOINCREMENT, ttl INTEGER NOT NULL, expires_at INTEGER NOT NULL);
             CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO meta VALUES ('schema_version', 1);
             INSERT INTO lease (id, ttl, expires_at) VALUES (7, 3600, {far});
             INSERT INTO log VALUES (1, '/m/a', 0, 1, NULL, NULL, CAST('a1' AS BLOB));
             INSERT INTO log VALUES (2, '/m/a', 0, 1, 1, NULL, CAST('a2' AS BLOB));
             INSERT INTO log VALUES (3, '/m/b', 0, 3, NULL, NULL, CAST('b' AS BLOB));
             INSERT INTO log VALUES (4, '/m/b', 1, 3, 3, NULL, NULL);
             INSERT INTO log VALUES (5, '/m/c', 0, 5, NULL, 7, CAST('c' AS BLOB));
             INSERT INTO current VALUES ('/m/a', 2, NULL), ('/m/c', 5, 7);"
        ),
    );
    let store = open(&path).await.unwrap();
    assert_eq!(store.current_revision().await.unwrap(), 5);
    let value = |kv: Option<rkube_store::KeyValue>| kv.map(|kv| kv.value.to_vec());
    assert_eq!(
        value(store.get("/m/a", None).await.unwrap()),
        Some(b"a2".to_vec())
    );
    assert_eq!(
        value(store.get("/m/a", Some(1)).await.unwrap()),
        Some(b"a1".to_vec())
    );
    assert_eq!(store.get("/m/b", None).await.unwrap(), None);
    let listed = store
        .list("/m/", rkube_store::ListOptions::default())
        .await
        .unwrap();
    let keys: Vec<_> = listed.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/m/a", "/m/c"]);
    assert_eq!(listed.items[1].lease, Some(7));
    // Writes go on from the log's revision and see the upgraded current values.
    assert!(matches!(
        store.create("/m/a", b"again".to_vec(), None).await,
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(store.create("/m/b", b"b2".to_vec(), None).await.unwrap(), 6);
    // The lease still owns its key.
    store.revoke_lease(7).await.unwrap();
    assert_eq!(store.get("/m/c", None).await.unwrap(), None);
    drop(store);
    assert_eq!(
        sqlite3(
            &path,
            "SELECT value FROM meta WHERE name = 'schema_version'; \
             SELECT key || '=' || revision FROM current ORDER BY key; \
             PRAGMA page_size;"
        ),
        // An existing file keeps the page size it was made with.
        "2\n/m/a=2\n/m/b=6\n4096"
    );
}
