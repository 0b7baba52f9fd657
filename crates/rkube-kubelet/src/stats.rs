//! Resource use for `/stats/summary` and `/metrics/resource` (CPU and memory of the node and
//! of each pod's containers, from the runtime's container stats and /proc), and the kubelet's
//! own `/metrics`.

use std::collections::HashMap;
use std::fmt::Write;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};

use crate::kubelet::Shared;
use crate::observed::{LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

fn respond(content_type: &'static str, text: String) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

/// Node CPU time used (ns) and memory working set (bytes).
fn node_usage() -> (u64, u64) {
    let hz = 100u64;
    let cpu = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?.to_owned();
            let fields: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|f| f.parse().ok())
                .collect();
            // user nice system (idle iowait excluded) irq softirq steal
            let busy: u64 = fields
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 3 && *i != 4)
                .map(|(_, v)| *v)
                .sum();
            Some(busy * 1_000_000_000 / hz)
        })
        .unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (
        cpu,
        field("MemTotal:").saturating_sub(field("MemAvailable:")),
    )
}

struct ContainerUsage {
    pod: (String, String, String),
    name: String,
    cpu_ns: u64,
    memory: u64,
    timestamp: i64,
}

async fn containers(shared: &Shared) -> Vec<ContainerUsage> {
    let stats = shared
        .runtime
        .list_container_stats()
        .await
        .unwrap_or_default();
    stats
        .into_iter()
        .filter_map(|s| {
            let attrs = s.attributes?;
            let label = |k: &str| attrs.labels.get(k).cloned().unwrap_or_default();
            Some(ContainerUsage {
                pod: (
                    label(LABEL_POD_NAMESPACE),
                    label(LABEL_POD_NAME),
                    label(LABEL_POD_UID),
                ),
                name: label(LABEL_CONTAINER_NAME),
                cpu_ns: s
                    .cpu
                    .as_ref()
                    .and_then(|c| c.usage_core_nano_seconds.as_ref())
                    .map_or(0, |v| v.value),
                memory: s
                    .memory
                    .as_ref()
                    .and_then(|m| m.working_set_bytes.as_ref())
                    .map_or(0, |v| v.value),
                timestamp: s.cpu.as_ref().map_or(0, |c| c.timestamp),
            })
        })
        .collect()
}

fn rfc3339(ns: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// `/stats/summary`, the Summary API's shape (node and pods; CPU and memory).
pub async fn summary(shared: &Shared) -> Response<Body> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let (cpu, memory) = node_usage();
    let mut pods: HashMap<(String, String, String), Vec<serde_json::Value>> = HashMap::new();
    for c in containers(shared).await {
        pods.entry(c.pod.clone())
            .or_default()
            .push(serde_json::json!({
                "name": c.name,
                "cpu": {"time": rfc3339(c.timestamp), "usageCoreNanoSeconds": c.cpu_ns},
                "memory": {"time": rfc3339(c.timestamp), "workingSetBytes": c.memory},
            }));
    }
    let pods: Vec<serde_json::Value> = pods
        .into_iter()
        .map(|((ns, name, uid), containers)| {
            let cpu: u64 = containers
                .iter()
                .filter_map(|c| c["cpu"]["usageCoreNanoSeconds"].as_u64())
                .sum();
            let mem: u64 = containers
                .iter()
                .filter_map(|c| c["memory"]["workingSetBytes"].as_u64())
                .sum();
            serde_json::json!({
                "podRef": {"name": name, "namespace": ns, "uid": uid},
                "containers": containers,
                "cpu": {"time": rfc3339(now), "usageCoreNanoSeconds": cpu},
                "memory": {"time": rfc3339(now), "workingSetBytes": mem},
            })
        })
        .collect();
    let body = serde_json::json!({
        "node": {
            "nodeName": shared.config.node_name,
            "cpu": {"time": rfc3339(now), "usageCoreNanoSeconds": cpu},
            "memory": {"time": rfc3339(now), "workingSetBytes": memory},
        },
        "pods": pods,
    });
    respond("application/json", body.to_string())
}

/// `/metrics/resource` in the Prometheus text format, as metrics-server reads it.
pub async fn resource_metrics(shared: &Shared) -> Response<Body> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let (cpu, memory) = node_usage();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds"
    );
    let _ = writeln!(out, "# TYPE node_cpu_usage_seconds_total counter");
    let _ = writeln!(
        out,
        "node_cpu_usage_seconds_total {} {now_ms}",
        cpu as f64 / 1e9
    );
    let _ = writeln!(
        out,
        "# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes"
    );
    let _ = writeln!(out, "# TYPE node_memory_working_set_bytes gauge");
    let _ = writeln!(out, "node_memory_working_set_bytes {memory} {now_ms}");
    let list = containers(shared).await;
    let _ = writeln!(
        out,
        "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds"
    );
    let _ = writeln!(out, "# TYPE container_cpu_usage_seconds_total counter");
    for c in &list {
        let _ = writeln!(
            out,
            "container_cpu_usage_seconds_total{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}} {} {now_ms}",
            c.name,
            c.pod.0,
            c.pod.1,
            c.cpu_ns as f64 / 1e9
        );
    }
    let _ = writeln!(
        out,
        "# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes"
    );
    let _ = writeln!(out, "# TYPE container_memory_working_set_bytes gauge");
    for c in &list {
        let _ = writeln!(
            out,
            "container_memory_working_set_bytes{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}} {} {now_ms}",
            c.name, c.pod.0, c.pod.1, c.memory
        );
    }
    respond("text/plain; version=0.0.4", out)
}

/// The kubelet's own metrics.
pub async fn metrics(shared: &Shared) -> String {
    let pods = shared.pods.lock().await.len();
    let containers = shared
        .runtime
        .list_containers(None)
        .await
        .map(|l| {
            l.iter()
                .filter(|c| c.state == crate::cri::v1::ContainerState::ContainerRunning as i32)
                .count()
        })
        .unwrap_or(0);
    format!(
        "# HELP kubelet_running_pods [ALPHA] Number of pods that have a running pod sandbox\n# TYPE kubelet_running_pods gauge\nkubelet_running_pods {pods}\n# HELP kubelet_running_containers [ALPHA] Number of containers currently running\n# TYPE kubelet_running_containers gauge\nkubelet_running_containers{{container_state=\"running\"}} {containers}\n"
    )
}
