//! CRI configurations for a pod's sandbox and containers, from its spec (pure).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    Container as ContainerSpec, Pod, PodSecurityContext, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::cri::v1;
use crate::observed::{
    ANNOTATION_GRACE, ANNOTATION_HASH, ANNOTATION_TERMINATION_PATH, LABEL_CONTAINER_NAME,
    LABEL_MANAGED_BY_NODE, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
};

/// Node-wide settings the configurations depend on.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// The node's name.
    pub node_name: String,
    /// Where pod logs go: `<dir>/<ns>_<name>_<uid>/<container>/<attempt>.log`.
    pub log_root: PathBuf,
    /// The cgroup all pods go under (`--cgroup-root`, `/` by default).
    pub cgroup_root: String,
    /// runc uses systemd slices.
    pub systemd_cgroups: bool,
    /// The cluster DNS server, when one is configured.
    pub cluster_dns: Option<String>,
    /// The cluster domain.
    pub cluster_domain: String,
    /// The host's resolv.conf (for dnsPolicy Default and for search domains).
    pub host_resolv: String,
}

/// The pod's metadata fields.
pub fn meta(pod: &Pod) -> (&str, &str, &str) {
    (
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or_default(),
    )
}

/// The pod's log directory.
pub fn log_directory(settings: &NodeSettings, pod: &Pod) -> PathBuf {
    let (name, ns, uid) = meta(pod);
    settings.log_root.join(format!("{ns}_{name}_{uid}"))
}

fn labels(pod: &Pod, settings: &NodeSettings) -> HashMap<String, String> {
    let (name, ns, uid) = meta(pod);
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(LABEL_POD_NAME.to_owned(), name.to_owned());
    labels.insert(LABEL_POD_NAMESPACE.to_owned(), ns.to_owned());
    labels.insert(LABEL_POD_UID.to_owned(), uid.to_owned());
    labels.insert(LABEL_MANAGED_BY_NODE.to_owned(), settings.node_name.clone());
    labels
}

/// The QoS class the API server recorded (Burstable when missing).
pub fn qos_class(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.qos_class.as_deref())
        .unwrap_or("BestEffort")
}

/// The pod's cgroup parent: `<root>/kubepods[/burstable|/besteffort]/pod<uid>` (or the systemd
/// slice of the same place).
pub fn cgroup_parent(settings: &NodeSettings, pod: &Pod) -> String {
    let (_, _, uid) = meta(pod);
    let qos = match qos_class(pod) {
        "Guaranteed" => None,
        "Burstable" => Some("burstable"),
        _ => Some("besteffort"),
    };
    if settings.systemd_cgroups {
        let uid = uid.replace('-', "_");
        return match qos {
            Some(q) => format!("kubepods-{q}-pod{uid}.slice"),
            None => format!("kubepods-pod{uid}.slice"),
        };
    }
    let root = settings.cgroup_root.trim_end_matches('/');
    match qos {
        Some(q) => format!("{root}/kubepods/{q}/pod{uid}"),
        None => format!("{root}/kubepods/pod{uid}"),
    }
}

/// The resolv.conf settings of a pod (upstream's dnsPolicy rules).
pub fn dns_config(settings: &NodeSettings, pod: &Pod) -> Option<v1::DnsConfig> {
    let spec = pod.spec.as_ref()?;
    let (_, ns, _) = meta(pod);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network == Some(true);
    let (host_servers, host_search, host_options) = parse_resolv(&settings.host_resolv);
    let mut config = match (policy, &settings.cluster_dns) {
        ("None", _) => v1::DnsConfig::default(),
        ("ClusterFirst", Some(dns)) if !host_network => {
            cluster_first(settings, ns, dns, &host_search)
        }
        ("ClusterFirstWithHostNet", Some(dns)) => cluster_first(settings, ns, dns, &host_search),
        // Default, or ClusterFirst without a cluster DNS, or with host networking: the host's.
        _ => v1::DnsConfig {
            servers: host_servers,
            searches: host_search,
            options: host_options,
        },
    };
    if let Some(extra) = &spec.dns_config {
        config
            .servers
            .extend(extra.nameservers.iter().flatten().cloned());
        config
            .searches
            .extend(extra.searches.iter().flatten().cloned());
        for option in extra.options.iter().flatten() {
            let Some(name) = option.name.as_deref() else {
                continue;
            };
            config.options.retain(|o| o.split(':').next() != Some(name));
            config.options.push(match &option.value {
                Some(v) => format!("{name}:{v}"),
                None => name.to_owned(),
            });
        }
    }
    config.searches.dedup();
    Some(config)
}

