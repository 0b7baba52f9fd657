//! The rkube binary: one executable for every role.

/// The allocator: the server's work is many small allocations (JSON values, strings). The
/// `system-allocator` feature keeps the C library's, which heap profilers that hook `malloc`
/// (heaptrack) can follow.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rkube_apiserver::auth::{NodeTokenFile, UserInfo};
use rkube_apiserver::{ApiServer, ServerConfig};
use rkube_kubelet::join::JoinToken;
use rkube_store::{SqliteConfig, StoreConfig};

#[derive(Parser)]
#[command(
    name = "rkube",
    version,
    about = "A Kubernetes-compatible container orchestrator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane on this machine, with a node agent unless --disable-agent.
    Server(ServerArgs),
    /// Run a node agent (kubelet) that joins a server.
    Agent(AgentCliArgs),
    /// Stop every container the agent started and remove its mounts, network devices and
    /// cgroups.
    Killall(KillallArgs),
    /// Simulate a large cluster: run many hollow nodes in this process.
    ///
    /// Each hollow node is a real Node (capacity, allocatable, conditions, Lease renewed every
    /// 10 s) that runs the pods bound to it with the kubelet's own pod workers over an
    /// in-memory container runtime: pods go Pending -> Running with the conditions, container
    /// statuses and pod IPs (from the node's podCIDR) a real node reports, and finish graceful
    /// deletions, but no container runs. Use it for capacity planning, and to try the scheduler,
    /// controllers and API server against thousands of nodes on one machine. Pod logs, exec and
    /// probes that reach into containers are not simulated.
    ///
    /// The nodes are deleted when the simulation stops (SIGINT/SIGTERM) unless --keep-nodes.
    /// The server needs pod CIDRs for every node: `--cluster-cidr` large enough for --nodes
    /// subnets of `--node-cidr-mask-size`.
    ///
    /// Joining with the server's join token, as an agent would:
    ///   rkube sim --server https://SERVER:6443 --token "$(cat <data-dir>/node-token)" --nodes 1000
    /// or with a kubeconfig:
    ///   rkube sim --kubeconfig <data-dir>/kubeconfig.yaml --nodes 1000
    #[command(verbatim_doc_comment)]
    Sim(SimArgs),
}

#[derive(clap::Args)]
struct SimArgs {
    /// The API server's URL (https://HOST:6443), instead of the kubeconfig's. Needed with
    /// --token.
    #[arg(long)]
    server: Option<String>,
    /// A token to reach the server with, instead of a kubeconfig. The join token agents use
    /// (the server's <data-dir>/node-token, K10<ca-hash>::node:<secret>): the cluster CA is
    /// fetched and checked against the token's hash, and the simulator obtains a node client
    /// certificate (system:node:<name-prefix>sim in system:nodes) through the
    /// CertificateSigningRequest API, kept under --state-dir, as `rkube agent` does. Any
    /// other token is sent as a bearer token (a service account token from `kubectl create
    /// token`, or one of the server's --token-auth-file) and needs --certificate-authority.
    #[arg(long, requires = "server", verbatim_doc_comment)]
    token: Option<String>,
    /// The cluster CA certificate (PEM) that verifies the server with a bearer --token (the
    /// server keeps it in <data-dir>/tls/ca.crt).
    #[arg(long, requires = "token")]
    certificate_authority: Option<PathBuf>,
    /// The kubeconfig to reach the cluster with, when no --token is given (the server writes
    /// an administrator's one to <data-dir>/kubeconfig.yaml).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// How many hollow nodes to run.
    #[arg(long)]
    nodes: usize,
    /// Pods each node takes (its `pods` capacity).
    #[arg(long, default_value_t = 110)]
    pods_per_node: u32,
    /// Cores each node has.
    #[arg(long, default_value_t = 4)]
    node_cpus: u32,
    /// Memory each node has, in GiB.
    #[arg(long, default_value_t = 16)]
    node_memory_gib: u64,
    /// How long a pod's sandbox takes to start (image pulls, network setup), e.g. 200ms, 1s.
    #[arg(long, default_value = "200ms", value_parser = parse_delay)]
    startup_delay: std::time::Duration,
    /// Node names: this prefix and the node's number.
    #[arg(long, default_value = "hollow-node-")]
    name_prefix: String,
    /// Extra labels on every node (repeatable): key=value.
    #[arg(long = "node-label")]
    node_labels: Vec<String>,
    /// Where the nodes keep pod files (volumes); a temporary directory when not given.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Leave the Node objects in the cluster when the simulation stops.
    #[arg(long)]
    keep_nodes: bool,
}

