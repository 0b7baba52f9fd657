//! The Node object: what the machine has (read once from /proc and the filesystem), its
//! registration, its status heartbeat and its Lease in kube-node-lease.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// The kubelet's version, the API server's.
pub const KUBELET_VERSION: &str = "v1.33.0+rkube";
/// Pods a node takes, as upstream's default `maxPods`.
pub const MAX_PODS: u32 = 110;
/// The kubelet API's port.
pub const KUBELET_PORT: i32 = 10250;
/// Memory held back for the eviction threshold (`memory.available<100Mi`), as upstream.
const EVICTION_MEMORY: u64 = 100 * 1024 * 1024;

/// What the machine has, read at start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Machine {
    /// Cores.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory: u64,
    /// Bytes of the filesystem holding the data directory.
    pub ephemeral_storage: u64,
    /// /etc/machine-id.
    pub machine_id: String,
    /// The DMI product uuid, if readable.
    pub system_uuid: String,
    /// This boot's id.
    pub boot_id: String,
    /// `uname -r`.
    pub kernel: String,
    /// os-release's PRETTY_NAME.
    pub os_image: String,
    /// Pods the node takes (`maxPods`).
    pub max_pods: u32,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl Machine {
    /// Reads this machine (the filesystem of `data_dir` for ephemeral storage).
    pub fn read(data_dir: &Path) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024;
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| "Linux".to_owned());
        Self {
            cpus,
            memory,
            ephemeral_storage: filesystem_size(data_dir),
            machine_id: read_trimmed("/etc/machine-id"),
            system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            os_image,
            max_pods: MAX_PODS,
        }
    }
}

/// The size in bytes of the filesystem holding `path`.
pub fn filesystem_size(path: &Path) -> u64 {
    statvfs(path).map_or(0, |(total, _)| total)
}

/// (capacity, available) bytes of the filesystem holding `path`, the capacity being what is
/// used plus what is available to unprivileged writers.
pub fn statvfs(path: &Path) -> Option<(u64, u64)> {
    fs_stats(path).map(|f| (f.bytes, f.bytes_available))
}

/// Space and inodes of a filesystem.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsStats {
    /// Bytes used plus bytes available to unprivileged writers.
    pub bytes: u64,
    /// Bytes available to unprivileged writers.
    pub bytes_available: u64,
    /// Inodes in all.
    pub inodes: u64,
    /// Free inodes.
    pub inodes_free: u64,
}

/// Space and inodes of the filesystem holding `path` (or its nearest existing ancestor).
pub fn fs_stats(path: &Path) -> Option<FsStats> {
    let mut probe = path.to_path_buf();
    while !probe.exists() {
        probe = probe.parent()?.to_path_buf();
    }
    let c = std::ffi::CString::new(probe.as_os_str().as_encoded_bytes()).ok()?;
    let mut out = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: statvfs(3) writes the struct behind the pointer when it returns 0.
    #[allow(unsafe_code)]
    let stat = unsafe {
        if libc::statvfs(c.as_ptr(), out.as_mut_ptr()) != 0 {
            return None;
        }
        out.assume_init()
    };
    let frsize = stat.f_frsize as u64;
    // Blocks reserved for root (or held back by the host) are neither used nor available to
    // pods: the capacity counted is what is used plus what is available.
    let used = (stat.f_blocks as u64).saturating_sub(stat.f_bfree as u64);
    let avail = stat.f_bavail as u64;
    Some(FsStats {
        bytes: (used + avail) * frsize,
        bytes_available: avail * frsize,
        inodes: stat.f_files as u64,
        inodes_free: stat.f_ffree as u64,
    })
}