fn cluster_first(
    settings: &NodeSettings,
    ns: &str,
    dns: &str,
    host_search: &[String],
) -> v1::DnsConfig {
    let domain = &settings.cluster_domain;
    let mut searches = vec![
        format!("{ns}.svc.{domain}"),
        format!("svc.{domain}"),
        domain.clone(),
    ];
    searches.extend(host_search.iter().cloned());
    v1::DnsConfig {
        servers: vec![dns.to_owned()],
        searches,
        options: vec!["ndots:5".to_owned()],
    }
}

/// (nameservers, search domains, options) of a resolv.conf.
pub fn parse_resolv(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut servers, mut search, mut options) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(str::to_owned)),
            Some("search" | "domain") => search = words.map(str::to_owned).collect(),
            Some("options") => options.extend(words.map(str::to_owned)),
            _ => {}
        }
    }
    (servers, search, options)
}

fn namespace_options(pod: &Pod) -> v1::NamespaceOption {
    let spec = pod.spec.as_ref();
    let flag = |f: Option<bool>, yes: v1::NamespaceMode, no: v1::NamespaceMode| {
        if f == Some(true) {
            yes as i32
        } else {
            no as i32
        }
    };
    v1::NamespaceOption {
        network: flag(
            spec.and_then(|s| s.host_network),
            v1::NamespaceMode::Node,
            v1::NamespaceMode::Pod,
        ),
        pid: if spec.and_then(|s| s.host_pid) == Some(true) {
            v1::NamespaceMode::Node as i32
        } else {
            flag(
                spec.and_then(|s| s.share_process_namespace),
                v1::NamespaceMode::Pod,
                v1::NamespaceMode::Container,
            )
        },
        ipc: flag(
            spec.and_then(|s| s.host_ipc),
            v1::NamespaceMode::Node,
            v1::NamespaceMode::Pod,
        ),
        ..Default::default()
    }
}

