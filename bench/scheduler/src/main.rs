//! The scheduler benchmark, after upstream's scheduler_perf: for each workload, a fresh API
//! server on a synced sqlite store with the scheduler in process; nodes and initial pods are
//! created and scheduled, then the measured pods are created and the time until each is
//! bound is taken from a watch, as scheduler_perf's throughput collector does.
//!
//! Figures per workload: average throughput (measured pods / time from the first create to
//! the last binding), throughput percentiles over 1 s windows, and the p50/p99 latency from
//! a pod's creation to its binding being observed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that fails should stop loudly

/// The allocator: the server's work is many small allocations (JSON values, strings).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::watcher;
use rkube_apiserver::{ApiServer, ServerConfig};
use rkube_scheduler::{Scheduler, SchedulerConfig};
use rkube_store::{SqliteConfig, SqliteStore};
use serde_json::{Value, json};

/// A pod as the benchmark's own clients handle it: sent as its template's JSON with its own
/// name, read back as no more than they look at (its name, resourceVersion and node). What
/// the benchmark measures is the server and the scheduler; its clients share the same cores,
/// so they neither rebuild nor re-encode the template per pod, nor decode more than that.
#[derive(Clone, Debug)]
struct BenchPod {
    /// The pod's JSON to send (`None` for one read back).
    text: Option<Box<serde_json::value::RawValue>>,
    metadata: ObjectMeta,
    node: Option<String>,
}

/// A template's JSON, to be sent with one name after another.
struct PodText {
    before: String,
    after: String,
}

impl PodText {
    const NAME: &str = "\u{0}name\u{0}";

    fn new(template: &str) -> Self {
        let text = serde_json::to_string(&pod_template(template, Self::NAME)).unwrap();
        let quoted = serde_json::to_string(Self::NAME).unwrap();
        let (before, after) = text.split_once(&quoted).unwrap();
        assert!(!after.contains(&quoted), "the name is in the template once");
        Self {
            before: before.to_owned(),
            after: after.to_owned(),
        }
    }

    /// The pod named `name` (a plain name, nothing to escape).
    fn pod(&self, name: &str) -> BenchPod {
        let text = format!("{}\"{name}\"{}", self.before, self.after);
        BenchPod {
            text: Some(serde_json::value::RawValue::from_string(text).unwrap()),
            metadata: ObjectMeta::default(),
            node: None,
        }
    }
}

impl serde::Serialize for BenchPod {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.text {
            Some(text) => text.serialize(serializer),
            None => Err(serde::ser::Error::custom("a pod read back is not sent")),
        }
    }
}

impl<'de> serde::Deserialize<'de> for BenchPod {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Wire {
            metadata: WireMeta,
            spec: Option<WireSpec>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct WireMeta {
            name: Option<String>,
            resource_version: Option<String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct WireSpec {
            node_name: Option<String>,
        }
        let wire = Wire::deserialize(deserializer)?;
        Ok(Self {
            text: None,
            metadata: ObjectMeta {
                name: wire.metadata.name,
                resource_version: wire.metadata.resource_version,
                ..ObjectMeta::default()
            },
            node: wire.spec.and_then(|s| s.node_name),
        })
    }
}

impl kube::Resource for BenchPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
        Pod::kind(dt)
    }
    fn group(dt: &()) -> std::borrow::Cow<'_, str> {
        Pod::group(dt)
    }
    fn version(dt: &()) -> std::borrow::Cow<'_, str> {
        Pod::version(dt)
    }
    fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
        Pod::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

fn line(case: &str, metric: &str, value: f64, unit: &str) {
    println!("bench=scheduler case={case} metric={metric} value={value:.2} unit={unit}");
}

/// scheduler_perf's templates/node-default.yaml, with a workload's labels.
fn node_template(name: &str, labels: Value) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "capacity": {"pods": "110", "cpu": "4", "memory": "32Gi"},
            "conditions": [{"status": "True", "type": "Ready"}],
            "phase": "Running",
        },
    }))
    .unwrap()
}

fn container(cpu: &str) -> Value {
    json!([{
        "image": "registry.k8s.io/pause:3.10",
        "name": "pause",
        "ports": [{"containerPort": 80}],
        "resources": {"limits": {"cpu": cpu, "memory": "500Mi"}, "requests": {"cpu": cpu, "memory": "500Mi"}},
    }])
}