/// The Node as this agent registers it.
pub struct NodeConfig {
    /// The node's name.
    pub name: String,
    /// Its address for the cluster.
    pub ip: String,
    /// The host name.
    pub hostname: String,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
    /// The runtime's version (`containerd://1.6.20`).
    pub runtime_version: String,
    /// The machine.
    pub machine: Machine,
    /// The kubelet API's port.
    pub kubelet_port: u16,
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn q(s: impl Into<String>) -> Quantity {
    Quantity(s.into())
}

/// Capacity and allocatable of the machine.
pub fn resources(m: &Machine) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let mut capacity = BTreeMap::new();
    capacity.insert("cpu".to_owned(), q(m.cpus.to_string()));
    capacity.insert("memory".to_owned(), q(format!("{}Ki", m.memory / 1024)));
    capacity.insert(
        "ephemeral-storage".to_owned(),
        q(format!("{}Ki", m.ephemeral_storage / 1024)),
    );
    capacity.insert("pods".to_owned(), q(m.max_pods.to_string()));
    capacity.insert("hugepages-1Gi".to_owned(), q("0"));
    capacity.insert("hugepages-2Mi".to_owned(), q("0"));
    let mut allocatable = capacity.clone();
    allocatable.insert(
        "memory".to_owned(),
        q(format!(
            "{}Ki",
            m.memory.saturating_sub(EVICTION_MEMORY) / 1024
        )),
    );
    // The eviction threshold for the node filesystem is 10% free, as upstream.
    allocatable.insert(
        "ephemeral-storage".to_owned(),
        q((m.ephemeral_storage / 10 * 9).to_string()),
    );
    (capacity, allocatable)
}

/// The node's labels: the well-known ones and the configured ones.
pub fn labels(config: &NodeConfig) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for (k, v) in [
        ("kubernetes.io/hostname", config.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", arch()),
        ("node.kubernetes.io/instance-type", "rkube"),
        ("beta.kubernetes.io/instance-type", "rkube"),
    ] {
        labels.insert(k.to_owned(), v.to_owned());
    }
    labels.extend(config.labels.clone());
    labels
}

fn node_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &Time,
) -> NodeCondition {
    NodeCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

/// What the node's conditions are computed from.
#[derive(Clone, Debug, Default)]
pub struct Health {
    /// The runtime answers and the pod network is configured.
    pub ready: bool,
    /// Why not, if not.
    pub not_ready_message: String,
    /// The pressure conditions the eviction manager reports.
    pub pressure: std::collections::BTreeSet<crate::eviction::Condition>,
}

/// The node's status at `now`, keeping the transition times of conditions that did not change.
pub fn status(
    config: &NodeConfig,
    health: &Health,
    images: Vec<ContainerImage>,
    old: Option<&NodeStatus>,
) -> NodeStatus {
    let now = Time(Timestamp::now());
    let (capacity, allocatable) = resources(&config.machine);
    let mut conditions = vec![
        if health
            .pressure
            .contains(&crate::eviction::Condition::MemoryPressure)
        {
            node_condition(
                "MemoryPressure",
                "True",
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
                &now,
            )
        } else {
            node_condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                &now,
            )
        },
        if health
            .pressure
            .contains(&crate::eviction::Condition::DiskPressure)
        {
            node_condition(
                "DiskPressure",
                "True",
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
                &now,
            )
        } else {
            node_condition(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                &now,
            )
        },
        if health
            .pressure
            .contains(&crate::eviction::Condition::PidPressure)
        {
            node_condition(
                "PIDPressure",
                "True",
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
                &now,
            )
        } else {
            node_condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                &now,
            )
        },
        if health.ready {
            node_condition(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
                &now,
            )
        } else {
            node_condition(
                "Ready",
                "False",
                "KubeletNotReady",
                &health.not_ready_message,
                &now,
            )
        },
    ];
    if let Some(old) = old {
        for c in &mut conditions {
            if let Some(prev) = old.conditions.iter().flatten().find(|p| p.type_ == c.type_)
                && prev.status == c.status
            {
                c.last_transition_time = prev.last_transition_time.clone();
            }
        }
    }
    let m = &config.machine;
    NodeStatus {
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_owned(),
                address: config.ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".to_owned(),
                address: config.hostname.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(config.kubelet_port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: m.machine_id.clone(),
            system_uuid: m.system_uuid.clone(),
            boot_id: m.boot_id.clone(),
            kernel_version: m.kernel.clone(),
            os_image: m.os_image.clone(),
            container_runtime_version: config.runtime_version.clone(),
            kubelet_version: KUBELET_VERSION.to_owned(),
            kube_proxy_version: String::new(),
            operating_system: "linux".to_owned(),
            architecture: arch().to_owned(),
            ..Default::default()
        }),
        images: Some(images),
        ..Default::default()
    }
}