/// The sandbox configuration for attempt `attempt` of the pod.
pub fn sandbox_config(settings: &NodeSettings, pod: &Pod, attempt: u32) -> v1::PodSandboxConfig {
    let (name, ns, uid) = meta(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let hostname = if spec.host_network == Some(true) {
        String::new()
    } else {
        let mut h = spec.hostname.clone().unwrap_or_else(|| name.to_owned());
        h.truncate(63);
        h.trim_end_matches(['-', '.']).to_owned()
    };
    let mut annotations: HashMap<String, String> = pod
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    annotations.insert(
        ANNOTATION_GRACE.to_owned(),
        spec.termination_grace_period_seconds
            .unwrap_or(30)
            .to_string(),
    );
    let mut port_mappings = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let Some(host_port) = p.host_port.filter(|p| *p > 0) else {
                continue;
            };
            let protocol = match p.protocol.as_deref() {
                Some("UDP") => v1::Protocol::Udp,
                Some("SCTP") => v1::Protocol::Sctp,
                _ => v1::Protocol::Tcp,
            };
            port_mappings.push(v1::PortMapping {
                protocol: protocol as i32,
                container_port: p.container_port,
                host_port,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    let psc = spec.security_context.clone().unwrap_or_default();
    let sysctls = psc
        .sysctls
        .iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: name.to_owned(),
            uid: uid.to_owned(),
            namespace: ns.to_owned(),
            attempt,
        }),
        hostname,
        log_directory: log_directory(settings, pod).display().to_string(),
        dns_config: dns_config(settings, pod),
        port_mappings,
        labels: labels(pod, settings),
        annotations,
        linux: Some(v1::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(settings, pod),
            security_context: Some(v1::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                run_as_user: psc.run_as_user.map(|value| v1::Int64Value { value }),
                run_as_group: psc.run_as_group.map(|value| v1::Int64Value { value }),
                supplemental_groups: psc.supplemental_groups.clone().unwrap_or_default(),
                privileged: spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                    .any(|c| c.security_context.as_ref().and_then(|s| s.privileged) == Some(true)),
                seccomp: seccomp(psc.seccomp_profile.as_ref()),
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn seccomp(
    profile: Option<&k8s_openapi::api::core::v1::SeccompProfile>,
) -> Option<v1::SecurityProfile> {
    let profile = profile?;
    let (kind, path) = match profile.type_.as_str() {
        "RuntimeDefault" => (
            v1::security_profile::ProfileType::RuntimeDefault,
            String::new(),
        ),
        "Localhost" => (
            v1::security_profile::ProfileType::Localhost,
            profile.localhost_profile.clone().unwrap_or_default(),
        ),
        _ => (v1::security_profile::ProfileType::Unconfined, String::new()),
    };
    Some(v1::SecurityProfile {
        profile_type: kind as i32,
        localhost_ref: path,
    })
}

/// A quantity's value in milli-units, for cpu.
pub fn millis(q: &Quantity) -> Option<i64> {
    let s = q.0.trim();
    if let Some(m) = s.strip_suffix('m') {
        return m.parse().ok();
    }
    let v: f64 = s.parse().ok()?;
    Some((v * 1000.0).ceil() as i64)
}

/// A quantity's value in units (bytes for memory), rounded up.
pub fn units(q: &Quantity) -> Option<i64> {
    let s = q.0.trim();
    let suffixes: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("m", 1e-3),
    ];
    for (suffix, factor) in suffixes {
        if let Some(n) = s.strip_suffix(suffix) {
            let v: f64 = n.parse().ok()?;
            return Some((v * factor).ceil() as i64);
        }
    }
    let v: f64 = s.parse().ok()?;
    Some(v.ceil() as i64)
}

/// cgroup limits for a container from its requests and limits (upstream's conversions: shares
/// from the cpu request, a 100 ms CFS period with the quota from the cpu limit).
pub fn linux_resources(c: &ContainerSpec, qos: &str) -> v1::LinuxContainerResources {
    let res = c.resources.clone().unwrap_or_default();
    let request = |r: &str| res.requests.as_ref().and_then(|m| m.get(r));
    let limit = |r: &str| res.limits.as_ref().and_then(|m| m.get(r));
    let cpu_request = request("cpu").or(limit("cpu")).and_then(millis);
    let shares = match cpu_request {
        Some(m) => (m * 1024 / 1000).max(2),
        None => 2,
    };
    let mut out = v1::LinuxContainerResources {
        cpu_shares: shares,
        oom_score_adj: match qos {
            "Guaranteed" => -997,
            "BestEffort" => 1000,
            _ => 0,
        },
        ..Default::default()
    };
    if let Some(m) = limit("cpu").and_then(millis) {
        out.cpu_period = 100_000;
        out.cpu_quota = (m * 100).max(1000);
    }
    if let Some(bytes) = limit("memory").and_then(units) {
        out.memory_limit_in_bytes = bytes;
    }
    if qos == "Burstable" {
        // Upstream: 1000 - (1000 * memoryRequest) / memoryCapacity, kept within (2, 999); the
        // capacity is not known here, so the middle of the band.
        out.oom_score_adj = 500;
    }
    out
}

/// A mount into a container.
#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    /// Path in the container.
    pub container_path: String,
    /// Path on the host.
    pub host_path: PathBuf,
    /// Read-only.
    pub readonly: bool,
    /// Mount propagation (`None`, `HostToContainer`, `Bidirectional`).
    pub propagation: Option<String>,
}

/// The container configuration.
#[allow(clippy::too_many_arguments)]
pub fn container_config(
    settings: &NodeSettings,
    pod: &Pod,
    c: &ContainerSpec,
    attempt: u32,
    image: &str,
    envs: Vec<(String, String)>,
    mounts: &[Mount],
) -> v1::ContainerConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut labels: HashMap<String, String> = HashMap::new();
    let (name, ns, uid) = meta(pod);
    labels.insert(LABEL_POD_NAME.to_owned(), name.to_owned());
    labels.insert(LABEL_POD_NAMESPACE.to_owned(), ns.to_owned());
    labels.insert(LABEL_POD_UID.to_owned(), uid.to_owned());
    labels.insert(LABEL_CONTAINER_NAME.to_owned(), c.name.clone());
    labels.insert(LABEL_MANAGED_BY_NODE.to_owned(), settings.node_name.clone());
    let termination_path = c
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".to_owned());
    let annotations = HashMap::from([
        (ANNOTATION_HASH.to_owned(), crate::sync::container_hash(c)),
        (ANNOTATION_TERMINATION_PATH.to_owned(), termination_path),
        (
            "io.kubernetes.container.restartCount".to_owned(),
            attempt.to_string(),
        ),
        (
            ANNOTATION_GRACE.to_owned(),
            spec.termination_grace_period_seconds
                .unwrap_or(30)
                .to_string(),
        ),
    ]);
    let vars: HashMap<&str, &str> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand_all = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter()
            .flatten()
            .map(|s| crate::env::expand(s, &vars))
            .collect()
    };
    let psc = spec.security_context.clone().unwrap_or_default();
    v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: c.name.clone(),
            attempt,
        }),
        image: Some(v1::ImageSpec {
            image: image.to_owned(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: expand_all(&c.command),
        args: expand_all(&c.args),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: envs
            .iter()
            .map(|(key, value)| v1::KeyValue {
                key: key.clone(),
                value: value.clone().into_bytes(),
            })
            .collect(),
        mounts: mounts
            .iter()
            .map(|m| v1::Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.display().to_string(),
                readonly: m.readonly,
                propagation: match m.propagation.as_deref() {
                    Some("HostToContainer") => v1::MountPropagation::PropagationHostToContainer,
                    Some("Bidirectional") => v1::MountPropagation::PropagationBidirectional,
                    _ => v1::MountPropagation::PropagationPrivate,
                } as i32,
                ..Default::default()
            })
            .collect(),
        labels,
        annotations,
        log_path: format!("{}/{attempt}.log", c.name),
        stdin: c.stdin == Some(true),
        stdin_once: c.stdin_once == Some(true),
        tty: c.tty == Some(true),
        linux: Some(v1::LinuxContainerConfig {
            resources: Some(linux_resources(c, qos_class(pod))),
            security_context: Some(container_security(pod, c.security_context.as_ref(), &psc)),
        }),
        ..Default::default()
    }
}

