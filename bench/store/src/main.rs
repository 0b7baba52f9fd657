//! The store benchmark: the same workload on the sqlite backend (in a directory on disk) and on
//! a real etcd, both syncing every acknowledged write.
//!
//! Cases: sequential creates from one writer; creates from 64 concurrent writers; and watch
//! delivery, 100 watchers each receiving every event of a stream written by 64 writers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that fails should stop loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rkube_store::{EtcdConfig, EtcdStore, SqliteConfig, SqliteStore, Store, WatchOptions};
use rkube_store_tests::EtcdServer;

struct Options {
    /// Writes in each concurrent case.
    writes: usize,
    /// Writes in the sequential case (each waits for a sync, so fewer).
    sequential: usize,
    /// Value size in bytes (a typical Kubernetes object is 1–4 KiB of JSON).
    size: usize,
    watchers: usize,
    writers: usize,
}

fn parse_options() -> Options {
    let mut options = Options {
        writes: 20_000,
        sequential: 2_000,
        size: 1024,
        watchers: 100,
        writers: 64,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse().ok())
                .expect("a number after the flag")
        };
        match arg.as_str() {
            "--writes" => options.writes = value(),
            "--sequential" => options.sequential = value(),
            "--size" => options.size = value(),
            "--watchers" => options.watchers = value(),
            other => {
                panic!("unknown option {other}; known: --writes --sequential --size --watchers")
            }
        }
    }
    options
}

fn line(case: &str, metric: &str, value: f64, unit: &str) {
    println!("bench=store case={case} metric={metric} value={value:.1} unit={unit}");
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx].as_secs_f64() * 1000.0
}

/// Creates `count` keys, `writers` at a time; returns writes/s and the sorted latencies.
async fn write_load(
    store: &Arc<dyn Store>,
    prefix: &str,
    count: usize,
    writers: usize,
    size: usize,
) -> (f64, Vec<Duration>) {
    let value = vec![b'x'; size];
    let started = Instant::now();
    let tasks = (0..writers).map(|w| {
        let (store, value, prefix) = (store.clone(), value.clone(), prefix.to_owned());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in (w..count).step_by(writers) {
                let t = Instant::now();
                store
                    .create(&format!("{prefix}{i:08}"), value.clone(), None)
                    .await
                    .unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        })
    });
    let mut latencies = Vec::with_capacity(count);
    for task in tasks.collect::<Vec<_>>() {
        latencies.extend(task.await.unwrap());
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    (rate, latencies)
}

/// `watchers` watchers each receive all `count` events written by `writers` writers; returns
/// events delivered per second, summed over watchers.
async fn watch_load(store: &Arc<dyn Store>, o: &Options) -> f64 {
    let prefix = "/bench/watch/";
    let start = store.current_revision().await.unwrap() + 1;
    let count = o.writes / 4;
    let mut watches = Vec::new();
    for _ in 0..o.watchers {
        watches.push(
            store
                .watch(prefix, WatchOptions::from_revision(start))
                .await
                .unwrap(),
        );
    }
    let started = Instant::now();
    let receivers = watches.into_iter().map(|mut watch| {
        tokio::spawn(async move {
            let mut seen = 0;
            while seen < count {
                let event = watch
                    .next()
                    .await
                    .expect("watch ended")
                    .expect("watch failed");
                if event.key().is_some() {
                    seen += 1;
                }
            }
        })
    });
    let receivers: Vec<_> = receivers.collect();
    write_load(store, prefix, count, o.writers, o.size).await;
    for r in receivers {
        r.await.unwrap();
    }
    (count * o.watchers) as f64 / started.elapsed().as_secs_f64()
}

struct Figures {
    sequential: f64,
    concurrent: f64,
    watch: f64,
}

async fn run(name: &str, store: Arc<dyn Store>, o: &Options) -> Figures {
    let (sequential, seq_lat) = write_load(&store, "/bench/seq/", o.sequential, 1, o.size).await;
    line(
        &format!("{name}-sequential"),
        "writes_per_s",
        sequential,
        "1/s",
    );
    line(
        &format!("{name}-sequential"),
        "p50_latency",
        percentile(&seq_lat, 0.50),
        "ms",
    );
    line(
        &format!("{name}-sequential"),
        "p99_latency",
        percentile(&seq_lat, 0.99),
        "ms",
    );

    let case = format!("{name}-{}-writers", o.writers);
    let (concurrent, lat) = write_load(&store, "/bench/par/", o.writes, o.writers, o.size).await;
    line(&case, "writes_per_s", concurrent, "1/s");
    line(&case, "p50_latency", percentile(&lat, 0.50), "ms");
    line(&case, "p99_latency", percentile(&lat, 0.99), "ms");

    let watch = watch_load(&store, o).await;
    line(
        &format!("{name}-{}-watchers", o.watchers),
        "events_per_s",
        watch,
        "1/s",
    );
    Figures {
        sequential,
        concurrent,
        watch,
    }
}

#[tokio::main]
async fn main() {
    let o = parse_options();

    let dir = tempfile::Builder::new()
        .prefix("rkube-bench-store")
        .tempdir_in("/var/tmp")
        .unwrap();
    let sqlite: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteConfig::new(dir.path().join("state.db")))
            .await
            .unwrap(),
    );
    let s = run("sqlite", sqlite, &o).await;

    let etcd_server = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .unwrap();
    let etcd: Arc<dyn Store> = Arc::new(
        EtcdStore::connect(EtcdConfig::new(vec![etcd_server.endpoint()]))
            .await
            .unwrap(),
    );
    let e = run("etcd", etcd, &o).await;

    line(
        "sqlite-over-etcd",
        "sequential_ratio",
        s.sequential / e.sequential,
        "x",
    );
    line(
        "sqlite-over-etcd",
        "concurrent_writes_ratio",
        s.concurrent / e.concurrent,
        "x",
    );
    line(
        "sqlite-over-etcd",
        "watch_delivery_ratio",
        s.watch / e.watch,
        "x",
    );
}