/// The node agent's settings, shared by `rkube server` and `rkube agent`.
#[derive(clap::Args, Clone)]
struct NodeArgs {
    /// The node's name (default: the host name).
    #[arg(long, env = "RKUBE_NODE_NAME")]
    node_name: Option<String>,
    /// The node's address (default: the address of the default route).
    #[arg(long)]
    node_ip: Option<String>,
    /// Use this running CRI runtime (unix socket) instead of starting containerd.
    #[arg(long)]
    container_runtime_endpoint: Option<String>,
    /// Registry mirrors, endpoints, auth and TLS, in k3s's registries.yaml format.
    #[arg(long)]
    registries_config: Option<PathBuf>,
    /// The cgroup every pod's cgroup goes under.
    #[arg(long, default_value = "/")]
    cgroup_root: String,
    /// The Linux bridge pods attach to.
    #[arg(long, default_value = "rkube0")]
    pod_bridge: String,
    /// Where the CNI plugins are installed.
    #[arg(long, default_value = "/usr/lib/cni")]
    cni_bin_dir: PathBuf,
    /// The cluster DNS address pods are pointed at (dnsPolicy ClusterFirst); by default the
    /// tenth address of the Service range (10.43.0.10), where rkube's DNS answers.
    #[arg(long)]
    cluster_dns: Option<String>,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Extra node labels, key=value (repeatable).
    #[arg(long = "node-label")]
    node_labels: Vec<String>,
    /// The kubelet API's port.
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// The local address ranges (CIDRs, comma-separated) NodePorts are served on; by default
    /// every address of the node but loopback. Naming 127.0.0.0/8 serves them on loopback too
    /// (and sets route_localnet).
    #[arg(long, value_delimiter = ',')]
    nodeport_addresses: Vec<String>,
    /// Where the node's service proxy and DNS metrics are served (`/metrics` on 127.0.0.1).
    #[arg(long, default_value_t = 10249)]
    proxy_metrics_port: u16,
    /// Hard eviction thresholds, comma-separated `<signal><<quantity or percentage>` (signals:
    /// memory.available, nodefs.available, nodefs.inodesFree, imagefs.available,
    /// imagefs.inodesFree, pid.available). Given thresholds replace all the defaults.
    #[arg(long, default_value = rkube_kubelet::eviction::DEFAULT_EVICTION_HARD)]
    eviction_hard: String,
    /// How long a node pressure condition holds after its threshold was last met.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    eviction_pressure_transition_period: std::time::Duration,
    /// Unused images are removed once the image filesystem is this full (percent; 100 never).
    #[arg(long, default_value_t = 85)]
    image_gc_high_threshold: u8,
    /// ... down to this (percent).
    #[arg(long, default_value_t = 80)]
    image_gc_low_threshold: u8,
    /// Images the node has known for less than this are never removed.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    minimum_image_ttl_duration: std::time::Duration,
}