/// The pod templates of scheduler_perf (templates/*.yaml), by file name.
fn pod_template(template: &str, name: &str) -> Pod {
    let value = match template {
        "pod-default" => {
            json!({"metadata": {"name": name}, "spec": {"containers": container("100m")}})
        }
        "pod-low-priority" => json!({"metadata": {"name": name}, "spec": {
            "terminationGracePeriodSeconds": 0, "containers": container("900m")}}),
        "pod-high-priority" => json!({"metadata": {"name": name}, "spec": {
            "priority": 10, "containers": container("3000m")}}),
        "pod-with-pod-anti-affinity" => json!({
            "metadata": {"name": name, "labels": {"color": "green"}},
            "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"color": "green"}},
                "topologyKey": "kubernetes.io/hostname",
                "namespaces": ["sched-1", "sched-0"]}]}},
                "containers": container("100m")}}),
        "pod-with-pod-affinity" => json!({
            "metadata": {"name": name, "labels": {"color": "blue"}},
            "spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"color": "blue"}},
                "topologyKey": "topology.kubernetes.io/zone",
                "namespaces": ["sched-1", "sched-0"]}]}},
                "containers": container("100m")}}),
        "pod-with-topology-spreading" => json!({
            "metadata": {"name": name, "labels": {"color": "blue"}},
            "spec": {"topologySpreadConstraints": [{
                "maxSkew": 5, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"color": "blue"}}}],
                "containers": container("100m")}}),
        other => panic!("no template {other}"),
    };
    serde_json::from_value(value).unwrap()
}

/// How nodes are labelled (scheduler_perf's node prepare strategies).
#[derive(Clone, Copy)]
enum NodeLabels {
    None,
    /// uniqueNodeLabelStrategy on kubernetes.io/hostname.
    UniqueHostname,
    /// labelNodePrepareStrategy: topology.kubernetes.io/zone from these values in turn.
    Zones(&'static [&'static str]),
}

struct Workload {
    name: &'static str,
    nodes: usize,
    labels: NodeLabels,
    init_pods: usize,
    init_template: &'static str,
    measure_pods: usize,
    measure_template: &'static str,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "SchedulingBasic/500Nodes",
        nodes: 500,
        labels: NodeLabels::None,
        init_pods: 500,
        init_template: "pod-default",
        measure_pods: 1000,
        measure_template: "pod-default",
    },
    Workload {
        name: "SchedulingBasic/5000Nodes_10000Pods",
        nodes: 5000,
        labels: NodeLabels::None,
        init_pods: 1000,
        init_template: "pod-default",
        measure_pods: 10000,
        measure_template: "pod-default",
    },
    Workload {
        name: "SchedulingPodAntiAffinity/500Nodes",
        nodes: 500,
        labels: NodeLabels::UniqueHostname,
        init_pods: 100,
        init_template: "pod-with-pod-anti-affinity",
        measure_pods: 400,
        measure_template: "pod-with-pod-anti-affinity",
    },
    Workload {
        name: "SchedulingPodAffinity/500Nodes",
        nodes: 500,
        labels: NodeLabels::Zones(&["zone1"]),
        init_pods: 500,
        init_template: "pod-with-pod-affinity",
        measure_pods: 1000,
        measure_template: "pod-with-pod-affinity",
    },
    Workload {
        name: "TopologySpreading/500Nodes",
        nodes: 500,
        labels: NodeLabels::Zones(&["moon-1", "moon-2", "moon-3"]),
        init_pods: 1000,
        init_template: "pod-default",
        measure_pods: 1000,
        measure_template: "pod-with-topology-spreading",
    },
    Workload {
        name: "Preemption/500Nodes",
        nodes: 500,
        labels: NodeLabels::None,
        init_pods: 2000,
        init_template: "pod-low-priority",
        measure_pods: 500,
        measure_template: "pod-high-priority",
    },
];

const CLIENTS: usize = 64;

