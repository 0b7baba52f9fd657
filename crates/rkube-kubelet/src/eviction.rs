//! Node-pressure eviction, as upstream's eviction manager does it: every 10 s the node's
//! memory, disk, inodes and process IDs are observed against the hard eviction thresholds
//! (`--eviction-hard`, upstream's defaults otherwise); MemoryPressure / DiskPressure /
//! PIDPressure are reported until the pressure transition period has passed since a threshold
//! was last met; under disk pressure unused images are removed first, and if a threshold is
//! still met one pod is evicted, chosen by upstream's ranking. Pods over their local storage
//! limits (emptyDir sizeLimit, ephemeral-storage limits) are evicted whatever the node's state,
//! and new pods are refused while the node is under pressure.
//!
//! The decisions (thresholds, conditions, ranking, messages, admission) are pure functions;
//! [`run`] does the observing and acting.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use crate::kubelet::{PodEntry, Shared};
use crate::podconfig::{meta, units};

/// How often the node is observed.
pub const MONITORING_INTERVAL: Duration = Duration::from_secs(10);

/// Upstream's default hard thresholds.
pub const DEFAULT_EVICTION_HARD: &str = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,imagefs.inodesFree<5%";

/// Pods at or above this priority are never evicted (system-critical).
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// What is observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Memory not in use (capacity minus working set).
    MemoryAvailable,
    /// Free bytes on the filesystem holding the kubelet's data.
    NodeFsAvailable,
    /// Free inodes there.
    NodeFsInodesFree,
    /// Free bytes on the filesystem holding images.
    ImageFsAvailable,
    /// Free inodes there.
    ImageFsInodesFree,
    /// Process IDs left.
    PidAvailable,
}

impl Signal {
    const ALL: [Signal; 6] = [
        Signal::MemoryAvailable,
        Signal::NodeFsAvailable,
        Signal::NodeFsInodesFree,
        Signal::ImageFsAvailable,
        Signal::ImageFsInodesFree,
        Signal::PidAvailable,
    ];

    /// The signal's name in `--eviction-hard`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::NodeFsAvailable => "nodefs.available",
            Signal::NodeFsInodesFree => "nodefs.inodesFree",
            Signal::ImageFsAvailable => "imagefs.available",
            Signal::ImageFsInodesFree => "imagefs.inodesFree",
            Signal::PidAvailable => "pid.available",
        }
    }

    /// The resource a met threshold of this signal asks to reclaim, named as upstream names it
    /// in eviction messages.
    pub fn resource(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory",
            Signal::NodeFsAvailable | Signal::ImageFsAvailable => "ephemeral-storage",
            Signal::NodeFsInodesFree | Signal::ImageFsInodesFree => "inodes",
            Signal::PidAvailable => "pids",
        }
    }

    /// The node condition the signal drives.
    pub fn condition(self) -> Condition {
        match self {
            Signal::MemoryAvailable => Condition::MemoryPressure,
            Signal::PidAvailable => Condition::PidPressure,
            _ => Condition::DiskPressure,
        }
    }

    fn is_disk(self) -> bool {
        self.condition() == Condition::DiskPressure
    }
}

/// A node pressure condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Condition {
    /// Memory is short.
    MemoryPressure,
    /// Disk space or inodes are short.
    DiskPressure,
    /// Process IDs are short.
    PidPressure,
}

impl Condition {
    /// The condition's type in the Node's status.
    pub fn name(self) -> &'static str {
        match self {
            Condition::MemoryPressure => "MemoryPressure",
            Condition::DiskPressure => "DiskPressure",
            Condition::PidPressure => "PIDPressure",
        }
    }
}

/// A threshold's amount: an absolute quantity or a share of the capacity.
#[derive(Clone, Debug, PartialEq)]
pub enum Amount {
    /// Bytes, inodes or process IDs.
    Quantity(u64),
    /// A fraction of the capacity (0.1 for 10%).
    Percentage(f64),
}

/// One hard eviction threshold: the signal is met when what is available drops below it.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// What is observed.
    pub signal: Signal,
    /// Below what.
    pub amount: Amount,
}