#[derive(clap::Args)]
struct AgentCliArgs {
    /// Where the agent keeps its state.
    #[arg(long, env = "RKUBE_DATA_DIR", default_value = "/var/lib/rkube")]
    data_dir: PathBuf,
    /// The server's URL, e.g. https://10.0.0.1:6443.
    #[arg(long, env = "RKUBE_URL")]
    server: String,
    /// The join token (the server's <data-dir>/node-token).
    #[arg(long, env = "RKUBE_TOKEN")]
    token: String,
    /// The cluster's pod address range (the server's --cluster-cidr).
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// The cluster's Service address range (the server's --service-cidr).
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: String,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(clap::Args)]
struct KillallArgs {
    /// The data directory of the agent to clean up.
    #[arg(long, env = "RKUBE_DATA_DIR", default_value = "/var/lib/rkube")]
    data_dir: PathBuf,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Where the server keeps its state (the embedded database lives here).
    #[arg(long, env = "RKUBE_DATA_DIR", default_value = "/var/lib/rkube")]
    data_dir: PathBuf,
    /// Use this datastore instead of the embedded one: etcd://host:port[,host:port…].
    #[arg(long, env = "RKUBE_DATASTORE_ENDPOINT")]
    datastore_endpoint: Option<String>,
    /// The HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    https_listen_port: u16,
    /// The address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: std::net::IpAddr,
    /// Extra names or addresses for the serving certificate (repeatable).
    #[arg(long = "tls-san")]
    tls_san: Vec<String>,
    /// The Service cluster IP range.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: String,
    /// The range pod addresses come from; each node gets one subnet of it.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// The prefix length of each node's pod subnet.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// How long a node may go without a heartbeat before it is marked Unknown.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// How many finished pods may exist before the oldest are deleted (0: never).
    #[arg(long, default_value_t = 12500)]
    terminated_pod_gc_threshold: usize,
    /// Static bearer tokens, one `token,user,uid,"group1,group2"` per line.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Do not run the controllers in this process.
    #[arg(long)]
    disable_controllers: bool,
    /// Run the controllers only while this server holds the kube-system/kube-controller-manager
    /// Lease, so that of several servers exactly one acts (`--leader-elect=false` to run them
    /// unconditionally).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    leader_elect: bool,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    disable_scheduler: bool,
    /// A KubeSchedulerConfiguration file (profiles, plugins, weights,
    /// percentageOfNodesToScore).
    #[arg(long)]
    scheduler_config: Option<PathBuf>,
    /// How long Events are kept after their last change, e.g. 1h, 30m, 90s.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    event_ttl: std::time::Duration,
    /// Do not run a node agent in this process.
    #[arg(long)]
    disable_agent: bool,
    /// Built-in components not to run (repeatable): servicelb, dns.
    #[arg(long = "disable", value_parser = ["servicelb", "dns"])]
    disable: Vec<String>,
    #[command(flatten)]
    node: NodeArgs,
}

/// A component's user agent, upstream's form: `<component>/<version> (<os>/<arch>) rkube`.
fn user_agent(component: &str) -> String {
    format!(
        "{component}/v{} ({}/{}) rkube",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    )
}

/// A duration as Kubernetes flags take it: numbers with h, m or s units, e.g. `1h30m`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(format!("{text:?}: unknown unit {c:?} (use h, m, s)")),
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{text:?}: a number must precede {c:?}"))?;
        total += n * unit;
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!("{text:?}: the last number has no unit"));
    }
    Ok(std::time::Duration::from_secs(total))
}

