//! Crash durability of the sqlite backend: a child process writes and reports every
//! acknowledged write; it is killed with SIGKILL mid-stream; after reopening, every
//! acknowledged write is there and the revision never went backwards.
//!
//! `RKUBE_CRASH_CYCLES` sets the number of kill cycles (default 5; the long run uses 200).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use rkube_store::{SqliteConfig, SqliteStore, Store};
use rkube_store_tests::db_path;

struct Ack {
    revision: i64,
    value: u64,
}

/// Runs the writer until it has reported `kill_after` writes, kills it, and returns every
/// write it acknowledged (including those still in the pipe).
fn run_and_kill(db: &std::path::Path, cycle: u64, kill_after: usize) -> Vec<(String, Ack)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .arg(db)
        .arg(cycle.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start crash-writer");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut acks = Vec::new();
    let mut killed = false;
    for line in lines.by_ref() {
        let line = line.expect("read crash-writer output");
        let mut parts = line.split(' ');
        assert_eq!(parts.next(), Some("ack"), "unexpected line {line:?}");
        let key = parts.next().unwrap().to_owned();
        let revision = parts.next().unwrap().parse().unwrap();
        let value = parts.next().unwrap().parse().unwrap();
        acks.push((key, Ack { revision, value }));
        if !killed && acks.len() >= kill_after {
            child.kill().expect("SIGKILL crash-writer");
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(killed, "crash-writer stopped by itself: {status}");
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let cycles: u64 = std::env::var("RKUBE_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(dir.path());
    let mut last_revision = 0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for cycle in 0..cycles {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let kill_after = 20 + (seed >> 33) as usize % 400;
        let path = db.clone();
        let acks = tokio::task::spawn_blocking(move || run_and_kill(&path, cycle, kill_after))
            .await
            .unwrap();

        let store = SqliteStore::open(SqliteConfig::new(&db)).await.unwrap();
        let revision = store.current_revision().await.unwrap();
        let max_acked = acks.iter().map(|(_, a)| a.revision).max().unwrap_or(0);
        assert!(
            revision >= max_acked,
            "cycle {cycle}: revision {revision} < acknowledged {max_acked}"
        );
        assert!(
            revision >= last_revision,
            "cycle {cycle}: revision went back from {last_revision} to {revision}"
        );
        last_revision = revision;

        // The newest acknowledgement per key must be there (or something newer).
        let mut newest: BTreeMap<&str, &Ack> = BTreeMap::new();
        for (key, ack) in &acks {
            let entry = newest.entry(key).or_insert(ack);
            if ack.revision > entry.revision {
                *entry = ack;
            }
        }
        for (key, ack) in newest {
            let kv = store
                .get(key, None)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("cycle {cycle}: acknowledged {key} is missing"));
            let stored: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
            assert!(
                kv.mod_revision >= ack.revision,
                "cycle {cycle}: {key} went back"
            );
            assert!(
                stored >= ack.value,
                "cycle {cycle}: {key} holds {stored} < {}",
                ack.value
            );
            if !key.starts_with("/crash/counter/") {
                assert_eq!(
                    (kv.mod_revision, stored),
                    (ack.revision, ack.value),
                    "{key}"
                );
            }
        }
    }
}