/// Registers the node: creates it, or, when it exists (a restarted agent), takes it over by
/// updating its labels.
pub async fn register(nodes: &Api<Node>, config: &NodeConfig) -> Result<Node, kube::Error> {
    let node = Node {
        metadata: ObjectMeta {
            name: Some(config.name.clone()),
            labels: Some(labels(config)),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".to_owned(),
                "0".to_owned(),
            )])),
            ..Default::default()
        },
        ..Default::default()
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = serde_json::json!({"metadata": {"labels": labels(config)}});
            nodes
                .patch(&config.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
        }
        Err(e) => Err(e),
    }
}

/// How long the Lease holds without renewal, as upstream's kubelet sets it.
const LEASE_DURATION_SECONDS: i32 = 40;

/// The node's Lease in kube-node-lease, renewed as upstream's kubelet renews it: from the
/// copy its last write returned, with one PUT; the Lease is read again (and created when
/// missing) only at the start and when that PUT fails on a conflict or a missing Lease.
#[derive(Debug, Default)]
pub struct NodeLease {
    latest: Option<Lease>,
}

impl NodeLease {
    /// Renews the Lease of `node` (creating it the first time, owned by the node).
    pub async fn renew(&mut self, leases: &Api<Lease>, node: &Node) -> Result<(), kube::Error> {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(latest) = &self.latest {
            let mut lease = latest.clone();
            lease.spec = Some(renewed(&name, lease.spec.take()));
            match leases.replace(&name, &PostParams::default(), &lease).await {
                Ok(updated) => {
                    self.latest = Some(updated);
                    return Ok(());
                }
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
                    self.latest = None;
                }
                Err(e) => return Err(e),
            }
        }
        self.latest = Some(ensure_lease(leases, node, &name).await?);
        Ok(())
    }
}

/// A Lease spec held by `name` and renewed now, keeping when it was acquired.
fn renewed(name: &str, old: Option<LeaseSpec>) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(name.to_owned()),
        lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
        renew_time: Some(MicroTime(Timestamp::now())),
        acquire_time: old.and_then(|s| s.acquire_time),
        ..Default::default()
    }
}

/// Reads the Lease and renews it, or creates it.
async fn ensure_lease(leases: &Api<Lease>, node: &Node, name: &str) -> Result<Lease, kube::Error> {
    match leases.get_opt(name).await? {
        Some(mut lease) => {
            lease.spec = Some(renewed(name, lease.spec.take()));
            leases.replace(name, &PostParams::default(), &lease).await
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some("kube-node-lease".to_owned()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".to_owned(),
                        kind: "Node".to_owned(),
                        name: name.to_owned(),
                        uid: node.metadata.uid.clone().unwrap_or_default(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                spec: Some(renewed(name, None)),
            };
            leases.create(&PostParams::default(), &lease).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocatable_holds_back_the_eviction_threshold() {
        let m = Machine {
            cpus: 2,
            memory: 4 * 1024 * 1024 * 1024,
            ephemeral_storage: 100 * 1024 * 1024 * 1024,
            max_pods: MAX_PODS,
            ..Default::default()
        };
        let (capacity, allocatable) = resources(&m);
        assert_eq!(capacity["cpu"].0, "2");
        assert_eq!(capacity["memory"].0, "4194304Ki");
        assert_eq!(allocatable["memory"].0, "4091904Ki");
        assert_eq!(capacity["pods"].0, "110");
    }
}