impl ServerArgs {
    fn store_config(&self) -> anyhow::Result<StoreConfig> {
        match &self.datastore_endpoint {
            Some(endpoint) => StoreConfig::from_endpoint(endpoint)
                .with_context(|| format!("--datastore-endpoint {endpoint}")),
            None => Ok(StoreConfig::Sqlite(SqliteConfig::new(
                self.data_dir.join("db/state.db"),
            ))),
        }
    }
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let cluster_cidr: rkube_controllers::nodeipam::Ipv4Cidr = args
        .cluster_cidr
        .parse()
        .map_err(|e| anyhow::anyhow!("--cluster-cidr: {e}"))?;
    rkube_controllers::nodeipam::CidrSet::new(cluster_cidr, args.node_cidr_mask_size)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let scheduler_config = match &args.scheduler_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --scheduler-config {}", path.display()))?;
            rkube_scheduler::SchedulerConfig::from_yaml(&text)
                .with_context(|| format!("--scheduler-config {}", path.display()))?
        }
        None => rkube_scheduler::SchedulerConfig::default(),
    };
    let config = args.store_config()?;
    let store = rkube_store::open(config.clone())
        .await
        .with_context(|| format!("opening the datastore ({config:?})"))?;
    let revision = store
        .current_revision()
        .await
        .context("reading the datastore revision")?;
    tracing::info!(revision, "datastore open");
    let mut config = ServerConfig::new(&args.data_dir);
    config.https_port = args.https_listen_port;
    config.bind_address = args.bind_address;
    config.tls_sans = args.tls_san.clone();
    config.service_cidr = args
        .service_cidr
        .parse()
        .map_err(|e| anyhow::anyhow!("--service-cidr: {e}"))?;
    config.token_auth_file = args.token_auth_file.clone();
    let dns_enabled = !args.disable.iter().any(|d| d == "dns");
    if dns_enabled {
        config.cluster_dns = Some(cluster_dns_address(&args.node, &args.service_cidr)?);
    }
    // Agents join with the token in <data-dir>/node-token; its secret stays across starts.
    let node_token = NodeTokenFile::load(&args.data_dir.join("node-token"), |token| {
        JoinToken::parse(token).ok().map(|t| t.secret)
    })?;
    config
        .extra_tokens
        .insert(node_token.secret(), UserInfo::bootstrapper("rkube"));
    config.event_ttl = args.event_ttl;
    // The scheduler's metrics outlive its runs under leader election and are served on the
    // API server's /metrics.
    let scheduler_metrics = std::sync::Arc::new(rkube_scheduler::Metrics::default());
    if !args.disable_scheduler {
        let metrics = scheduler_metrics.clone();
        config
            .metrics
            .push(rkube_apiserver::MetricsSource::new(move || {
                metrics.render()
            }));
    }
    let defaults = rkube_controllers::Settings::default();
    let settings = rkube_controllers::Settings {
        cluster_cidr: Some(cluster_cidr),
        node_cidr_mask_size: args.node_cidr_mask_size,
        node_monitor_grace_period: args.node_monitor_grace_period,
        node_monitor_period: defaults
            .node_monitor_period
            .min(args.node_monitor_grace_period),
        terminated_pod_gc_threshold: args.terminated_pod_gc_threshold,
        service_lb: !args.disable.iter().any(|d| d == "servicelb"),
        ..defaults
    };
    let server = ApiServer::start(config, store)
        .await
        .context("starting the API server")?;
    node_token.store(&JoinToken::format(server.ca_cert(), node_token.secret()))?;
    let (stop_controllers, controllers_stopped) = tokio::sync::watch::channel(false);
    let mut controllers = if args.disable_controllers {
        Vec::new()
    } else {
        let mut manager = rkube_controllers::ControllerManager::new(
            server.client_as(&user_agent("kube-controller-manager")),
            server.ca_cert(),
        )
        .with_signing_key(server.ca_key())
        .with_settings(settings);
        if args.leader_elect {
            manager = manager.with_leader_election(
                rkube_lease::default_identity(),
                rkube_lease::LeaderElectionConfig::default(),
            );
        }
        let mut stopped = controllers_stopped.clone();
        vec![tokio::spawn(manager.run_until(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))]
    };
    if !args.disable_scheduler {
        let scheduler_client = server.client_as(&user_agent("kube-scheduler"));
        let scheduler = rkube_scheduler::Scheduler::new(scheduler_client, scheduler_config)
            .context("--scheduler-config")?
            .with_metrics(scheduler_metrics);
        let mut stopped = controllers_stopped.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        if args.leader_elect {
            // Only the holder of kube-system/kube-scheduler schedules, as upstream.
            let elector = rkube_lease::LeaderElector::new(
                server.client(),
                "kube-system",
                "kube-scheduler",
                rkube_lease::default_identity(),
                rkube_lease::LeaderElectionConfig::default(),
            );
            controllers.push(tokio::spawn(async move {
                elector
                    .run_until(move || scheduler.clone().run(), shutdown)
                    .await;
            }));
        } else {
            controllers.push(tokio::spawn(async move {
                tokio::select! {
                    () = scheduler.run() => {}
                    () = shutdown => {}
                }
            }));
        }
    }
    tracing::info!(
        address = %server.local_addr(),
        kubeconfig = %server.kubeconfig_path().display(),
        "API server ready"
    );
    let (stop_agent, agent_stopped) = tokio::sync::watch::channel(false);
    let agent = if args.disable_agent {
        None
    } else {
        let mut config = agent_config(
            &args.data_dir,
            &args.node,
            true,
            server.ca_cert().to_owned(),
        )?;
        if dns_enabled {
            config.cluster_dns =
                Some(cluster_dns_address(&args.node, &args.service_cidr)?.to_string());
        }
        let client = server.client_as(&user_agent("kubelet"));
        let proxy_client = server.client_as(&user_agent("kube-proxy"));
        let network = NodeNetwork {
            cluster_cidr: args.cluster_cidr.clone(),
            service_cidr: args.service_cidr.clone(),
            dns: dns_enabled,
            metrics_port: args.node.proxy_metrics_port,
            nodeport_addresses: args.node.nodeport_addresses.clone(),
        };
        let stopped = agent_stopped.clone();
        Some(tokio::spawn(async move {
            let stop = async move {
                let mut stopped = stopped;
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = run_node(client, proxy_client, config, network, stop).await {
                tracing::error!(error = format!("{e:#}"), "the node agent stopped");
            }
        }))
    };
    shutdown_signal().await?;
    tracing::info!("shutting down");
    let _ = stop_agent.send(true);
    if let Some(agent) = agent {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(15), agent).await;
    }
    // Stop the controllers and give up the leader Lease before the server goes away, so that
    // another server takes over at once.
    let _ = stop_controllers.send(true);
    for task in controllers {
        if tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .is_err()
        {
            tracing::warn!("the controllers did not stop within 5 s");
        }
    }
    server.shutdown();
    Ok(())
}

