//! A child process for the crash-durability test: it writes to a sqlite store from many tasks
//! and prints a line for every write the store acknowledged, until it is killed.
//!
//! Usage: `crash-writer <database> <cycle>`. Output lines: `ack <key> <revision> <value>`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use rkube_store::{Error, SqliteConfig, SqliteStore, Store};

const TASKS: u64 = 16;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(cycle)) = (args.next(), args.next().and_then(|c| c.parse::<u64>().ok()))
    else {
        eprintln!("usage: crash-writer <database> <cycle>");
        std::process::exit(2);
    };
    let store = match SqliteStore::open(SqliteConfig::new(&path)).await {
        Ok(store) => Arc::new(store),
        Err(err) => {
            eprintln!("crash-writer: {err}");
            std::process::exit(1);
        }
    };
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let tasks = (0..TASKS).map(|task| {
        let (store, out) = (store.clone(), out.clone());
        tokio::spawn(async move {
            let counter = format!("/crash/counter/{task}");
            for n in 0.. {
                // A key of its own, created once and never touched again.
                let key = format!("/crash/c{cycle}/t{task}/n{n}");
                let value = n.to_string();
                let rev = store.create(&key, value.clone().into_bytes(), None).await;
                report(&out, &key, rev, &value);
                // And a counter that only grows, updated by compare-and-swap.
                let value = (cycle * 1_000_000 + n).to_string();
                let rev = match store.get(&counter, None).await {
                    Ok(Some(kv)) => {
                        store
                            .update(&counter, value.clone().into_bytes(), kv.mod_revision, None)
                            .await
                    }
                    Ok(None) => {
                        store
                            .create(&counter, value.clone().into_bytes(), None)
                            .await
                    }
                    Err(err) => Err(err),
                };
                report(&out, &counter, rev, &value);
            }
        })
    });
    for task in tasks.collect::<Vec<_>>() {
        let _ = task.await;
    }
}

fn report(out: &Mutex<std::io::Stdout>, key: &str, rev: Result<i64, Error>, value: &str) {
    match rev {
        Ok(rev) => {
            let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(out, "ack {key} {rev} {value}");
            let _ = out.flush();
        }
        Err(err) => {
            eprintln!("crash-writer: write of {key} failed: {err}");
            std::process::exit(1);
        }
    }
}
