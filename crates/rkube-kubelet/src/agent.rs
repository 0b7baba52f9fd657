//! The node agent assembled: containerd (supervised, or one already running), the sandbox
//! image and air-gap image tarballs imported, registry configuration, then the kubelet.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::containerd::{ContainerdPaths, HostFacts, SANDBOX_IMAGE, Supervisor};
use crate::cri::CriRuntime;
use crate::images::Registries;
use crate::kubelet::{Kubelet, KubeletConfig};
use crate::runtime::ContainerRuntime;

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// `--data-dir`; agent state goes under `<data-dir>/agent`.
    pub data_dir: PathBuf,
    /// The node's name.
    pub node_name: String,
    /// The node's address.
    pub node_ip: String,
    /// A running CRI runtime to use instead of a supervised containerd.
    pub container_runtime_endpoint: Option<String>,
    /// k3s's registries.yaml.
    pub registries_config: Option<PathBuf>,
    /// The cgroup pods go under.
    pub cgroup_root: String,
    /// The pod network bridge's name.
    pub bridge: String,
    /// The cluster's pod range (all nodes' podCIDRs).
    pub cluster_cidr: Option<String>,
    /// Where the CNI plugins are.
    pub cni_bin_dir: PathBuf,
    /// The cluster DNS address, if cluster DNS runs.
    pub cluster_dns: Option<String>,
    /// The cluster domain.
    pub cluster_domain: String,
    /// Extra node labels.
    pub labels: BTreeMap<String, String>,
    /// The kubelet API's port.
    pub kubelet_port: u16,
    /// The cluster CA (PEM): kubelet API callers' certificates must chain to it.
    pub client_ca: String,
    /// Hard eviction thresholds.
    pub eviction_hard: Vec<crate::eviction::Threshold>,
    /// How long a pressure condition holds after its threshold was last met.
    pub eviction_pressure_transition: std::time::Duration,
    /// When unused images are removed.
    pub image_gc: crate::imagegc::Policy,
}

impl AgentConfig {
    /// `<data-dir>/agent`.
    pub fn agent_dir(&self) -> PathBuf {
        self.data_dir.join("agent")
    }
}

/// Imports an image archive (OCI layout or docker save) into containerd's k8s.io namespace.
pub async fn import_archive(socket: &Path, archive: &Path) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args([
            "--namespace",
            "k8s.io",
            "images",
            "import",
            "--all-platforms",
        ])
        .arg(archive)
        .output()
        .await
        .context("running ctr (from the containerd package)")?;
    if !out.status.success() {
        anyhow::bail!(
            "importing {}: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

async fn connect(endpoint: &str) -> anyhow::Result<CriRuntime> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match CriRuntime::connect(endpoint).await {
            Ok(rt) => match rt.version().await {
                Ok(_) => return Ok(rt),
                Err(e) if tokio::time::Instant::now() > deadline => {
                    anyhow::bail!("the container runtime at {endpoint} does not answer: {e}")
                }
                Err(_) => {}
            },
            Err(e) if tokio::time::Instant::now() > deadline => return Err(e.into()),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the agent until `stop` resolves. Containers keep running when it returns.
pub async fn run(
    client: kube::Client,
    config: AgentConfig,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let agent_dir = config.agent_dir();
    std::fs::create_dir_all(&agent_dir)
        .with_context(|| format!("creating {}", agent_dir.display()))?;
    let paths = ContainerdPaths::new(&agent_dir);
    let facts = HostFacts::detect();
    tracing::info!(?facts, "host");
    crate::killall::record(
        &agent_dir,
        &crate::killall::Footprint {
            bridge: config.bridge.clone(),
            cgroup_root: config.cgroup_root.clone(),
            systemd_cgroups: facts.systemd_cgroups,
        },
    )
    .context("recording the agent's footprint")?;
    let registries = match &config.registries_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --registries-config {}", path.display()))?;
            Registries::from_yaml(&text)
                .map_err(|e| anyhow::anyhow!("--registries-config {}: {e}", path.display()))?
        }
        None => Registries::default(),
    };
    registries
        .write(&paths.certs_d())
        .context("writing the registry host configuration")?;
    let (supervisor, endpoint) = match &config.container_runtime_endpoint {
        Some(endpoint) => (None, endpoint.clone()),
        None => {
            let supervisor =
                Supervisor::start(paths.clone(), &facts, &config.cni_bin_dir, &registries)
                    .await
                    .context("starting containerd")?;
            (Some(supervisor), paths.socket().display().to_string())
        }
    };
    let runtime = connect(&endpoint).await?;
    let socket = runtime.socket().to_path_buf();
    // The sandbox image, then any image tarballs for air-gapped installs.
    if runtime
        .image_status(SANDBOX_IMAGE)
        .await
        .ok()
        .flatten()
        .is_none()
    {
        match crate::pause::pause_image_archive(SANDBOX_IMAGE) {
            Some(archive) => {
                let file = agent_dir.join("pause-image.tar");
                std::fs::write(&file, archive).context("writing the sandbox image")?;
                import_archive(&socket, &file).await?;
            }
            None => tracing::warn!(
                "no sandbox image can be built for this architecture; containerd will pull its own"
            ),
        }
    }
    let images_dir = agent_dir.join("images");
    if let Ok(entries) = std::fs::read_dir(&images_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.display().to_string();
            if name.ends_with(".tar") {
                match import_archive(&socket, &path).await {
                    Ok(()) => tracing::info!(archive = %name, "imported images"),
                    Err(e) => tracing::warn!(error = %e, "importing images"),
                }
            }
        }
    }
    let kubelet_config = KubeletConfig {
        node_name: config.node_name.clone(),
        node_ip: config.node_ip.clone(),
        agent_dir: agent_dir.clone(),
        labels: config.labels.clone(),
        cluster_dns: config.cluster_dns.clone(),
        cluster_domain: config.cluster_domain.clone(),
        cgroup_root: config.cgroup_root.clone(),
        systemd_cgroups: facts.systemd_cgroups,
        bridge: config.bridge.clone(),
        cluster_cidr: config.cluster_cidr.clone(),
        cni_conf_dir: paths.cni_conf_dir(),
        runtime_endpoint: endpoint,
        kubelet_port: config.kubelet_port,
        client_ca: config.client_ca.clone(),
        // A supervised containerd has the credentials per host in its configuration; a
        // runtime of the host's own gets them with each pull.
        registries: if supervisor.is_some() {
            Registries::default()
        } else {
            registries
        },
        eviction_hard: config.eviction_hard.clone(),
        eviction_pressure_transition: config.eviction_pressure_transition,
        image_gc: config.image_gc,
        pod_cgroups: true,
        sync_frequency: crate::worker::RESYNC,
    };
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(runtime);
    let kubelet = Kubelet::new(client, kubelet_config, runtime);
    let result = kubelet.run(stop).await;
    if let Some(supervisor) = supervisor {
        supervisor.shutdown().await;
    }
    result
}