impl Threshold {
    /// The threshold in units of the signal, for a resource of `capacity`.
    pub fn value(&self, capacity: u64) -> u64 {
        match self.amount {
            Amount::Quantity(q) => q,
            Amount::Percentage(p) => (capacity as f64 * p) as u64,
        }
    }
}

/// Parses `--eviction-hard` (`memory.available<100Mi,nodefs.available<10%`); as upstream, the
/// thresholds given replace all the defaults.
pub fn parse_thresholds(spec: &str) -> Result<Vec<Threshold>, String> {
    let mut out: Vec<Threshold> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('<') else {
            return Err(format!(
                "invalid eviction threshold {part:?}: expected <signal><<quantity>"
            ));
        };
        let signal = Signal::ALL
            .into_iter()
            .find(|s| s.name() == name.trim())
            .ok_or_else(|| format!("unsupported eviction signal {}", name.trim()))?;
        let value = value.trim();
        let amount = if let Some(p) = value.strip_suffix('%') {
            let p: f64 = p
                .parse()
                .map_err(|_| format!("invalid percentage {value:?} for {name}"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!(
                    "eviction percentage threshold {name} must be >= 0% and <= 100%: {value}"
                ));
            }
            Amount::Percentage(p / 100.0)
        } else {
            let q = units(&k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                value.to_owned(),
            ))
            .filter(|q| *q >= 0)
            .ok_or_else(|| format!("invalid quantity {value:?} for {name}"))?;
            Amount::Quantity(q as u64)
        };
        if out.iter().any(|t| t.signal == signal) {
            return Err(format!(
                "found duplicate eviction threshold for signal {name}"
            ));
        }
        out.push(Threshold { signal, amount });
    }
    Ok(out)
}

/// What was observed of one signal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// What is left.
    pub available: u64,
    /// The whole.
    pub capacity: u64,
}

/// Observations by signal.
pub type Observations = HashMap<Signal, Observed>;

/// The thresholds met by `observations`.
pub fn met<'a>(thresholds: &'a [Threshold], observations: &Observations) -> Vec<&'a Threshold> {
    thresholds
        .iter()
        .filter(|t| {
            observations
                .get(&t.signal)
                .is_some_and(|o| o.available < t.value(o.capacity))
        })
        .collect()
}

/// A quantity in upstream's binary form: the largest binary suffix that divides it exactly.
pub fn binary_quantity(v: u64) -> String {
    const SUFFIXES: [(&str, u64); 6] = [
        ("Ei", 1 << 60),
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    for (suffix, unit) in SUFFIXES {
        if v >= unit && v.is_multiple_of(unit) {
            return format!("{}{suffix}", v / unit);
        }
    }
    v.to_string()
}

/// Keeps the pressure conditions: a condition holds while one of its thresholds is met and for
/// the transition period after.
#[derive(Debug, Default)]
pub struct Pressure {
    last_met: HashMap<Condition, Instant>,
}

impl Pressure {
    /// Records the thresholds met `now`; returns the conditions that hold.
    pub fn update(
        &mut self,
        met: &[&Threshold],
        now: Instant,
        period: Duration,
    ) -> BTreeSet<Condition> {
        for t in met {
            self.last_met.insert(t.signal.condition(), now);
        }
        self.last_met.retain(|_, at| {
            now.saturating_duration_since(*at) < period || period.is_zero() && *at == now
        });
        self.last_met.keys().copied().collect()
    }
}

/// Whether a pod is never evicted: static and mirror pods, and system-critical priorities.
pub fn is_critical(pod: &Pod) -> bool {
    let annotations = pod.metadata.annotations.as_ref();
    let source = annotations.and_then(|a| a.get(crate::static_pods::CONFIG_SOURCE));
    let mirror = annotations.is_some_and(|a| a.contains_key(crate::static_pods::CONFIG_MIRROR));
    mirror
        || source.is_some_and(|s| s != "api")
        || pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0) >= SYSTEM_CRITICAL_PRIORITY
}

