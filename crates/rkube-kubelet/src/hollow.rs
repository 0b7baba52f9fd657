//! Hollow nodes (`rkube sim`): many simulated nodes in one process, for capacity planning and
//! for trying schedulers and controllers against a large cluster without its machines.
//!
//! Each hollow node is a real Node with its Lease, and runs the kubelet's own pod workers
//! (`worker`, `sync`, `status`) over a [`FakeRuntime`]: pods go through the status transitions
//! a real node writes, only their containers are not processes. Every node shares one client,
//! one pod watch, dispatched by `spec.nodeName`, and one set of watches of what pods refer to
//! (a watch per ConfigMap or Secret, one of Services; `sources`) — upstream's kubemark runs one
//! kubelet per hollow node, each with its own watches; here the API server's cost is the pods',
//! not the nodes'.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use tokio::sync::Semaphore;

use crate::fake::FakeRuntime;
use crate::files::MemoryFiles;
use crate::kubelet::{KubeletConfig, Shared};
use crate::node::{self, Health, Machine, NodeConfig};
use crate::sources::PodSources;

/// The Lease is renewed this often, as upstream's kubelet does (a quarter of its 40 s).
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// With a Lease, upstream's kubelet reports an unchanged node status this often
/// (`nodeStatusReportFrequency`).
const STATUS_REPORT: Duration = Duration::from_secs(300);
/// How often upstream's kubelet looks at its node's status (`nodeStatusUpdateFrequency`): a
/// node waiting for its podCIDR looks no more often than this once the first seconds pass.
const STATUS_UPDATE: Duration = Duration::from_secs(10);
/// Nodes registering at once.
const REGISTERING: usize = 16;

/// How the simulated cluster is set up.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// How many nodes.
    pub nodes: usize,
    /// Node names are this prefix and the node's number.
    pub name_prefix: String,
    /// Cores each node has.
    pub cpus: u32,
    /// Memory each node has, in bytes.
    pub memory: u64,
    /// Pods each node takes.
    pub pods_per_node: u32,
    /// How long a pod's sandbox takes to start.
    pub startup_delay: Duration,
    /// Extra labels on every node.
    pub labels: BTreeMap<String, String>,
    /// Where pod files go (volumes, hosts files), one directory per node.
    pub state_dir: PathBuf,
    /// Leave the Node objects when the simulation stops.
    pub keep_nodes: bool,
}

/// The hollow nodes by name, for the pod watch.
#[derive(Default)]
struct HollowNodes {
    nodes: RwLock<HashMap<String, Arc<Shared>>>,
}