/// The address of the route to the outside world (no packet is sent: connecting a UDP socket
/// only picks the route), else the first non-loopback address, else loopback.
fn default_node_ip() -> String {
    let routed = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified());
    routed
        .or_else(|| rkube_apiserver::host_addresses().into_iter().next())
        .map_or_else(|| "127.0.0.1".to_owned(), |ip| ip.to_string())
}

fn agent_config(
    data_dir: &std::path::Path,
    node: &NodeArgs,
    control_plane: bool,
    client_ca: String,
) -> anyhow::Result<rkube_kubelet::agent::AgentConfig> {
    let node_name = match &node.node_name {
        Some(name) => name.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_lowercase())
            .context("reading the host name (or give --node-name)")?,
    };
    let image_gc = rkube_kubelet::imagegc::Policy {
        high: node.image_gc_high_threshold,
        low: node.image_gc_low_threshold,
        min_age: node.minimum_image_ttl_duration,
    };
    image_gc.validate().map_err(|e| anyhow::anyhow!(e))?;
    let mut labels = std::collections::BTreeMap::new();
    if control_plane {
        labels.insert(
            "node-role.kubernetes.io/control-plane".to_owned(),
            "true".to_owned(),
        );
    }
    for label in &node.node_labels {
        let (k, v) = label
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--node-label {label:?}: want key=value"))?;
        labels.insert(k.to_owned(), v.to_owned());
    }
    Ok(rkube_kubelet::agent::AgentConfig {
        data_dir: data_dir.to_path_buf(),
        node_name,
        node_ip: node.node_ip.clone().unwrap_or_else(default_node_ip),
        container_runtime_endpoint: node.container_runtime_endpoint.clone(),
        registries_config: node.registries_config.clone(),
        cgroup_root: node.cgroup_root.clone(),
        bridge: node.pod_bridge.clone(),
        cluster_cidr: None,
        cni_bin_dir: node.cni_bin_dir.clone(),
        cluster_dns: node.cluster_dns.clone(),
        cluster_domain: node.cluster_domain.clone(),
        labels,
        kubelet_port: node.kubelet_port,
        client_ca,
        eviction_hard: rkube_kubelet::eviction::parse_thresholds(&node.eviction_hard)
            .map_err(|e| anyhow::anyhow!("--eviction-hard: {e}"))?,
        eviction_pressure_transition: node.eviction_pressure_transition_period,
        image_gc,
    })
}

/// Waits for SIGTERM or SIGINT.
async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

async fn agent(args: AgentCliArgs) -> anyhow::Result<()> {
    let mut config = agent_config(&args.data_dir, &args.node, false, String::new())?;
    let client =
        rkube_kubelet::join::join(&args.server, &args.token, &args.data_dir, &config.node_name)
            .await
            .with_context(|| format!("joining {}", args.server))?;
    config.client_ca = std::fs::read_to_string(args.data_dir.join("agent/server-ca.crt"))
        .context("reading the cluster CA")?;
    let stop = async {
        let _ = shutdown_signal().await;
    };
    config.cluster_dns = Some(cluster_dns_address(&args.node, &args.service_cidr)?.to_string());
    let network = NodeNetwork {
        cluster_cidr: args.cluster_cidr,
        service_cidr: args.service_cidr,
        dns: true,
        metrics_port: args.node.proxy_metrics_port,
        nodeport_addresses: args.node.nodeport_addresses.clone(),
    };
    run_node(client.clone(), client, config, network, stop).await
}

/// A duration as `parse_duration` takes it, or milliseconds: `200ms`.
fn parse_delay(text: &str) -> Result<std::time::Duration, String> {
    match text.strip_suffix("ms") {
        Some(ms) => ms
            .parse()
            .map(std::time::Duration::from_millis)
            .map_err(|_| format!("{text:?} is not a number of milliseconds")),
        None => parse_duration(text),
    }
}