fn best_effort(pod: &Pod) -> bool {
    crate::podconfig::qos_class(pod) == "BestEffort"
}

fn tolerates_memory_pressure(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .into_iter()
        .flatten()
        .any(|t| {
            let key_matches = match t.key.as_deref() {
                None | Some("") => t.operator.as_deref() == Some("Exists"),
                Some(k) => k == "node.kubernetes.io/memory-pressure",
            };
            let effect_matches =
                matches!(t.effect.as_deref(), None | Some("") | Some("NoSchedule"));
            let value_matches = t.operator.as_deref() == Some("Exists")
                || t.value.as_deref().unwrap_or_default().is_empty();
            key_matches && effect_matches && value_matches
        })
}

/// Whether a new pod may start on a node with `conditions`; the reason's message if not.
/// Under memory pressure alone only BestEffort pods that do not tolerate the memory-pressure
/// taint are refused; under any other pressure every pod but critical ones.
pub fn admit(pod: &Pod, conditions: &BTreeSet<Condition>) -> Result<(), String> {
    if conditions.is_empty() || is_critical(pod) {
        return Ok(());
    }
    let memory_only = conditions.len() == 1 && conditions.contains(&Condition::MemoryPressure);
    if memory_only && (!best_effort(pod) || tolerates_memory_pressure(pod)) {
        return Ok(());
    }
    let names: Vec<&str> = conditions.iter().map(|c| c.name()).collect();
    Err(format!("The node had condition: [{}]. ", names.join(" ")))
}

/// Resource use of one container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerUse {
    /// Memory working set (bytes).
    pub memory: u64,
    /// Writable layer (bytes).
    pub rootfs: u64,
    /// Its logs (bytes).
    pub logs: u64,
}

/// Resource use of one pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodUse {
    /// By container name.
    pub containers: HashMap<String, ContainerUse>,
    /// Bytes of disk-backed emptyDir volumes, by volume name.
    pub empty_dirs: HashMap<String, u64>,
    /// Processes.
    pub processes: u64,
}

impl PodUse {
    fn memory(&self) -> u64 {
        self.containers.values().map(|c| c.memory).sum()
    }

    fn disk(&self) -> u64 {
        self.containers
            .values()
            .map(|c| c.rootfs + c.logs)
            .sum::<u64>()
            + self.empty_dirs.values().sum::<u64>()
    }
}

fn request(pod: &Pod, resource: &str) -> u64 {
    let spec = pod.spec.as_ref();
    let of = |c: &k8s_openapi::api::core::v1::Container| {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource))
            .and_then(units)
            .unwrap_or(0)
            .max(0) as u64
    };
    let app: u64 = spec.map_or(0, |s| s.containers.iter().map(of).sum());
    let init = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .map(of)
        .max()
        .unwrap_or(0);
    app.max(init)
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// Orders candidate pods for eviction under `signal`, first to go first: for memory and disk,
/// pods using more than they requested, then lower priority, then by use above the request;
/// for process IDs, lower priority, then more processes.
pub fn rank(signal: Signal, pods: &mut [(&Pod, &PodUse)]) {
    let (resource, used): (&str, fn(&PodUse) -> u64) = match signal {
        Signal::MemoryAvailable => ("memory", PodUse::memory),
        Signal::PidAvailable => {
            pods.sort_by(|a, b| {
                priority(a.0)
                    .cmp(&priority(b.0))
                    .then(b.1.processes.cmp(&a.1.processes))
            });
            return;
        }
        _ => ("ephemeral-storage", PodUse::disk),
    };
    let over = |p: &(&Pod, &PodUse)| used(p.1) as i128 - request(p.0, resource) as i128;
    pods.sort_by(|a, b| {
        let (oa, ob) = (over(a), over(b));
        (ob > 0)
            .cmp(&(oa > 0))
            .then(priority(a.0).cmp(&priority(b.0)))
            .then(ob.cmp(&oa))
    });
}