impl crate::podwatch::Nodes for Arc<HollowNodes> {
    fn node(&self, name: &str) -> Option<Arc<Shared>> {
        self.nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn all(&self) -> Vec<Arc<Shared>> {
        self.nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

/// The address of hollow node `index`: from 100.64.0.0/10, which no pod or Service range
/// of a default cluster uses.
fn node_ip(index: usize) -> String {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + 1 + index as u32).to_string()
}

/// The machine a hollow node claims to be.
pub fn machine(config: &SimConfig, name: &str) -> Machine {
    let id = crate::pause::sha256(name.as_bytes());
    let id = id.trim_start_matches("sha256:");
    Machine {
        cpus: config.cpus,
        memory: config.memory,
        ephemeral_storage: 100 << 30,
        machine_id: id[..32].to_owned(),
        system_uuid: id[32..64].to_owned(),
        boot_id: id[..32].to_owned(),
        kernel: "hollow".to_owned(),
        os_image: "rkube sim (hollow node)".to_owned(),
        max_pods: config.pods_per_node,
    }
}

/// The kubelet configuration of a hollow node.
fn kubelet_config(config: &SimConfig, name: &str, ip: String) -> KubeletConfig {
    let agent_dir = config.state_dir.join(name);
    KubeletConfig {
        node_name: name.to_owned(),
        node_ip: ip,
        cni_conf_dir: agent_dir.join("cni"),
        agent_dir,
        labels: config.labels.clone(),
        cluster_dns: None,
        cluster_domain: "cluster.local".to_owned(),
        cgroup_root: "/rkube-sim".to_owned(),
        systemd_cgroups: false,
        bridge: String::new(),
        cluster_cidr: None,
        runtime_endpoint: "fake".to_owned(),
        kubelet_port: node::KUBELET_PORT as u16,
        client_ca: String::new(),
        registries: crate::images::Registries::default(),
        eviction_hard: Vec::new(),
        eviction_pressure_transition: std::time::Duration::from_secs(300),
        image_gc: crate::imagegc::Policy::default(),
        pod_cgroups: false,
        // Upstream's default: a hollow node's pods have no volume contents to keep current,
        // and a simulation of many pods should cost what a real node's kubelet does.
        sync_frequency: std::time::Duration::from_secs(60),
    }
}

/// One hollow node: its kubelet state and the runtime it runs pods on.
pub struct HollowNode {
    /// The kubelet state the pod workers share.
    pub shared: Arc<Shared>,
    /// The node's runtime.
    pub runtime: Arc<FakeRuntime>,
    node_config: NodeConfig,
}

impl HollowNode {
    /// Hollow node `index` of the simulation, reading what its pods refer to through
    /// `sources` (the simulation's, shared by its nodes).
    pub fn new(
        client: kube::Client,
        config: &SimConfig,
        index: usize,
        sources: Arc<PodSources>,
    ) -> Self {
        let name = format!("{}{index}", config.name_prefix);
        let ip = node_ip(index);
        let machine = machine(config, &name);
        let runtime = Arc::new(FakeRuntime::hollow(config.startup_delay));
        let kubelet = kubelet_config(config, &name, ip.clone());
        let node_config = NodeConfig {
            name: name.clone(),
            ip,
            hostname: name,
            labels: config.labels.clone(),
            runtime_version: "fake://1.0.0".to_owned(),
            machine: machine.clone(),
            kubelet_port: kubelet.kubelet_port,
        };
        let shared = Arc::new(Shared::new(
            client,
            kubelet,
            runtime.clone(),
            Arc::new(MemoryFiles::new()),
            sources,
            &machine,
            String::new(),
        ));
        Self {
            shared,
            runtime,
            node_config,
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.node_config.name
    }

    /// Registers the node (creating it holds a permit of `registering`) and waits for its
    /// podCIDR; `Ok` once the node is Ready.
    pub async fn register(&self, registering: &Semaphore) -> Result<Node, kube::Error> {
        let nodes: Api<Node> = Api::all(self.shared.client.clone());
        let permit = registering.acquire().await;
        let mut node = node::register(&nodes, &self.node_config).await?;
        drop(permit);
        // Like the kubelet, Ready only once the pod network (here: the podCIDR) is there. The
        // NotReady status is reported once: while nothing changes, reporting it again would
        // only add writes, which thousands of nodes joining at once would otherwise make
        // every second. The wait for the podCIDR backs off to the status update period.
        let mut reported = false;
        let mut wait = Duration::from_secs(1);
        let cidr = loop {
            if let Some(cidr) = node.spec.as_ref().and_then(|s| s.pod_cidr.clone()) {
                break cidr;
            }
            if !reported {
                self.report(&mut node, false).await?;
                reported = true;
                continue;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(STATUS_UPDATE);
            node = nodes.get(self.name()).await?;
        };
        if let Err(message) = self.runtime.set_pod_cidr(&cidr) {
            tracing::warn!(node = self.name(), %message, "the node's podCIDR");
        }
        self.report(&mut node, true).await?;
        Ok(node)
    }

    async fn report(&self, node: &mut Node, ready: bool) -> Result<(), kube::Error> {
        let nodes: Api<Node> = Api::all(self.shared.client.clone());
        let health = Health {
            ready,
            not_ready_message: if ready {
                String::new()
            } else {
                "container runtime network not ready: the node has no podCIDR yet".to_owned()
            },
            ..Health::default()
        };
        let images = crate::kubelet::images(self.shared.runtime.as_ref()).await;
        let status = node::status(&self.node_config, &health, images, node.status.as_ref());
        let patch = serde_json::json!({"status": status});
        *node = nodes
            .patch_status(self.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Keeps the Lease fresh and the status reported, registering again if the node is
    /// deleted under it.
    pub async fn heartbeat(&self, mut node: Node) {
        let leases: Api<Lease> = Api::namespaced(self.shared.client.clone(), "kube-node-lease");
        // Nodes of a simulation register within seconds of each other; real nodes join over
        // time. Each node's reports are offset by a share of the period fixed by its name,
        // so the cluster's unchanged-status reports spread over the period instead of
        // arriving all at once every five minutes.
        let now = tokio::time::Instant::now();
        let mut reported = now.checked_sub(report_offset(self.name())).unwrap_or(now);
        let mut lease = node::NodeLease::default();
        loop {
            if let Err(e) = lease.renew(&leases, &node).await {
                tracing::warn!(node = self.name(), error = %e, "renewing the node lease");
            }
            tokio::time::sleep(LEASE_RENEW).await;
            if reported.elapsed() >= STATUS_REPORT {
                match self.report(&mut node, true).await {
                    Ok(()) => reported = tokio::time::Instant::now(),
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        if let Ok(n) = self.register(&Semaphore::new(1)).await {
                            node = n;
                        }
                    }
                    Err(e) => tracing::warn!(node = self.name(), error = %e, "node status"),
                }
            }
        }
    }
}

/// Where in the status report period a node's reports fall: a share of [`STATUS_REPORT`]
/// fixed by the node's name.
fn report_offset(name: &str) -> Duration {
    let digest = crate::pause::sha256(name.as_bytes());
    let hex = digest.trim_start_matches("sha256:");
    let share = u16::from_str_radix(&hex[..4], 16).unwrap_or(0);
    STATUS_REPORT.mul_f64(f64::from(share) / f64::from(u16::MAX) * 0.99)
}

/// Runs `config.nodes` hollow nodes until `stop` resolves, then deletes their Node objects
/// (unless `keep_nodes`).
pub async fn run(
    client: kube::Client,
    config: SimConfig,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.state_dir)?;
    let hollow = Arc::new(HollowNodes::default());
    // One watch per referenced ConfigMap and Secret and one Service watch for all the nodes.
    let sources = Arc::new(PodSources::new(client.clone()));
    let mut tasks = vec![
        tokio::spawn(crate::podwatch::watch_pods(
            client.clone(),
            None,
            hollow.clone(),
        )),
        tokio::spawn(crate::services::watch_services(
            client.clone(),
            sources.services.clone(),
        )),
    ];
    let registering = Arc::new(Semaphore::new(REGISTERING));
    let mut names = Vec::with_capacity(config.nodes);
    for index in 0..config.nodes {
        let node = Arc::new(HollowNode::new(
            client.clone(),
            &config,
            index,
            sources.clone(),
        ));
        names.push(node.name().to_owned());
        hollow
            .nodes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(node.name().to_owned(), node.shared.clone());
        tasks.push(tokio::spawn(crate::kubelet::relist(node.shared.clone())));
        let registering = registering.clone();
        tasks.push(tokio::spawn(async move {
            let registered = loop {
                match node.register(&registering).await {
                    Ok(n) => break n,
                    Err(e) => {
                        tracing::warn!(node = node.name(), error = %e, "registering; retrying");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            };
            node.heartbeat(registered).await;
        }));
    }
    tracing::info!(nodes = config.nodes, "hollow nodes started");
    stop.await;
    for task in &tasks {
        task.abort();
    }
    if !config.keep_nodes {
        delete_nodes(&client, names).await;
    }
    Ok(())
}

async fn delete_nodes(client: &kube::Client, names: Vec<String>) {
    let nodes: Api<Node> = Api::all(client.clone());
    let deleting = Arc::new(Semaphore::new(REGISTERING));
    let mut handles = Vec::with_capacity(names.len());
    for name in names {
        let (nodes, deleting) = (nodes.clone(), deleting.clone());
        handles.push(tokio::spawn(async move {
            let _permit = deleting.acquire().await;
            match nodes.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => tracing::warn!(node = %name, error = %e, "deleting the node"),
            }
        }));
    }
    for handle in handles {
        let _ = handle.await;
    }
    tracing::info!("hollow nodes deleted");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_of_many_nodes_spread_over_the_period() {
        let mut buckets = [0usize; 10];
        for i in 0..1000 {
            let offset = report_offset(&format!("hollow-{i}"));
            assert!(offset < STATUS_REPORT);
            let bucket = (offset.as_secs_f64() / STATUS_REPORT.as_secs_f64() * 10.0) as usize;
            buckets[bucket] += 1;
        }
        // About a tenth of the nodes in each tenth of the period.
        for n in buckets {
            assert!((50..=150).contains(&n), "{buckets:?}");
        }
        assert_eq!(report_offset("hollow-1"), report_offset("hollow-1"));
    }
}
