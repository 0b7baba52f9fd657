//! The node benchmark: how fast a pod goes from create to Running on a real node (containerd,
//! runc, CNI), one at a time and many at once, and what the agent and its containerd cost
//! idle and with pods running.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that fails should stop loudly

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};

fn line(case: &str, metric: &str, value: f64, unit: &str) {
    println!("bench=node case={case} metric={metric} value={value:.2} unit={unit}");
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx].as_secs_f64() * 1000.0
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Processes that are killed (with their process group) when dropped.
struct Guard(Vec<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        for child in self.0.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU seconds (user + system) and RSS bytes of a process.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    (ticks / 100.0, rss)
}

fn find_process(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        (text.starts_with("containerd ") && text.contains(needle))
            .then(|| e.file_name().to_string_lossy().parse().ok())
            .flatten()
    })
}

/// CPU use (percent of one core) and RSS (MiB) of `pid` over `window`.
async fn measure(pid: u32, window: Duration) -> (f64, f64) {
    let (cpu0, _) = usage(pid);
    tokio::time::sleep(window).await;
    let (cpu1, rss) = usage(pid);
    (
        (cpu1 - cpu0) / window.as_secs_f64() * 100.0,
        rss as f64 / 1024.0 / 1024.0,
    )
}

fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"bench": "node"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": image, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}],
        },
    }))
    .unwrap()
}

/// Creates the pods at once and returns each one's create -> Running time seen by a watch.
async fn start_pods(pods: &Api<Pod>, names: &[String], image: &str) -> Vec<Duration> {
    let list = pods.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap_or_default();
    let mut watch = pods
        .watch(&WatchParams::default().labels("bench=node"), &rv)
        .await
        .unwrap()
        .boxed();
    let started = Instant::now();
    let creates = names.iter().map(|n| {
        let (pods, pod) = (pods.clone(), pod(n, image));
        async move { pods.create(&PostParams::default(), &pod).await.unwrap() }
    });
    futures::future::join_all(creates).await;
    let mut done = std::collections::HashMap::new();
    let deadline = started + Duration::from_secs(120);
    while done.len() < names.len() {
        let next = tokio::time::timeout_at(deadline.into(), watch.next()).await;
        let Ok(Some(Ok(event))) = next else {
            panic!(
                "pods not Running within 120 s ({} of {})",
                done.len(),
                names.len()
            );
        };
        if let WatchEvent::Modified(p) | WatchEvent::Added(p) = event {
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            let name = p.metadata.name.clone().unwrap_or_default();
            if running && names.contains(&name) {
                done.entry(name).or_insert_with(|| started.elapsed());
            }
        }
    }
    done.into_values().collect()
}