/// Upstream's message for a pod evicted under node pressure.
pub fn eviction_message(
    threshold: &Threshold,
    observed: Observed,
    pod: &Pod,
    usage: &PodUse,
) -> String {
    let resource = threshold.signal.resource();
    let mut message = format!(
        "The node was low on resource: {resource}. Threshold quantity: {}, available: {}. ",
        binary_quantity(threshold.value(observed.capacity)),
        binary_quantity(observed.available)
    );
    let spec_containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    for c in spec_containers {
        let Some(u) = usage.containers.get(&c.name) else {
            continue;
        };
        let used = match resource {
            "memory" => u.memory,
            "ephemeral-storage" => u.rootfs + u.logs,
            _ => continue,
        };
        let requested = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource));
        let requested_bytes = requested.and_then(units).unwrap_or(0).max(0) as u64;
        if used > requested_bytes {
            message.push_str(&format!(
                "Container {} was using {}, request is {}, has larger consumption of {resource}. ",
                c.name,
                binary_quantity(used),
                requested.map_or_else(|| "0".to_owned(), |q| q.0.clone()),
            ));
        }
    }
    message
}

/// Why a pod is over its local storage limits, if it is: an emptyDir over its sizeLimit, a
/// pod over the sum of its containers' ephemeral-storage limits, or a container over its own.
pub fn local_storage_violation(pod: &Pod, usage: &PodUse) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    for v in spec.volumes.iter().flatten() {
        let Some(e) = &v.empty_dir else { continue };
        if e.medium.as_deref() == Some("Memory") {
            continue;
        }
        if let (Some(limit), Some(used)) = (e.size_limit.as_ref(), usage.empty_dirs.get(&v.name))
            && units(limit).is_some_and(|l| l >= 0 && *used > l as u64)
        {
            return Some(format!(
                "Usage of EmptyDir volume {:?} exceeds the limit {:?}. ",
                v.name, limit.0
            ));
        }
    }
    let limit_of = |c: &k8s_openapi::api::core::v1::Container| {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("ephemeral-storage"))
            .cloned()
    };
    // The pod's limit: the sum of its containers' limits (any container having one).
    let limits: Vec<i64> = spec
        .containers
        .iter()
        .filter_map(|c| limit_of(c).as_ref().and_then(units))
        .collect();
    if !limits.is_empty() {
        let total: i64 = limits.iter().sum();
        if total >= 0 && usage.disk() > total as u64 {
            return Some(format!(
                "Pod ephemeral local storage usage exceeds the total limit of containers {}. ",
                binary_quantity(total as u64)
            ));
        }
    }
    for c in &spec.containers {
        if let (Some(limit), Some(u)) = (limit_of(c), usage.containers.get(&c.name))
            && units(&limit).is_some_and(|l| l >= 0 && u.rootfs + u.logs > l as u64)
        {
            return Some(format!(
                "Container {} exceeded its local ephemeral storage limit {:?}. ",
                c.name, limit.0
            ));
        }
    }
    None
}

/// The eviction manager's settings and state.
#[derive(Debug)]
pub struct Manager {
    /// The hard thresholds.
    pub thresholds: Vec<Threshold>,
    /// How long a condition holds after its threshold was last met.
    pub transition: Duration,
    state: std::sync::Mutex<(Pressure, BTreeSet<Condition>)>,
}

impl Manager {
    /// A manager with these thresholds and transition period.
    pub fn new(thresholds: Vec<Threshold>, transition: Duration) -> Self {
        Self {
            thresholds,
            transition,
            state: std::sync::Mutex::new((Pressure::default(), BTreeSet::new())),
        }
    }

    /// The pressure conditions that hold now.
    pub fn conditions(&self) -> BTreeSet<Condition> {
        self.state.lock().map(|s| s.1.clone()).unwrap_or_default()
    }

    fn record(&self, met: &[&Threshold]) -> BTreeSet<Condition> {
        let Ok(mut state) = self.state.lock() else {
            return BTreeSet::new();
        };
        let conditions = state.0.update(met, Instant::now(), self.transition);
        state.1 = conditions.clone();
        conditions
    }
}

fn meminfo() -> Option<Observed> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some(Observed {
        capacity: field("MemTotal:")?,
        available: field("MemAvailable:")?,
    })
}

