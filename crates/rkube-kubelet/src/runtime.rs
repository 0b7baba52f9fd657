//! The container runtime boundary: what the kubelet asks of a CRI runtime, as a trait, so the
//! pod-sync logic runs against containerd for real and against a recording fake in tests.

use async_trait::async_trait;

use crate::cri::v1;

/// A failed runtime call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RuntimeError {
    /// Whether the runtime said the thing asked about does not exist.
    pub not_found: bool,
    /// What the runtime said.
    pub message: String,
}

impl RuntimeError {
    /// An error with this message.
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            not_found: false,
            message: message.into(),
        }
    }

    /// A "not found" error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            not_found: true,
            message: message.into(),
        }
    }
}

impl From<tonic::Status> for RuntimeError {
    fn from(status: tonic::Status) -> Self {
        Self {
            not_found: status.code() == tonic::Code::NotFound,
            message: status.message().to_owned(),
        }
    }
}

/// What runtime calls return.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// The CRI v1 calls the kubelet makes, in CRI's own types.
#[async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// A count that moves whenever the runtime's sandboxes or containers change, from a runtime
    /// that can tell (`None`: it cannot, and every relist lists).
    fn changes(&self) -> Option<u64> {
        None
    }
    /// The runtime's name and version.
    async fn version(&self) -> Result<v1::VersionResponse>;
    /// Creates and starts a pod sandbox; returns its id.
    async fn run_pod_sandbox(&self, config: v1::PodSandboxConfig, handler: &str) -> Result<String>;
    /// Stops a sandbox's processes and tears down its network.
    async fn stop_pod_sandbox(&self, id: &str) -> Result<()>;
    /// Removes a stopped sandbox and its containers.
    async fn remove_pod_sandbox(&self, id: &str) -> Result<()>;
    /// A sandbox's status (its network address among it).
    async fn pod_sandbox_status(&self, id: &str) -> Result<v1::PodSandboxStatus>;
    /// Every sandbox, or those of one pod (by its uid label).
    async fn list_pod_sandboxes(&self, pod_uid: Option<&str>) -> Result<Vec<v1::PodSandbox>>;
    /// Creates a container in a sandbox; returns its id.
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: v1::ContainerConfig,
        sandbox_config: v1::PodSandboxConfig,
    ) -> Result<String>;
    /// Starts a created container.
    async fn start_container(&self, id: &str) -> Result<()>;
    /// Stops a container: SIGTERM (or its stop signal), then SIGKILL after `timeout` seconds.
    async fn stop_container(&self, id: &str, timeout: i64) -> Result<()>;
    /// Removes a container.
    async fn remove_container(&self, id: &str) -> Result<()>;
    /// Every container, or those of one pod (by its uid label).
    async fn list_containers(&self, pod_uid: Option<&str>) -> Result<Vec<v1::Container>>;
    /// One container's status.
    async fn container_status(&self, id: &str) -> Result<v1::ContainerStatus>;
    /// Runs a command in a container and waits for it.
    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: i64,
    ) -> Result<v1::ExecSyncResponse>;
    /// Prepares a streaming exec; returns the URL that serves it.
    async fn exec(&self, request: v1::ExecRequest) -> Result<String>;
    /// Prepares a streaming attach; returns the URL that serves it.
    async fn attach(&self, request: v1::AttachRequest) -> Result<String>;
    /// Prepares a streaming port-forward into a sandbox; returns the URL that serves it.
    async fn port_forward(&self, sandbox_id: &str, ports: Vec<i32>) -> Result<String>;
    /// Pulls an image; returns the image reference (its id).
    async fn pull_image(
        &self,
        image: &str,
        auth: Option<v1::AuthConfig>,
        sandbox_config: Option<v1::PodSandboxConfig>,
    ) -> Result<String>;
    /// The image, if present.
    async fn image_status(&self, image: &str) -> Result<Option<v1::Image>>;
    /// Every image.
    async fn list_images(&self) -> Result<Vec<v1::Image>>;
    /// Removes an image.
    async fn remove_image(&self, image: &str) -> Result<()>;
    /// CPU and memory use of every container.
    async fn list_container_stats(&self) -> Result<Vec<v1::ContainerStats>>;
}
