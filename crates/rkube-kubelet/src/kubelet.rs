//! The kubelet: registers the node, keeps its status and Lease fresh, watches the pods bound
//! to it and runs one worker per pod (see `worker`), relisting the runtime every second to
//! notice containers that changed state.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ContainerImage, Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::{Mutex, Notify};

use crate::backoff::Backoff;
use crate::cri::v1;
use crate::events::Recorder;
use crate::files::{HostFiles, PodFiles};
use crate::node::{self, Health, Machine, NodeConfig};
use crate::observed::{self, RuntimePod};
use crate::podconfig::NodeSettings;
use crate::runtime::ContainerRuntime;
use crate::sources::PodSources;
use crate::sync::ProbeState;
use crate::volumes::VolumeManager;

/// How the kubelet is set up.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// The node's name.
    pub node_name: String,
    /// The node's address.
    pub node_ip: String,
    /// `<data-dir>/agent`.
    pub agent_dir: PathBuf,
    /// Extra node labels.
    pub labels: BTreeMap<String, String>,
    /// The cluster DNS address, if cluster DNS runs.
    pub cluster_dns: Option<String>,
    /// The cluster domain.
    pub cluster_domain: String,
    /// The cgroup pods go under.
    pub cgroup_root: String,
    /// runc uses systemd cgroups.
    pub systemd_cgroups: bool,
    /// The pod network's bridge.
    pub bridge: String,
    /// The cluster's pod range: traffic between pods is not masqueraded.
    pub cluster_cidr: Option<String>,
    /// Where the CNI configuration goes (containerd reads it).
    pub cni_conf_dir: PathBuf,
    /// The runtime's socket (for the node's runtime version).
    pub runtime_endpoint: String,
    /// The kubelet API's port.
    pub kubelet_port: u16,
    /// The CA that client certificates of kubelet API callers must chain to (PEM).
    pub client_ca: String,
    /// Registry settings (`--registries-config`): credentials for pulls.
    pub registries: crate::images::Registries,
    /// Hard eviction thresholds (`--eviction-hard`).
    pub eviction_hard: Vec<crate::eviction::Threshold>,
    /// How long a pressure condition holds after its threshold was last met.
    pub eviction_pressure_transition: Duration,
    /// When unused images are removed.
    pub image_gc: crate::imagegc::Policy,
    /// Pods get cgroups of their own with the pod's limits (real nodes; not hollow ones).
    pub pod_cgroups: bool,
    /// How often a running pod is synced when nothing happens to it (volume contents,
    /// deadlines): upstream's `syncFrequency`.
    pub sync_frequency: Duration,
}

/// One pod the kubelet knows.
pub struct PodEntry {
    /// The pod as last seen from the API.
    pub pod: Mutex<Pod>,
    /// The API no longer has the pod.
    pub removed: std::sync::atomic::AtomicBool,
    /// Wakes the pod's worker.
    pub notify: Notify,
    /// Probe results.
    pub probes: Mutex<ProbeState>,
    /// Sticky waiting reasons (image pulls, config errors) by container name.
    pub waiting: Mutex<HashMap<String, (String, String)>>,
    /// Prober tasks by container id and probe kind.
    pub probers: Mutex<HashMap<(String, crate::probe::ProbeKind), tokio::task::JoinHandle<()>>>,
    /// The status last written.
    pub last_status: Mutex<Option<serde_json::Value>>,
    /// Volume host paths by volume name.
    pub volumes: Mutex<HashMap<String, PathBuf>>,
    /// When volumes were last refreshed.
    pub volumes_synced: Mutex<Option<std::time::Instant>>,
    /// The pod failed for a reason of the kubelet's (activeDeadlineSeconds, eviction).
    pub failed: Mutex<Option<(String, String)>>,
    /// The pod went through the node's admission.
    pub admitted: std::sync::atomic::AtomicBool,
}