fn pids() -> Option<Observed> {
    let max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    let running: u64 = loadavg
        .split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()?;
    Some(Observed {
        capacity: max,
        available: max.saturating_sub(running),
    })
}

/// Observes the node: memory from /proc/meminfo, the filesystem holding `dir` (node and image
/// filesystems are the same one: the runtime keeps its images under the agent's directory),
/// and process IDs.
pub fn observe(dir: &Path) -> Observations {
    let mut out = Observations::new();
    if let Some(m) = meminfo() {
        out.insert(Signal::MemoryAvailable, m);
    }
    if let Some(fs) = crate::node::fs_stats(dir) {
        let bytes = Observed {
            capacity: fs.bytes,
            available: fs.bytes_available,
        };
        let inodes = Observed {
            capacity: fs.inodes,
            available: fs.inodes_free,
        };
        out.insert(Signal::NodeFsAvailable, bytes);
        out.insert(Signal::ImageFsAvailable, bytes);
        if fs.inodes > 0 {
            out.insert(Signal::NodeFsInodesFree, inodes);
            out.insert(Signal::ImageFsInodesFree, inodes);
        }
    }
    if let Some(p) = pids() {
        out.insert(Signal::PidAvailable, p);
    }
    out
}

/// Bytes under `path` (files counted once, symlinks not followed).
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.blocks() * 512;
    }
    let mut total = meta.blocks() * 512;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            total += disk_usage(&e.path());
        }
    }
    total
}

fn processes_in(cgroup_procs: &Path) -> u64 {
    std::fs::read_to_string(cgroup_procs).map_or(0, |t| t.lines().count() as u64)
}

/// What each pod of the node uses, by uid.
async fn pod_usage(shared: &Shared, pods: &[(Arc<PodEntry>, Pod)]) -> HashMap<String, PodUse> {
    let mut out: HashMap<String, PodUse> = HashMap::new();
    let stats = shared
        .runtime
        .list_container_stats()
        .await
        .unwrap_or_default();
    for s in stats {
        let Some(attrs) = s.attributes else { continue };
        let label = |k: &str| attrs.labels.get(k).cloned().unwrap_or_default();
        let uid = label(crate::observed::LABEL_POD_UID);
        let name = label(crate::observed::LABEL_CONTAINER_NAME);
        let entry = out
            .entry(uid)
            .or_default()
            .containers
            .entry(name)
            .or_default();
        entry.memory += s
            .memory
            .as_ref()
            .and_then(|m| m.working_set_bytes.as_ref())
            .map_or(0, |v| v.value);
        entry.rootfs += s
            .writable_layer
            .as_ref()
            .and_then(|w| w.used_bytes.as_ref())
            .map_or(0, |v| v.value);
    }
    for (_, pod) in pods {
        let uid = meta(pod).2.to_owned();
        let usage = out.entry(uid.clone()).or_default();
        let logs = crate::podconfig::log_directory(&shared.settings, pod);
        if let Ok(dirs) = std::fs::read_dir(&logs) {
            for d in dirs.flatten() {
                let name = d.file_name().to_string_lossy().into_owned();
                usage.containers.entry(name).or_default().logs = disk_usage(&d.path());
            }
        }
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if v.empty_dir
                .as_ref()
                .is_some_and(|e| e.medium.as_deref() != Some("Memory"))
            {
                let dir = shared.volumes.volume_dir(pod, "emptyDir", &v.name);
                usage.empty_dirs.insert(v.name.clone(), disk_usage(&dir));
            }
        }
        let cgroup = crate::podconfig::cgroup_parent(&shared.settings, pod);
        if !shared.settings.systemd_cgroups {
            let relative = cgroup.trim_start_matches('/');
            usage.processes = processes_in(
                &Path::new("/sys/fs/cgroup/pids")
                    .join(relative)
                    .join("cgroup.procs"),
            )
            .max(processes_in(
                &Path::new("/sys/fs/cgroup")
                    .join(relative)
                    .join("cgroup.procs"),
            ));
        }
    }
    out
}