async fn delete_all(pods: &Api<Pod>) {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    let _ = pods
        .delete_collection(&params, &ListParams::default().labels("bench=node"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let left = pods
            .list(&ListParams::default().labels("bench=node"))
            .await
            .map(|l| l.items.len())
            .unwrap_or(1);
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("pods not gone within 120 s");
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rkube = PathBuf::from(arg("--rkube").expect("--rkube PATH"));
    let single: usize = arg("--single").and_then(|v| v.parse().ok()).unwrap_or(20);
    let batch: usize = arg("--batch").and_then(|v| v.parse().ok()).unwrap_or(30);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir()?;
    let mut guard = Guard(Vec::new());

    // The registry and the image.
    let registry_port = free_port();
    guard.0.push(
        Command::new("python3")
            .arg(repo.join("tools/test-images/registry.py"))
            .args(["serve", "--root"])
            .arg(dir.path().join("registry"))
            .args(["--port", &registry_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let registry = format!("127.0.0.1:{registry_port}");
    while std::net::TcpStream::connect(&registry).is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pushed = Command::new("python3")
        .arg(repo.join("tools/test-images/build_push.py"))
        .args(["--registry", &registry, "rkube-bench/busybox:1"])
        .output()?;
    anyhow::ensure!(
        pushed.status.success(),
        "pushing the image: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let image = format!("{registry}/rkube-bench/busybox:1");
    let registries = dir.path().join("registries.yaml");
    std::fs::write(
        &registries,
        format!("mirrors:\n  \"{registry}\":\n    endpoint: [\"http://{registry}\"]\n"),
    )?;

    // The control plane, then an agent joined to it.
    let api_port = free_port();
    let server_dir = dir.path().join("server");
    let agent_dir = dir.path().join("agent");
    let id = std::process::id() % 100_000;
    guard.0.push(
        Command::new(&rkube)
            .args([
                "server",
                "--disable-agent",
                "--bind-address",
                "127.0.0.1",
                "--https-listen-port",
                &api_port.to_string(),
            ])
            .arg("--data-dir")
            .arg(&server_dir)
            .args([
                "--cluster-cidr",
                "10.231.0.0/16",
                "--service-cidr",
                "10.232.0.0/16",
            ])
            .stdout(std::fs::File::create(dir.path().join("server.log"))?)
            .stderr(Stdio::null())
            .spawn()?,
    );
    let token_file = server_dir.join("node-token");
    while !token_file.exists() || !server_dir.join("kubeconfig.yaml").exists() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = std::fs::read_to_string(&token_file)?;
    let agent = Command::new(&rkube)
        .args([
            "agent",
            "--server",
            &format!("https://127.0.0.1:{api_port}"),
            "--token",
            token.trim(),
        ])
        .arg("--data-dir")
        .arg(&agent_dir)
        .args([
            "--node-name",
            &format!("bench-{id}"),
            "--node-ip",
            "127.0.0.1",
            "--kubelet-port",
            &free_port().to_string(),
        ])
        .args([
            "--pod-bridge",
            &format!("rkb{id}"),
            "--cgroup-root",
            &format!("/rkube-bench-{id}"),
        ])
        .arg("--registries-config")
        .arg(&registries)
        .stdout(std::fs::File::create(dir.path().join("agent.log"))?)
        .stderr(Stdio::null())
        .spawn()?;
    let agent_pid = agent.id();
    guard.0.push(agent);
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(server_dir.join("kubeconfig.yaml"))?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let ready_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = nodes
            .list(&ListParams::default())
            .await
            .ok()
            .is_some_and(|l| {
                l.items.iter().any(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
            });
        if ready {
            break;
        }
        anyhow::ensure!(
            Instant::now() < ready_deadline,
            "the node did not become Ready (logs in {})",
            dir.path().display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let containerd_pid =
        find_process(&agent_dir.display().to_string()).expect("the agent's containerd");
    let pods: Api<Pod> = Api::namespaced(client, "default");

    // Warm-up: the image is pulled once.
    start_pods(&pods, &["warmup".to_owned()], &image).await;
    delete_all(&pods).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (cpu, rss) = measure(agent_pid, Duration::from_secs(10)).await;
    line("idle", "agent_cpu", cpu, "%");
    line("idle", "agent_rss", rss, "MiB");
    let (cpu, rss) = measure(containerd_pid, Duration::from_secs(5)).await;
    line("idle", "containerd_cpu", cpu, "%");
    line("idle", "containerd_rss", rss, "MiB");

    let mut one = Vec::new();
    for i in 0..single {
        let d = start_pods(&pods, &[format!("one-{i}")], &image).await;
        one.extend(d);
        delete_all(&pods).await;
    }
    one.sort();
    line("1-pod", "startup_p50", percentile(&one, 0.5), "ms");
    line("1-pod", "startup_p99", percentile(&one, 0.99), "ms");

    let names: Vec<String> = (0..batch).map(|i| format!("many-{i}")).collect();
    let mut many = start_pods(&pods, &names, &image).await;
    many.sort();
    let case = format!("{batch}-pods");
    line(&case, "startup_p50", percentile(&many, 0.5), "ms");
    line(&case, "startup_p99", percentile(&many, 0.99), "ms");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (cpu, rss) = measure(agent_pid, Duration::from_secs(10)).await;
    line(&format!("{batch}-pods-running"), "agent_cpu", cpu, "%");
    line(&format!("{batch}-pods-running"), "agent_rss", rss, "MiB");
    let (cpu, rss) = measure(containerd_pid, Duration::from_secs(5)).await;
    line(&format!("{batch}-pods-running"), "containerd_cpu", cpu, "%");
    line(
        &format!("{batch}-pods-running"),
        "containerd_rss",
        rss,
        "MiB",
    );
    delete_all(&pods).await;

    // Stop the agent and server, then remove what the agent made.
    drop(guard);
    let _ = Command::new(&rkube)
        .args(["killall", "--data-dir"])
        .arg(&agent_dir)
        .status();
    Ok(())
}