impl PodEntry {
    pub(crate) fn new(pod: Pod) -> Self {
        Self {
            pod: Mutex::new(pod),
            removed: std::sync::atomic::AtomicBool::new(false),
            notify: Notify::new(),
            probes: Mutex::new(ProbeState::default()),
            waiting: Mutex::new(HashMap::new()),
            probers: Mutex::new(HashMap::new()),
            last_status: Mutex::new(None),
            volumes: Mutex::new(HashMap::new()),
            volumes_synced: Mutex::new(None),
            failed: Mutex::new(None),
            admitted: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// State shared by the kubelet's loops and workers.
pub struct Shared {
    /// The API client.
    pub client: kube::Client,
    /// Configuration.
    pub config: KubeletConfig,
    /// The container runtime.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Node-wide settings for CRI configs.
    pub settings: NodeSettings,
    /// Volumes.
    pub volumes: VolumeManager,
    /// The pods' files (volumes, /etc/hosts, termination messages, log directories).
    pub files: Arc<dyn PodFiles>,
    /// The ConfigMaps, Secrets and Services the pods are made from (shared by the hollow
    /// nodes of a simulation).
    pub sources: Arc<PodSources>,
    /// Events.
    pub recorder: Recorder,
    /// Known pods by uid.
    pub pods: Mutex<HashMap<String, Arc<PodEntry>>>,
    /// Restart and image back-off.
    pub backoff: Mutex<Backoff>,
    /// Container statuses by id, for as long as the container keeps its state.
    pub statuses: Mutex<HashMap<String, v1::ContainerStatus>>,
    /// The node's addresses.
    pub node_ips: Vec<String>,
    /// Allocatable cpu (millicores) and memory (bytes).
    pub allocatable: (i64, i64),
    /// The pod list has been read once (orphans can be told apart).
    pub synced: std::sync::atomic::AtomicBool,
    /// `<agent>/pods`.
    pub pods_dir: PathBuf,
    /// Node-pressure eviction.
    pub eviction: crate::eviction::Manager,
    /// Image garbage collection.
    pub image_gc: crate::imagegc::Manager,
}

impl Shared {
    /// The state of a node's kubelet over `runtime`, keeping pod files in `files`, for a node
    /// with `machine`'s resources and `host_resolv` as its /etc/resolv.conf, reading the
    /// objects its pods refer to through `sources`.
    pub fn new(
        client: kube::Client,
        config: KubeletConfig,
        runtime: Arc<dyn ContainerRuntime>,
        files: Arc<dyn PodFiles>,
        sources: Arc<PodSources>,
        machine: &Machine,
        host_resolv: String,
    ) -> Self {
        let settings = NodeSettings {
            node_name: config.node_name.clone(),
            log_root: config.agent_dir.join("logs/pods"),
            cgroup_root: config.cgroup_root.clone(),
            systemd_cgroups: config.systemd_cgroups,
            cluster_dns: config.cluster_dns.clone(),
            cluster_domain: config.cluster_domain.clone(),
            host_resolv,
        };
        let pods_dir = config.agent_dir.join("pods");
        let (_, allocatable) = node::resources(machine);
        let cpu = allocatable
            .get("cpu")
            .and_then(crate::podconfig::millis)
            .unwrap_or(1000);
        let memory = allocatable
            .get("memory")
            .and_then(crate::podconfig::units)
            .unwrap_or(0);
        Self {
            eviction: crate::eviction::Manager::new(
                config.eviction_hard.clone(),
                config.eviction_pressure_transition,
            ),
            image_gc: crate::imagegc::Manager::new(config.image_gc),
            volumes: VolumeManager::new(pods_dir.clone(), files.clone(), client.clone()),
            files,
            sources,
            recorder: Recorder::new(client.clone(), config.node_name.clone()),
            node_ips: vec![config.node_ip.clone()],
            client,
            config,
            runtime,
            settings,
            pods: Mutex::new(HashMap::new()),
            backoff: Mutex::new(Backoff::default()),
            statuses: Mutex::new(HashMap::new()),
            allocatable: (cpu, memory),
            synced: std::sync::atomic::AtomicBool::new(false),
            pods_dir,
        }
    }
}

/// The running kubelet.
pub struct Kubelet {
    shared: Arc<Shared>,
}

impl Kubelet {
    /// A kubelet for this node over `runtime`.
    pub fn new(
        client: kube::Client,
        config: KubeletConfig,
        runtime: Arc<dyn ContainerRuntime>,
    ) -> Self {
        let machine = Machine::read(&config.agent_dir);
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let sources = Arc::new(PodSources::new(client.clone()));
        Self {
            shared: Arc::new(Shared::new(
                client,
                config,
                runtime,
                Arc::new(HostFiles),
                sources,
                &machine,
                host_resolv,
            )),
        }
    }

    /// The shared state (for the kubelet API).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Registers the node and runs until `stop` resolves.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let shared = self.shared;
        let version = shared.runtime.version().await?;
        let machine = Machine::read(&shared.config.agent_dir);
        let node_config = NodeConfig {
            name: shared.config.node_name.clone(),
            ip: shared.config.node_ip.clone(),
            hostname: hostname(),
            labels: shared.config.labels.clone(),
            runtime_version: format!("{}://{}", version.runtime_name, version.runtime_version),
            machine,
            kubelet_port: shared.config.kubelet_port,
        };
        let nodes: Api<Node> = Api::all(shared.client.clone());
        let registered = loop {
            match node::register(&nodes, &node_config).await {
                Ok(n) => break n,
                Err(e) => {
                    tracing::warn!(error = %e, "registering the node; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        tracing::info!(node = %node_config.name, "node registered");
        let (cert, key) = serving_cert(&shared).await?;
        let serving = crate::server::ServingConfig {
            address: std::net::SocketAddr::from(([0, 0, 0, 0], shared.config.kubelet_port)),
            cert,
            key,
            client_ca: shared.config.client_ca.clone(),
        };
        let api = tokio::spawn({
            let shared = shared.clone();
            async move {
                if let Err(e) = crate::server::serve(shared, serving).await {
                    tracing::error!(error = %e, "the kubelet API stopped");
                }
            }
        });
        let heartbeat = tokio::spawn(heartbeat(shared.clone(), node_config, registered));
        let pods = tokio::spawn(crate::podwatch::watch_pods(
            shared.client.clone(),
            Some(format!("spec.nodeName={}", shared.config.node_name)),
            shared.clone(),
        ));
        let services = tokio::spawn(crate::services::watch_services(
            shared.client.clone(),
            shared.sources.services.clone(),
        ));
        let pleg = tokio::spawn(relist(shared.clone()));
        let eviction = tokio::spawn(crate::eviction::run(shared.clone()));
        let image_gc = tokio::spawn(crate::imagegc::run(shared.clone()));
        let statics = tokio::spawn(crate::static_pods::run(
            shared.client.clone(),
            shared.config.agent_dir.join("pod-manifests"),
            shared.config.node_name.clone(),
        ));
        stop.await;
        heartbeat.abort();
        api.abort();
        pods.abort();
        services.abort();
        pleg.abort();
        eviction.abort();
        image_gc.abort();
        statics.abort();
        let entries: Vec<Arc<PodEntry>> = shared.pods.lock().await.values().cloned().collect();
        for entry in entries {
            for (_, task) in entry.probers.lock().await.drain() {
                task.abort();
            }
        }
        Ok(())
    }
}

/// The kubelet's serving certificate: issued by the cluster CA through a
/// `kubernetes.io/kubelet-serving` certificate request for the node's name and address, kept
/// under the agent directory and asked for again when the names change or it nears expiry;
/// self-signed (and asked for again at the next start) if no certificate comes.
async fn serving_cert(shared: &Shared) -> anyhow::Result<(String, String)> {
    let config = &shared.config;
    let (cert_path, key_path) = (
        config.agent_dir.join("serving-kubelet.crt"),
        config.agent_dir.join("serving-kubelet.key"),
    );
    let marker = config.agent_dir.join("serving-kubelet.names");
    let names = format!("issued:{},{}", config.node_name, config.node_ip);
    if let (Ok(cert), Ok(key), Ok(saved)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
        std::fs::read_to_string(&marker),
    ) && saved == names
        && crate::join::still_valid(&cert)
    {
        return Ok((cert, key));
    }
    let requested = async {
        let key = rcgen::KeyPair::generate()?;
        let params = crate::join::node_subject(
            &config.node_name,
            vec![config.node_name.clone(), config.node_ip.clone()],
        )?;
        let cert = crate::join::request_certificate(
            shared.client.clone(),
            &format!("csr-kubelet-serving-{}", config.node_name),
            &key,
            &params,
            crate::join::KUBELET_SERVING_SIGNER,
            &["digital signature", "server auth"],
            Duration::from_secs(60),
        )
        .await?;
        anyhow::Ok((cert, key.serialize_pem()))
    };
    let (cert, key) = match requested.await {
        Ok((cert, key)) => {
            std::fs::write(&cert_path, &cert)?;
            crate::join::write_private(&key_path, &key)?;
            std::fs::write(&marker, &names)?;
            (cert, key)
        }
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "no serving certificate from the cluster CA; serving a self-signed one"
            );
            let _ = std::fs::remove_file(&marker);
            crate::server::self_signed(&config.node_name, &config.node_ip)?
        }
    };
    Ok((cert, key))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// Node status every 10 s and the Lease every 10 s; the pod network's configuration once the
/// node has a podCIDR.
async fn heartbeat(shared: Arc<Shared>, config: NodeConfig, mut node: Node) {
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let leases: Api<Lease> = Api::namespaced(shared.client.clone(), "kube-node-lease");
    let mut lease = node::NodeLease::default();
    let mut cni_written = false;
    loop {
        if !cni_written && let Some(cidr) = node.spec.as_ref().and_then(|s| s.pod_cidr.clone()) {
            let ipam = shared.config.agent_dir.join("cni/networks");
            // One masquerade rule for the node when nftables is there; the bridge plugin's
            // per-pod iptables chains otherwise.
            let own_masquerade = crate::cni::apply_masquerade(
                &shared.config.bridge,
                &cidr,
                shared.config.cluster_cidr.as_deref(),
            );
            match crate::cni::write(
                &shared.config.cni_conf_dir,
                &cidr,
                &shared.config.bridge,
                &ipam,
                !own_masquerade,
            ) {
                Ok(()) => cni_written = true,
                Err(e) => tracing::error!(error = %e, "writing the CNI configuration"),
            }
        }
        let health = Health {
            ready: cni_written,
            not_ready_message: if cni_written {
                String::new()
            } else {
                "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized".to_owned()
            },
            pressure: shared.eviction.conditions(),
        };
        let images = images(shared.runtime.as_ref()).await;
        let status = node::status(&config, &health, images, node.status.as_ref());
        let patch = serde_json::json!({"status": status});
        match nodes
            .patch_status(&config.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(updated) => node = updated,
            Err(kube::Error::Api(e)) if e.code == 404 => {
                // Deleted under us: register again, as upstream's kubelet does.
                if let Ok(n) = node::register(&nodes, &config).await {
                    node = n;
                }
            }
            Err(e) => tracing::warn!(error = %e, "updating the node status"),
        }
        if let Err(e) = lease.renew(&leases, &node).await {
            tracing::warn!(error = %e, "renewing the node lease");
        }
        let wait = if cni_written { 10 } else { 1 };
        tokio::time::sleep(Duration::from_secs(wait)).await;
        if !cni_written && let Ok(n) = nodes.get(&config.name).await {
            node = n;
        }
    }
}

pub(crate) async fn images(runtime: &dyn ContainerRuntime) -> Vec<ContainerImage> {
    let mut list: Vec<ContainerImage> = runtime
        .list_images()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|i| {
            !i.repo_tags
                .iter()
                .any(|t| t == crate::containerd::SANDBOX_IMAGE)
        })
        .map(|i| ContainerImage {
            names: Some(i.repo_digests.iter().chain(&i.repo_tags).cloned().collect()),
            size_bytes: Some(i.size as i64),
        })
        .collect();
    list.sort_by_key(|i| std::cmp::Reverse(i.size_bytes));
    list.truncate(50);
    list
}

/// What the runtime holds for one pod. Container statuses are cached by id and state: a
/// container's status only changes with its state.
pub async fn runtime_pod(
    shared: &Shared,
    uid: &str,
) -> Result<RuntimePod, crate::runtime::RuntimeError> {
    let sandboxes = shared.runtime.list_pod_sandboxes(Some(uid)).await?;
    let containers = shared.runtime.list_containers(Some(uid)).await?;
    let mut statuses = HashMap::new();
    for c in &containers {
        let cached = shared
            .statuses
            .lock()
            .await
            .get(&c.id)
            .filter(|s| s.state == c.state)
            .cloned();
        let status = match cached {
            Some(s) => s,
            None => match shared.runtime.container_status(&c.id).await {
                Ok(s) => {
                    shared.statuses.lock().await.insert(c.id.clone(), s.clone());
                    s
                }
                Err(_) => continue,
            },
        };
        statuses.insert(c.id.clone(), status);
    }
    Ok(observed::group_by_pod(&sandboxes, &containers, &statuses)
        .remove(uid)
        .unwrap_or_default())
}

/// Every second: wake the workers of pods whose containers changed state, and remove what the
/// runtime holds for pods the API no longer has (orphans).
pub async fn relist(shared: Arc<Shared>) {
    let mut last: HashMap<String, Vec<(String, crate::observed::State, bool)>> = HashMap::new();
    // What the last relist looked at, when the runtime can tell its changes: the same runtime
    // state, pods and sync state again find nothing new.
    let mut looked_at = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mark = match shared.runtime.changes() {
            Some(changes) => Some((
                changes,
                shared.synced.load(std::sync::atomic::Ordering::SeqCst),
                pod_set_mark(&*shared.pods.lock().await),
            )),
            None => None,
        };
        if mark.is_some() && mark == looked_at {
            continue;
        }
        let sandboxes = match shared.runtime.list_pod_sandboxes(None).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "listing sandboxes");
                continue;
            }
        };
        let Ok(containers) = shared.runtime.list_containers(None).await else {
            continue;
        };
        {
            let live: HashSet<&str> = containers.iter().map(|c| c.id.as_str()).collect();
            shared
                .statuses
                .lock()
                .await
                .retain(|id, _| live.contains(id.as_str()));
        }
        let grouped = observed::group_by_pod(&sandboxes, &containers, &HashMap::new());
        let mut now: HashMap<String, Vec<(String, crate::observed::State, bool)>> = HashMap::new();
        for (uid, pod) in &grouped {
            let mut sig: Vec<(String, crate::observed::State, bool)> = pod
                .containers
                .iter()
                .map(|c| (c.id.clone(), c.state, false))
                .chain(
                    pod.sandboxes
                        .iter()
                        .map(|s| (s.id.clone(), crate::observed::State::Unknown, s.ready)),
                )
                .collect();
            sig.sort_by(|a, b| a.0.cmp(&b.0));
            now.insert(uid.clone(), sig);
        }
        let pods = shared.pods.lock().await;
        for (uid, sig) in &now {
            if last.get(uid) != Some(sig)
                && let Some(entry) = pods.get(uid)
            {
                entry.notify.notify_one();
            }
        }
        let synced = shared.synced.load(std::sync::atomic::Ordering::SeqCst);
        let orphans: Vec<String> = if synced {
            grouped
                .keys()
                .filter(|uid| !pods.contains_key(*uid))
                .filter(|uid| {
                    // Only what this node made.
                    sandboxes.iter().any(|s| {
                        s.labels.get(observed::LABEL_POD_UID) == Some(*uid)
                            && s.labels
                                .get(observed::LABEL_MANAGED_BY_NODE)
                                .is_none_or(|n| *n == shared.config.node_name)
                    })
                })
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        drop(pods);
        for uid in orphans {
            if let Some(pod) = grouped.get(&uid) {
                tracing::info!(%uid, "removing the containers of a pod the API no longer has");
                crate::worker::remove_runtime_pod(&shared, pod, 0).await;
                shared.volumes.teardown(&uid).await;
                if shared.config.pod_cgroups {
                    crate::cgroups::remove(&shared.settings, &uid);
                }
            }
        }
        last = now;
        looked_at = mark;
    }
}

/// A number standing for the set of pods the kubelet holds (their uids, in any order).
fn pod_set_mark<V>(pods: &HashMap<String, V>) -> (usize, u64) {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    let sum = pods
        .keys()
        .fold(0u64, |sum, uid| sum.wrapping_add(hasher.hash_one(uid)));
    (pods.len(), sum)
}