/// Fails a pod for eviction: its worker stops its containers and writes phase Failed with
/// reason Evicted and `message`.
pub async fn evict(shared: &Shared, entry: &PodEntry, pod: &Pod, message: String) {
    {
        let mut failed = entry.failed.lock().await;
        if failed.is_some() {
            return;
        }
        *failed = Some(("Evicted".to_owned(), message.clone()));
    }
    tracing::info!(pod = %meta(pod).0, namespace = %meta(pod).1, %message, "evicting a pod");
    shared
        .recorder
        .pod(pod, None, "Warning", "Evicted", &message)
        .await;
    entry.notify.notify_one();
}

/// The pods that may be evicted: known, not finished, not already failed.
async fn active_pods(shared: &Shared) -> Vec<(Arc<PodEntry>, Pod)> {
    let entries: Vec<Arc<PodEntry>> = shared.pods.lock().await.values().cloned().collect();
    let mut out = Vec::new();
    for entry in entries {
        if entry.removed.load(std::sync::atomic::Ordering::SeqCst)
            || entry.failed.lock().await.is_some()
        {
            continue;
        }
        let pod = entry.pod.lock().await.clone();
        if !crate::sync::pod_is_finished(&pod) {
            out.push((entry, pod));
        }
    }
    out
}

/// One round of the eviction manager.
pub async fn synchronize(shared: &Shared) {
    let manager = &shared.eviction;
    let pods = active_pods(shared).await;
    let usage = pod_usage(shared, &pods).await;
    let none = PodUse::default();
    let mut evicted = false;
    for (entry, pod) in &pods {
        if let Some(message) = local_storage_violation(pod, usage.get(meta(pod).2).unwrap_or(&none))
        {
            evict(shared, entry, pod, message).await;
            evicted = true;
        }
    }
    let mut observations = observe(&shared.config.agent_dir);
    let met_now: Vec<Threshold> = met(&manager.thresholds, &observations)
        .into_iter()
        .cloned()
        .collect();
    let met_refs: Vec<&Threshold> = met_now.iter().collect();
    manager.record(&met_refs);
    if evicted || met_now.is_empty() {
        return;
    }
    // Memory first, then disk, then process IDs, as upstream orders them.
    let mut order = met_now.clone();
    order.sort_by_key(|t| t.signal);
    let mut threshold = order[0].clone();
    shared
        .recorder
        .node(
            "Warning",
            "EvictionThresholdMet",
            &format!("Attempting to reclaim {}", threshold.signal.resource()),
        )
        .await;
    if threshold.signal.is_disk() {
        let freed = crate::imagegc::delete_unused(shared).await;
        if freed > 0 {
            observations = observe(&shared.config.agent_dir);
            let still: Vec<Threshold> = met(&manager.thresholds, &observations)
                .into_iter()
                .cloned()
                .collect();
            let Some(first) = still.iter().min_by_key(|t| t.signal) else {
                tracing::info!(
                    freed,
                    "eviction: reclaimed enough by removing unused images"
                );
                return;
            };
            threshold = first.clone();
        }
    }
    let mut candidates: Vec<(&Pod, &PodUse)> = pods
        .iter()
        .filter(|(_, p)| !is_critical(p))
        .map(|(_, p)| (p, usage.get(meta(p).2).unwrap_or(&none)))
        .collect();
    rank(threshold.signal, &mut candidates);
    let Some((pod, pod_use)) = candidates.first().copied() else {
        tracing::debug!(
            signal = threshold.signal.name(),
            "eviction threshold met but no pod can be evicted"
        );
        return;
    };
    let observed = observations
        .get(&threshold.signal)
        .copied()
        .unwrap_or_default();
    let message = eviction_message(&threshold, observed, pod, pod_use);
    let uid = meta(pod).2;
    if let Some((entry, _)) = pods.iter().find(|(_, p)| meta(p).2 == uid) {
        evict(shared, entry, pod, message).await;
    }
}

