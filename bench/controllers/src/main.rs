//! The controller benchmark: a Deployment of N replicas (default 1,000) from create until
//! every pod exists (pods/s, and the controllers' API requests per pod), then a full rolling
//! update of it with pods marked ready as they appear (seconds, pods/s, requests per pod).
//! Everything runs in one process on the real API server (sqlite store, in-process transport).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that fails should stop loudly

/// The allocator: the server's work is many small allocations (JSON values, strings).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rkube_apiserver_tests::fake_kubelet;
use rkube_controllers::ControllerManager;

fn line(case: &str, metric: &str, value: f64, unit: &str) {
    println!("bench=controllers case={case} metric={metric} value={value:.2} unit={unit}");
}

/// Requests the controllers sent: all, and writes (POST, PUT, PATCH, DELETE).
#[derive(Default)]
struct Counts {
    all: AtomicU64,
    writes: AtomicU64,
}

impl Counts {
    fn snapshot(&self) -> (u64, u64) {
        (
            self.all.load(Ordering::SeqCst),
            self.writes.load(Ordering::SeqCst),
        )
    }
}

/// A client that sends through `inner` and counts every request.
fn counting(inner: kube::Client, counts: Arc<Counts>) -> kube::Client {
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        counts.all.fetch_add(1, Ordering::SeqCst);
        if req.method() != http::Method::GET {
            counts.writes.fetch_add(1, Ordering::SeqCst);
        }
        let inner = inner.clone();
        async move { inner.send(req).await }
    });
    kube::Client::new(service, "default")
}

fn deployment(replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "main",
                    "image": "nginx:1.27",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }]},
            },
        },
    }))
    .unwrap()
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pod_count(pods: &Api<Pod>) -> usize {
    pods.list_metadata(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .count()
}

async fn rolled_out(deployments: &Api<Deployment>, replicas: i32) -> bool {
    let d = deployments.get("web").await.unwrap();
    let Some(s) = d.status.as_ref() else {
        return false;
    };
    s.observed_generation == d.metadata.generation
        && s.updated_replicas == Some(replicas)
        && s.replicas == Some(replicas)
        && s.available_replicas == Some(replicas)
}

#[tokio::main]
async fn main() {
    rkube_apiserver::memory::disable_transparent_huge_pages();
    let mut replicas: i32 = 1000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--replicas" => {
                replicas = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--replicas N")
            }
            other => panic!("unknown option {other}"),
        }
    }
    let n = f64::from(replicas);
    let case = format!("deployment-{replicas}");
    let t = rkube_apiserver_tests::start().await;
    let counts = Arc::new(Counts::default());
    let manager = tokio::spawn(
        ControllerManager::new(
            counting(t.client.clone(), counts.clone()),
            t.server.ca_cert(),
        )
        .with_controllers(&["deployment", "replicaset"])
        .run(),
    );
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 1. Create to every pod created.
    let before = counts.snapshot();
    let start = Instant::now();
    deployments
        .create(&PostParams::default(), &deployment(replicas))
        .await
        .unwrap();
    wait_for("every pod exists", async || {
        pod_count(&pods).await >= replicas as usize
    })
    .await;
    let elapsed = start.elapsed().as_secs_f64();
    let after = counts.snapshot();
    line(&case, "create_seconds", elapsed, "s");
    line(&case, "pods_per_s", n / elapsed, "1/s");
    line(
        &case,
        "requests_per_pod",
        (after.0 - before.0) as f64 / n,
        "1",
    );
    line(
        &case,
        "writes_per_pod",
        (after.1 - before.1) as f64 / n,
        "1",
    );

    // Pods become ready; the rollout completes.
    let kubelet = fake_kubelet::start(t.client.clone(), 32);
    wait_for("the first rollout completes", async || {
        rolled_out(&deployments, replicas).await
    })
    .await;

    // 2. A full rolling update (25% surge / 25% unavailable), pods marked ready as they appear.
    let before = counts.snapshot();
    let start = Instant::now();
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.28"}]}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    wait_for("the rolling update completes", async || {
        rolled_out(&deployments, replicas).await
    })
    .await;
    let elapsed = start.elapsed().as_secs_f64();
    let after = counts.snapshot();
    let case = format!("rolling-update-{replicas}");
    line(&case, "seconds", elapsed, "s");
    line(&case, "pods_per_s", n / elapsed, "1/s");
    line(
        &case,
        "requests_per_pod",
        (after.0 - before.0) as f64 / n,
        "1",
    );
    line(
        &case,
        "writes_per_pod",
        (after.1 - before.1) as f64 / n,
        "1",
    );
    drop(kubelet);
    manager.abort();
}