async fn sim(args: SimArgs) -> anyhow::Result<()> {
    let mut labels = std::collections::BTreeMap::new();
    for label in &args.node_labels {
        let (k, v) = label
            .split_once('=')
            .with_context(|| format!("--node-label {label:?} is not key=value"))?;
        labels.insert(k.to_owned(), v.to_owned());
    }
    let temporary = match &args.state_dir {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("creating the state directory")?),
    };
    let state_dir = args
        .state_dir
        .clone()
        .or_else(|| temporary.as_ref().map(|t| t.path().to_owned()))
        .context("the state directory")?;
    let mut config = sim_client_config(&args, &state_dir).await?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&user_agent("kubelet"))?,
    ));
    let client = kube::Client::try_from(config).context("the API client")?;
    let config = rkube_kubelet::hollow::SimConfig {
        nodes: args.nodes,
        name_prefix: args.name_prefix,
        cpus: args.node_cpus,
        memory: args.node_memory_gib << 30,
        pods_per_node: args.pods_per_node,
        startup_delay: args.startup_delay,
        labels,
        state_dir,
        keep_nodes: args.keep_nodes,
    };
    let stop = async {
        let _ = shutdown_signal().await;
    };
    rkube_kubelet::hollow::run(client, config, stop).await
}

/// How `rkube sim` reaches the server: a join token, a bearer token, or a kubeconfig.
async fn sim_client_config(
    args: &SimArgs,
    state_dir: &std::path::Path,
) -> anyhow::Result<kube::Config> {
    if let (Some(token), Some(server)) = (&args.token, &args.server) {
        if JoinToken::parse(token).is_ok() {
            let identity = format!("{}sim", args.name_prefix);
            return rkube_kubelet::join::join_config(server, token, state_dir, &identity)
                .await
                .with_context(|| format!("joining {server}"));
        }
        let path = args.certificate_authority.as_ref().context(
            "--token is not a join token (K10...): give the cluster CA with --certificate-authority",
        )?;
        let ca =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return rkube_kubelet::join::config(server, Some(&ca), Some(token.trim()), None);
    }
    let path = args
        .kubeconfig
        .as_ref()
        .context("give --server and --token, or --kubeconfig")?;
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .with_context(|| format!("loading {}", path.display()))?;
    if let Some(server) = &args.server {
        config.cluster_url = server.parse().context("the server URL")?;
    }
    Ok(config)
}

/// The cluster's address ranges, as the node's networking needs them.
struct NodeNetwork {
    cluster_cidr: String,
    service_cidr: String,
    /// Whether the node serves cluster DNS.
    dns: bool,
    /// The loopback port of the proxy's and DNS's metrics.
    metrics_port: u16,
    /// `--nodeport-addresses`.
    nodeport_addresses: Vec<String>,
}

/// `--cluster-dns`, or the tenth address of the Service range.
fn cluster_dns_address(node: &NodeArgs, service_cidr: &str) -> anyhow::Result<std::net::Ipv4Addr> {
    if let Some(address) = &node.cluster_dns {
        return address
            .parse()
            .map_err(|e| anyhow::anyhow!("--cluster-dns {address}: {e}"));
    }
    let base = service_cidr
        .split_once('/')
        .and_then(|(base, _)| base.parse::<std::net::Ipv4Addr>().ok())
        .ok_or_else(|| anyhow::anyhow!("--service-cidr {service_cidr}: want an IPv4 range"))?;
    Ok(std::net::Ipv4Addr::from(u32::from(base) + 10))
}