/// Runs the eviction manager until the task is dropped.
pub async fn run(shared: Arc<Shared>) {
    loop {
        synchronize(&shared).await;
        tokio::time::sleep(MONITORING_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn thresholds_parse_as_upstream_writes_them() {
        let t = parse_thresholds(DEFAULT_EVICTION_HARD).unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t[0].signal, Signal::MemoryAvailable);
        assert_eq!(t[0].amount, Amount::Quantity(100 * 1024 * 1024));
        assert_eq!(t[1].amount, Amount::Percentage(0.1));
        assert_eq!(t[1].value(1000), 100);
        assert!(
            parse_thresholds("memory.free<1Gi")
                .unwrap_err()
                .contains("unsupported eviction signal")
        );
        assert!(parse_thresholds("memory.available>1Gi").is_err());
        assert!(parse_thresholds("nodefs.available<120%").is_err());
        assert!(parse_thresholds("memory.available<1Gi,memory.available<2Gi").is_err());
    }

    #[test]
    fn thresholds_are_met_below_their_value_and_conditions_hold_for_the_period() {
        let t = parse_thresholds("memory.available<100Mi,nodefs.available<10%").unwrap();
        let mut obs = Observations::new();
        obs.insert(
            Signal::MemoryAvailable,
            Observed {
                available: 200 << 20,
                capacity: 1 << 30,
            },
        );
        obs.insert(
            Signal::NodeFsAvailable,
            Observed {
                available: 5,
                capacity: 100,
            },
        );
        let m = met(&t, &obs);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].signal, Signal::NodeFsAvailable);
        let mut p = Pressure::default();
        let start = Instant::now();
        let period = Duration::from_secs(300);
        assert_eq!(
            p.update(&m, start, period),
            BTreeSet::from([Condition::DiskPressure])
        );
        // No longer met, but inside the transition period.
        assert_eq!(
            p.update(&[], start + Duration::from_secs(60), period),
            BTreeSet::from([Condition::DiskPressure])
        );
        assert!(
            p.update(&[], start + Duration::from_secs(301), period)
                .is_empty()
        );
    }

    #[test]
    fn admission_under_pressure_follows_upstream() {
        let best_effort = pod(
            json!({"spec": {"containers": [{"name": "a"}]}, "status": {"qosClass": "BestEffort"}}),
        );
        let burstable = pod(
            json!({"spec": {"containers": [{"name": "a"}]}, "status": {"qosClass": "Burstable"}}),
        );
        let tolerating = pod(
            json!({"spec": {"containers": [{"name": "a"}], "tolerations": [
            {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}]},
            "status": {"qosClass": "BestEffort"}}),
        );
        let memory = BTreeSet::from([Condition::MemoryPressure]);
        assert_eq!(
            admit(&best_effort, &memory).unwrap_err(),
            "The node had condition: [MemoryPressure]. "
        );
        assert!(admit(&burstable, &memory).is_ok());
        assert!(admit(&tolerating, &memory).is_ok());
        let both = BTreeSet::from([Condition::MemoryPressure, Condition::DiskPressure]);
        assert_eq!(
            admit(&burstable, &both).unwrap_err(),
            "The node had condition: [MemoryPressure DiskPressure]. "
        );
        let critical =
            pod(json!({"spec": {"containers": [{"name": "a"}], "priority": 2000001000}}));
        assert!(admit(&critical, &both).is_ok());
        assert!(admit(&best_effort, &BTreeSet::new()).is_ok());
    }

    fn uses(memory: u64) -> PodUse {
        PodUse {
            containers: HashMap::from([(
                "a".to_owned(),
                ContainerUse {
                    memory,
                    rootfs: memory,
                    logs: 0,
                },
            )]),
            ..Default::default()
        }
    }

    #[test]
    fn memory_ranking_takes_pods_over_their_requests_then_low_priority_then_the_biggest() {
        let requested = |name: &str, mem: &str, prio: i32| {
            pod(
                json!({"metadata": {"name": name}, "spec": {"priority": prio, "containers": [
                {"name": "a", "resources": {"requests": {"memory": mem, "ephemeral-storage": mem}}}]}}),
            )
        };
        let within = requested("within", "100Mi", 0);
        let over_high = requested("over-high", "10Mi", 100);
        let over_low_small = requested("over-low-small", "10Mi", 0);
        let over_low_big = requested("over-low-big", "1Mi", 0);
        let (u_within, u_over) = (uses(50 << 20), uses(20 << 20));
        for signal in [Signal::MemoryAvailable, Signal::NodeFsAvailable] {
            let mut pods = vec![
                (&within, &u_within),
                (&over_high, &u_over),
                (&over_low_small, &u_over),
                (&over_low_big, &u_over),
            ];
            rank(signal, &mut pods);
            let names: Vec<&str> = pods.iter().map(|(p, _)| meta(p).0).collect();
            assert_eq!(
                names,
                ["over-low-big", "over-low-small", "over-high", "within"]
            );
        }
    }

    #[test]
    fn messages_are_upstreams() {
        let p = pod(json!({"spec": {"containers": [
            {"name": "hog", "resources": {"requests": {"memory": "10Mi"}}},
            {"name": "calm", "resources": {"requests": {"memory": "1Gi"}}},
            {"name": "bare"}]}}));
        let usage = PodUse {
            containers: HashMap::from([
                (
                    "hog".to_owned(),
                    ContainerUse {
                        memory: 20 << 20,
                        ..Default::default()
                    },
                ),
                (
                    "calm".to_owned(),
                    ContainerUse {
                        memory: 20 << 20,
                        ..Default::default()
                    },
                ),
                (
                    "bare".to_owned(),
                    ContainerUse {
                        memory: 4096,
                        ..Default::default()
                    },
                ),
            ]),
            ..Default::default()
        };
        let t = parse_thresholds("memory.available<100Mi").unwrap();
        let message = eviction_message(
            &t[0],
            Observed {
                available: 50 << 20,
                capacity: 1 << 30,
            },
            &p,
            &usage,
        );
        assert_eq!(
            message,
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. \
             Container hog was using 20Mi, request is 10Mi, has larger consumption of memory. \
             Container bare was using 4Ki, request is 0, has larger consumption of memory. "
        );
    }

    #[test]
    fn local_storage_limits_evict_emptydirs_containers_and_pods() {
        let p = pod(json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"limits": {"ephemeral-storage": "10Mi"}}},
                {"name": "b", "resources": {"limits": {"ephemeral-storage": "10Mi"}}}],
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]}}));
        let mut usage = PodUse::default();
        usage.empty_dirs.insert("scratch".to_owned(), 2 << 20);
        assert_eq!(
            local_storage_violation(&p, &usage).unwrap(),
            "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". "
        );
        usage.empty_dirs.insert("scratch".to_owned(), 512 << 10);
        usage.containers.insert(
            "a".to_owned(),
            ContainerUse {
                rootfs: 11 << 20,
                ..Default::default()
            },
        );
        assert_eq!(
            local_storage_violation(&p, &usage).unwrap(),
            "Container a exceeded its local ephemeral storage limit \"10Mi\". "
        );
        usage.containers.insert(
            "a".to_owned(),
            ContainerUse {
                rootfs: 9 << 20,
                ..Default::default()
            },
        );
        usage.containers.insert(
            "b".to_owned(),
            ContainerUse {
                logs: 11 << 20,
                ..Default::default()
            },
        );
        assert_eq!(
            local_storage_violation(&p, &usage).unwrap(),
            "Pod ephemeral local storage usage exceeds the total limit of containers 20Mi. "
        );
        usage
            .containers
            .insert("b".to_owned(), ContainerUse::default());
        assert_eq!(local_storage_violation(&p, &usage), None);
    }

    #[test]
    fn quantities_print_in_binary_form() {
        assert_eq!(binary_quantity(100 << 20), "100Mi");
        assert_eq!(binary_quantity(1536), "1536");
        assert_eq!(binary_quantity(3 << 10), "3Ki");
        assert_eq!(binary_quantity(1000), "1000");
        assert_eq!(binary_quantity(0), "0");
    }
}
