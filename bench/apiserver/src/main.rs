//! The API server benchmark: the real server on a synced sqlite store, driven through
//! `kube::Api` over the in-process transport (every request takes the full path: routing,
//! decoding, defaulting, validation, storage, encoding; only TLS and sockets are left out).
//! The custom-resource cases ([`custom`]) add a real CRD with CEL rules and a validating
//! webhook on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that fails should stop loudly

/// The allocator: the server's work is many small allocations (JSON values, strings).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod custom;
mod webhook;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use rkube_apiserver::{ApiServer, ServerConfig};
use rkube_store::{SqliteConfig, SqliteStore};

fn line(case: &str, metric: &str, value: f64, unit: &str) {
    println!("bench=apiserver case={case} metric={metric} value={value:.2} unit={unit}");
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx].as_secs_f64() * 1000.0
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
        "spec": {"containers": [{
            "name": "main",
            "image": "nginx:1.27",
            "ports": [{"containerPort": 80}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
        }]},
    }))
    .unwrap()
}

fn rss_kib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

async fn start(dir: &std::path::Path) -> (ApiServer, Duration) {
    let t = Instant::now();
    let store = Arc::new(
        SqliteStore::open(SqliteConfig::new(dir.join("db/state.db")))
            .await
            .unwrap(),
    );
    let mut config = ServerConfig::new(dir);
    config.https_port = 0;
    config.bind_address = [127, 0, 0, 1].into();
    // No controller manager runs here to make the namespaces' default ServiceAccounts, so the
    // ServiceAccount plugin is off, as in upstream's integration servers.
    config.disable_admission_plugins = vec!["ServiceAccount".into()];
    let server = ApiServer::start(config, store).await.unwrap();
    (server, t.elapsed())
}

/// Creates pods `from..to` with `clients` concurrent clients; returns creates/s.
async fn create_pods(api: &Api<Pod>, from: usize, to: usize, clients: usize) -> f64 {
    let t = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let api = api.clone();
            tokio::spawn(async move {
                for i in (from + c..to).step_by(clients) {
                    api.create(&PostParams::default(), &pod(&format!("pod-{i:06}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (to - from) as f64 / t.elapsed().as_secs_f64()
}

async fn read_latencies(api: &Api<Pod>, stored: usize, case: &str) {
    let mut gets = Vec::new();
    for i in 0..2000 {
        let name = format!("pod-{:06}", (i * 7919) % stored);
        let t = Instant::now();
        api.get(&name).await.unwrap();
        gets.push(t.elapsed());
    }
    gets.sort();
    line(case, "get_p50", percentile(&gets, 0.5), "ms");
    line(case, "get_p99", percentile(&gets, 0.99), "ms");

    let mut pages = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let page = api.list(&ListParams::default().limit(500)).await.unwrap();
        assert_eq!(page.items.len(), 500.min(stored));
        pages.push(t.elapsed());
    }
    pages.sort();
    line(case, "list_500_p50", percentile(&pages, 0.5), "ms");
    line(case, "list_500_p99", percentile(&pages, 0.99), "ms");

    // The first full list grows this process's memory (the client decodes every pod) and
    // pays the page faults for it; it is reported apart from the rounds after it.
    let t = Instant::now();
    let all = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), stored);
    drop(all);
    line(
        case,
        "list_all_first",
        t.elapsed().as_secs_f64() * 1000.0,
        "ms",
    );
    let mut full = Vec::new();
    let rounds = if stored > 20_000 { 3 } else { 10 };
    for _ in 0..rounds {
        let t = Instant::now();
        let all = api.list(&ListParams::default()).await.unwrap();
        assert_eq!(all.items.len(), stored);
        full.push(t.elapsed());
    }
    full.sort();
    line(case, "list_all_p50", percentile(&full, 0.5), "ms");
    line(case, "list_all_p99", percentile(&full, 0.99), "ms");
}

async fn watch_delivery(api: &Api<Pod>, from: usize, events: usize) -> f64 {
    let rv = api
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut watchers = Vec::new();
    for _ in 0..100 {
        let stream = api
            .watch(&WatchParams::default().timeout(300), &rv)
            .await
            .unwrap();
        watchers.push(tokio::spawn(async move {
            futures::pin_mut!(stream);
            let mut seen = 0;
            while seen < events {
                match stream.next().await.expect("watch ended").unwrap() {
                    WatchEvent::Added(_) => seen += 1,
                    WatchEvent::Error(e) => panic!("watch error {e:?}"),
                    _ => {}
                }
            }
        }));
    }
    let t = Instant::now();
    create_pods(api, from, from + events, 64).await;
    for w in watchers {
        w.await.unwrap();
    }
    (events * 100) as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut small, mut large, mut custom) = (10_000usize, 100_000usize, 2_000usize);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse().ok())
                .expect("a number after the flag")
        };
        match arg.as_str() {
            "--small" => small = value(),
            "--large" => large = value(),
            "--custom" => custom = value(),
            other => panic!("unknown option {other}; known: --small --large --custom"),
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("rkube-bench-apiserver")
        .tempdir_in("/var/tmp")
        .unwrap();
    let (server, ready) = start(dir.path()).await;
    line(
        "empty-store",
        "start_to_ready",
        ready.as_secs_f64() * 1000.0,
        "ms",
    );
    let api: Api<Pod> = Api::namespaced(server.client(), "default");

    let rss_before = rss_kib();
    let one = create_pods(&api, 0, 1000, 1).await;
    line("pods-1-client", "creates_per_s", one, "1/s");
    let many = create_pods(&api, 1000, small, 64).await;
    line("pods-64-clients", "creates_per_s", many, "1/s");
    let rss_after = rss_kib();
    line(
        &format!("{small}-pods"),
        "rss_growth_per_10k_pods",
        (rss_after - rss_before) / 1024.0 * 10_000.0 / small as f64,
        "MiB",
    );
    line(
        &format!("{small}-pods"),
        "server_rss",
        rss_after / 1024.0,
        "MiB",
    );
    read_latencies(&api, small, &format!("{small}-pods")).await;

    let watch = watch_delivery(&api, small, 2000).await;
    line("100-watchers", "events_per_s", watch, "1/s");
    let stored = small + 2000;

    if custom > 0 {
        custom::run(&server.client(), custom).await;
    }

    if large > stored {
        create_pods(&api, stored, large, 64).await;
        line(
            &format!("{large}-pods"),
            "server_rss",
            rss_kib() / 1024.0,
            "MiB",
        );
        read_latencies(&api, large, &format!("{large}-pods")).await;
        server.shutdown();
        let (again, ready) = start(dir.path()).await;
        line(
            &format!("{large}-pods"),
            "start_to_ready",
            ready.as_secs_f64() * 1000.0,
            "ms",
        );
        again.shutdown();
    }
}