/// Runs a node: the kubelet, the service proxy and the routes to other nodes' pods, until
/// `stop` resolves.
async fn run_node(
    client: kube::Client,
    proxy_client: kube::Client,
    config: rkube_kubelet::agent::AgentConfig,
    network: NodeNetwork,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut config = config;
    config.cluster_cidr = Some(network.cluster_cidr.clone());
    let (stop_all, stopped) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let dataplane = rkube_proxy::dataplane::Nft::default();
    let mut tasks = Vec::new();
    let proxy_metrics = std::sync::Arc::new(rkube_proxy::Metrics::default());
    let dns_metrics: std::sync::Arc<std::sync::OnceLock<rkube_dns::Metrics>> =
        std::sync::Arc::default();
    {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], network.metrics_port));
        let (proxy_metrics, dns_metrics) = (proxy_metrics.clone(), dns_metrics.clone());
        let render: rkube_proxy::metrics_http::Render = std::sync::Arc::new(move || {
            let mut text = proxy_metrics.render();
            if let Some(dns) = dns_metrics.get() {
                text.push_str(&dns.render());
            }
            text
        });
        match rkube_proxy::metrics_http::bind(address).await {
            Ok(listener) => tasks.push(tokio::spawn(rkube_proxy::metrics_http::serve(
                listener,
                render,
                wait(stopped.clone()),
            ))),
            Err(e) => tracing::warn!(%address, error = %e, "the proxy's metrics are not served"),
        }
    }
    if dataplane.available() {
        if network
            .nodeport_addresses
            .iter()
            .any(|cidr| cidr.starts_with("127."))
        {
            // DNAT of traffic to loopback to a pod needs the kernel to route 127/8 off-host.
            match std::fs::write("/proc/sys/net/ipv4/conf/all/route_localnet", "1") {
                Ok(()) => tracing::info!("route_localnet set: node ports answer on loopback"),
                Err(e) => tracing::warn!(error = %e, "node ports cannot answer on loopback"),
            }
        }
        let proxy_config = rkube_proxy::ProxyConfig {
            node_name: config.node_name.clone(),
            rules: rkube_proxy::rules::RulesConfig {
                table: rkube_kubelet::cni::proxy_table(&config.bridge),
                cluster_cidr: Some(network.cluster_cidr.clone()),
                service_cidrs: vec![network.service_cidr.clone()],
                nodeport_addresses: network.nodeport_addresses.clone(),
            },
            full_sync_period: std::time::Duration::from_secs(3600),
            min_sync_period: std::time::Duration::from_millis(20),
        };
        let mut netpol =
            rkube_proxy::netpol::NetpolConfig::for_bridge(&config.node_name, &config.bridge);
        netpol.table = rkube_kubelet::cni::netpol_table(&config.bridge);
        tasks.push(tokio::spawn(rkube_proxy::netpol::run(
            proxy_client.clone(),
            netpol,
            std::sync::Arc::new(rkube_proxy::dataplane::Nft::default()),
            wait(stopped.clone()),
        )));
        tasks.push(tokio::spawn(rkube_proxy::run(
            proxy_client.clone(),
            proxy_config,
            std::sync::Arc::new(dataplane),
            proxy_metrics,
            wait(stopped.clone()),
        )));
    } else {
        tracing::warn!("nft (Debian's nftables) is missing: Services are not proxied on this node");
    }
    if network.dns {
        let dns_config = rkube_dns::node::NodeDnsConfig {
            node_name: config.node_name.clone(),
            bridge: config.bridge.clone(),
            cluster_domain: config.cluster_domain.clone(),
        };
        let client = proxy_client.clone();
        let stop = wait(stopped.clone());
        tasks.push(tokio::spawn(async move {
            let publish = move |m| {
                let _ = dns_metrics.set(m);
            };
            if let Err(e) = rkube_dns::node::run_on_node(client, dns_config, publish, stop).await {
                tracing::error!(error = format!("{e:#}"), "cluster DNS stopped");
            }
        }));
    }
    tasks.push(tokio::spawn(rkube_proxy::routes::run(
        proxy_client,
        config.node_name.clone(),
        network.cluster_cidr,
        rkube_proxy::routes::IpRoute,
        rkube_apiserver::host_addresses,
        wait(stopped.clone()),
    )));
    let agent = rkube_kubelet::agent::run(client, config, wait(stopped));
    tokio::pin!(agent);
    let result = tokio::select! {
        result = &mut agent => result,
        () = stop => {
            let _ = stop_all.send(true);
            agent.await
        }
    };
    let _ = stop_all.send(true);
    for task in tasks {
        let _ = task.await;
    }
    result
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rkube_apiserver::memory::disable_transparent_huge_pages();
    // Logs go to stderr, as upstream's components write theirs; stdout stays for output.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Server(args) => server(args).await,
        Command::Agent(args) => agent(args).await,
        Command::Killall(args) => rkube_kubelet::killall::run(&args.data_dir.join("agent")).await,
        Command::Sim(args) => sim(args).await,
    }
}