fn container_security(
    pod: &Pod,
    sc: Option<&SecurityContext>,
    psc: &PodSecurityContext,
) -> v1::LinuxContainerSecurityContext {
    let sc = sc.cloned().unwrap_or_default();
    let privileged = sc.privileged == Some(true);
    let capabilities = sc.capabilities.as_ref().map(|c| v1::Capability {
        add_capabilities: c.add.clone().unwrap_or_default(),
        drop_capabilities: c.drop.clone().unwrap_or_default(),
        ..Default::default()
    });
    let mut groups = psc.supplemental_groups.clone().unwrap_or_default();
    if let Some(fs_group) = psc.fs_group {
        groups.push(fs_group);
    }
    v1::LinuxContainerSecurityContext {
        capabilities,
        privileged,
        namespace_options: Some(namespace_options(pod)),
        run_as_user: sc
            .run_as_user
            .or(psc.run_as_user)
            .map(|value| v1::Int64Value { value }),
        run_as_group: sc
            .run_as_group
            .or(psc.run_as_group)
            .map(|value| v1::Int64Value { value }),
        readonly_rootfs: sc.read_only_root_filesystem == Some(true),
        supplemental_groups: groups,
        // allowPrivilegeEscalation defaults to true, as upstream; privileged implies it.
        no_new_privs: sc.allow_privilege_escalation == Some(false) && !privileged,
        seccomp: seccomp(sc.seccomp_profile.as_ref().or(psc.seccomp_profile.as_ref())),
        masked_paths: if privileged {
            Vec::new()
        } else {
            default_masked()
        },
        readonly_paths: if privileged {
            Vec::new()
        } else {
            default_readonly()
        },
        ..Default::default()
    }
}

/// Upstream's default masked paths (containerd masks these itself when the list is empty and
/// the container is not privileged only in newer releases, so the kubelet sends them).
fn default_masked() -> Vec<String> {
    [
        "/proc/asound",
        "/proc/acpi",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn default_readonly() -> Vec<String> {
    [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Where a pod's own files live on the node: `<pods_dir>/<uid>`.
pub fn pod_dir(pods_dir: &Path, pod: &Pod) -> PathBuf {
    pods_dir.join(meta(pod).2)
}