async fn create_all<K, F>(api: Api<K>, count: usize, make: F)
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    F: Fn(usize) -> K + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let api = api.clone();
            let make = make.clone();
            tokio::spawn(async move {
                for i in (c..count).step_by(CLIENTS) {
                    api.create(&PostParams::default(), &make(i)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Watches a namespace's pods and records when each is first seen bound.
fn watch_bindings(
    client: &kube::Client,
    namespace: &str,
) -> (
    Arc<Mutex<HashMap<String, Instant>>>,
    tokio::task::JoinHandle<()>,
) {
    let bound: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = bound.clone();
    let (client, namespace) = (client.clone(), namespace.to_owned());
    let task = tokio::spawn(async move {
        let api: Api<BenchPod> = Api::namespaced(client, &namespace);
        let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = stream.next().await {
            let pod = match event {
                Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => p,
                _ => continue,
            };
            if pod.node.is_some() {
                let name = pod.metadata.name.clone().unwrap_or_default();
                seen.lock()
                    .unwrap()
                    .entry(name)
                    .or_insert_with(Instant::now);
            }
        }
    });
    (bound, task)
}

async fn wait_for(bound: &Mutex<HashMap<String, Instant>>, count: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while bound.lock().unwrap().len() < count {
        assert!(
            Instant::now() < deadline,
            "{what}: not all pods bound in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// CPU seconds this process has used (user and system), from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which may hold spaces) start at state; utime and stime
    // are the 14th and 15th fields of the line, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

async fn run(w: &Workload) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(SqliteConfig::new(dir.path().join("db/state.db")))
            .await
            .unwrap(),
    );
    let mut config = ServerConfig::new(dir.path());
    config.https_port = 0;
    config.bind_address = [127, 0, 0, 1].into();
    // As upstream's scheduler_perf: its templates set spec.priority directly, and no
    // controller manager makes ServiceAccounts.
    config.disable_admission_plugins = vec!["Priority".into(), "ServiceAccount".into()];
    let server = ApiServer::start(config, store).await.unwrap();
    let client = server.client();
    let scheduler = Scheduler::new(client.clone(), SchedulerConfig::default()).unwrap();
    let metrics = scheduler.metrics();
    let scheduler = tokio::spawn(scheduler.run());

    for ns in ["sched-0", "sched-1"] {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let labels = w.labels;
    create_all(Api::<Node>::all(client.clone()), w.nodes, move |i| {
        let name = format!("scheduler-perf-{i:05}");
        let labels = match labels {
            NodeLabels::None => json!({}),
            NodeLabels::UniqueHostname => json!({"kubernetes.io/hostname": name}),
            NodeLabels::Zones(zones) => {
                json!({"topology.kubernetes.io/zone": zones[i % zones.len()]})
            }
        };
        node_template(&name, labels)
    })
    .await;

    let init_api: Api<BenchPod> = Api::namespaced(client.clone(), "sched-0");
    let (init_bound, init_watch) = watch_bindings(&client, "sched-0");
    let text = PodText::new(w.init_template);
    create_all(init_api, w.init_pods, move |i| {
        text.pod(&format!("init-{i:06}"))
    })
    .await;
    // Preemption's initial pods fill every node exactly; all must be placed before measuring.
    wait_for(&init_bound, w.init_pods, w.name).await;
    init_watch.abort();

    let api: Api<BenchPod> = Api::namespaced(client.clone(), "sched-1");
    let text = PodText::new(w.measure_template);
    let (bound, watch) = watch_bindings(&client, "sched-1");
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let sampler = {
        let bound = bound.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = bound.lock().unwrap().len();
                samples.push((now - last) as f64);
                last = now;
                if samples.len() > 10_000 {
                    break samples;
                }
            }
        })
    };
    let record = created.clone();
    create_all(api, w.measure_pods, move |i| {
        let name = format!("pod-{i:06}");
        record.lock().unwrap().insert(name.clone(), Instant::now());
        text.pod(&name)
    })
    .await;
    let create_secs = start.elapsed().as_secs_f64();
    wait_for(&bound, w.measure_pods, w.name).await;
    let last = bound.lock().unwrap().values().max().copied().unwrap();
    let elapsed = last.duration_since(start).as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    sampler.abort();
    watch.abort();
    let samples_task = sampler.await;
    drop(samples_task);

    let mut latencies: Vec<f64> = {
        let created = created.lock().unwrap();
        let bound = bound.lock().unwrap();
        bound
            .iter()
            .filter_map(|(name, at)| {
                Some(at.duration_since(*created.get(name)?).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    latencies.sort_by(f64::total_cmp);
    // 1 s windows of bindings, as scheduler_perf samples throughput; a partial last window
    // is scaled to a rate.
    let mut windows: Vec<f64> = Vec::new();
    {
        let bound = bound.lock().unwrap();
        let full = elapsed.floor() as usize;
        let mut counts = vec![0f64; full + 1];
        for at in bound.values() {
            let slot = (at.duration_since(start).as_secs_f64() as usize).min(full);
            counts[slot] += 1.0;
        }
        let tail = elapsed - full as f64;
        if tail > 0.05 {
            counts[full] /= tail;
        } else {
            counts.pop();
        }
        windows.extend(counts);
    }
    windows.sort_by(f64::total_cmp);

    let case = w.name;
    line(
        case,
        "throughput_avg",
        w.measure_pods as f64 / elapsed,
        "pods/s",
    );
    line(case, "throughput_p50", percentile(&windows, 0.5), "pods/s");
    line(case, "throughput_p90", percentile(&windows, 0.9), "pods/s");
    line(case, "throughput_p99", percentile(&windows, 0.99), "pods/s");
    line(case, "latency_p50", percentile(&latencies, 0.5), "ms");
    line(case, "latency_p99", percentile(&latencies, 0.99), "ms");
    line(
        case,
        "creates_per_s",
        w.measure_pods as f64 / create_secs,
        "pods/s",
    );
    // The whole process (API server, store, scheduler and the benchmark's own clients):
    // steadier than throughput on a shared machine.
    line(case, "cpu_per_pod", cpu * 1e6 / w.measure_pods as f64, "us");
    line(
        case,
        "schedule_attempts",
        metrics.attempts(rkube_scheduler::metrics::AttemptResult::Scheduled) as f64,
        "count",
    );
    scheduler.abort();
    server.shutdown();
}

/// The scheduling cycle alone, without the API server: the default profile over a cache
/// of the workload's nodes and initial pods, each measured pod scheduled and assumed, as
/// the scheduler's loop does between informer events. This is the scheduler's own ceiling.
fn cycle_only(w: &Workload) {
    use rkube_scheduler::cache::Snapshot;
    use rkube_scheduler::framework::CycleState;
    use rkube_scheduler::profile::Rng;
    use rkube_scheduler::types::PodInfo;

    let profile = SchedulerConfig::default()
        .build_profiles()
        .unwrap()
        .remove(0);
    let mut cache = Snapshot::new();
    for i in 0..w.nodes {
        let name = format!("scheduler-perf-{i:05}");
        let labels = match w.labels {
            NodeLabels::None => json!({}),
            NodeLabels::UniqueHostname => json!({"kubernetes.io/hostname": name}),
            NodeLabels::Zones(zones) => {
                json!({"topology.kubernetes.io/zone": zones[i % zones.len()]})
            }
        };
        cache.upsert_node(node_template(&name, labels));
    }
    let compile = |template: &str, ns: &str, name: String| {
        let mut pod = pod_template(template, &name);
        pod.metadata.namespace = Some(ns.into());
        Arc::new(PodInfo::new(pod))
    };
    let (mut start, mut rng) = (0, Rng::new(7));
    let mut place = |cache: &mut Snapshot, pod: Arc<PodInfo>| -> bool {
        let mut state = CycleState::default();
        match profile.schedule(&mut state, &pod, cache, &mut start, &mut rng) {
            Ok(p) => {
                let node = cache.nodes[p.node].name.clone();
                cache.add_pod(pod, &node, true);
                true
            }
            Err(_) => false,
        }
    };
    for i in 0..w.init_pods {
        place(
            &mut cache,
            compile(w.init_template, "sched-0", format!("init-{i:06}")),
        );
    }
    let pods: Vec<_> = (0..w.measure_pods)
        .map(|i| compile(w.measure_template, "sched-1", format!("pod-{i:06}")))
        .collect();
    let t = Instant::now();
    let mut placed = 0;
    for pod in pods {
        placed += usize::from(place(&mut cache, pod));
    }
    let secs = t.elapsed().as_secs_f64();
    line(
        w.name,
        "cycle_only_pods_per_s",
        w.measure_pods as f64 / secs,
        "pods/s",
    );
    line(w.name, "cycle_only_placed", placed as f64, "count");
}

#[tokio::main]
async fn main() {
    rkube_apiserver::memory::disable_transparent_huge_pages();
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    for w in WORKLOADS {
        if only.as_ref().is_some_and(|o| !w.name.contains(o.as_str())) {
            continue;
        }
        // The cycle alone does not run preemption (it needs the API server to evict), so
        // the Preemption workload is measured end to end only.
        if w.measure_template != "pod-high-priority" {
            cycle_only(w);
        }
        if !args.iter().any(|a| a == "--cycle-only") {
            run(w).await;
        }
    }
}
