//! The CRI v1 client over containerd's unix socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use tonic::transport::{Channel, Endpoint};

use crate::runtime::{ContainerRuntime, Result, RuntimeError};

/// The generated CRI v1 types and clients.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
}

use v1::image_service_client::ImageServiceClient;
use v1::runtime_service_client::RuntimeServiceClient;

fn uid_selector(uid: &str) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([(crate::observed::LABEL_POD_UID.to_owned(), uid.to_owned())])
}

/// Messages from a runtime can be large (image lists, stats of many containers).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// A CRI runtime reached over a unix socket.
#[derive(Clone)]
pub struct CriRuntime {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    socket: PathBuf,
}

impl CriRuntime {
    /// Connects to the runtime's socket (`unix:///run/containerd/containerd.sock` or a path).
    pub async fn connect(endpoint: &str) -> Result<Self> {
        let socket = PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint));
        let path = socket.clone();
        // The URI is required by tonic but unused: the connector dials the socket.
        let channel = Endpoint::from_static("http://localhost")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|e| RuntimeError::other(format!("connecting to {}: {e}", socket.display())))?;
        Ok(Self {
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE),
            images: ImageServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE),
            socket,
        })
    }

    /// The socket this client dials.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

#[async_trait]
impl ContainerRuntime for CriRuntime {
    async fn version(&self) -> Result<v1::VersionResponse> {
        let request = v1::VersionRequest {
            version: "v1".into(),
        };
        Ok(self.runtime.clone().version(request).await?.into_inner())
    }

    async fn run_pod_sandbox(&self, config: v1::PodSandboxConfig, handler: &str) -> Result<String> {
        let request = v1::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: handler.to_owned(),
        };
        let response = self.runtime.clone().run_pod_sandbox(request).await?;
        Ok(response.into_inner().pod_sandbox_id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let request = v1::StopPodSandboxRequest {
            pod_sandbox_id: id.to_owned(),
        };
        self.runtime.clone().stop_pod_sandbox(request).await?;
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let request = v1::RemovePodSandboxRequest {
            pod_sandbox_id: id.to_owned(),
        };
        self.runtime.clone().remove_pod_sandbox(request).await?;
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<v1::PodSandboxStatus> {
        let request = v1::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_owned(),
            verbose: false,
        };
        let response = self.runtime.clone().pod_sandbox_status(request).await?;
        response
            .into_inner()
            .status
            .ok_or_else(|| RuntimeError::other(format!("sandbox {id}: no status")))
    }

    async fn list_pod_sandboxes(&self, pod_uid: Option<&str>) -> Result<Vec<v1::PodSandbox>> {
        let request = v1::ListPodSandboxRequest {
            filter: pod_uid.map(|uid| v1::PodSandboxFilter {
                label_selector: uid_selector(uid),
                ..Default::default()
            }),
        };
        Ok(self
            .runtime
            .clone()
            .list_pod_sandbox(request)
            .await?
            .into_inner()
            .items)
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: v1::ContainerConfig,
        sandbox_config: v1::PodSandboxConfig,
    ) -> Result<String> {
        let request = v1::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.to_owned(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let response = self.runtime.clone().create_container(request).await?;
        Ok(response.into_inner().container_id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let request = v1::StartContainerRequest {
            container_id: id.to_owned(),
        };
        self.runtime.clone().start_container(request).await?;
        Ok(())
    }

    async fn stop_container(&self, id: &str, timeout: i64) -> Result<()> {
        let request = v1::StopContainerRequest {
            container_id: id.to_owned(),
            timeout,
        };
        self.runtime.clone().stop_container(request).await?;
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let request = v1::RemoveContainerRequest {
            container_id: id.to_owned(),
        };
        self.runtime.clone().remove_container(request).await?;
        Ok(())
    }

    async fn list_containers(&self, pod_uid: Option<&str>) -> Result<Vec<v1::Container>> {
        let request = v1::ListContainersRequest {
            filter: pod_uid.map(|uid| v1::ContainerFilter {
                label_selector: uid_selector(uid),
                ..Default::default()
            }),
        };
        Ok(self
            .runtime
            .clone()
            .list_containers(request)
            .await?
            .into_inner()
            .containers)
    }

    async fn container_status(&self, id: &str) -> Result<v1::ContainerStatus> {
        let request = v1::ContainerStatusRequest {
            container_id: id.to_owned(),
            verbose: false,
        };
        let response = self.runtime.clone().container_status(request).await?;
        response
            .into_inner()
            .status
            .ok_or_else(|| RuntimeError::other(format!("container {id}: no status")))
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: i64,
    ) -> Result<v1::ExecSyncResponse> {
        let request = v1::ExecSyncRequest {
            container_id: id.to_owned(),
            cmd,
            timeout,
        };
        Ok(self.runtime.clone().exec_sync(request).await?.into_inner())
    }

    async fn exec(&self, request: v1::ExecRequest) -> Result<String> {
        Ok(self.runtime.clone().exec(request).await?.into_inner().url)
    }

    async fn attach(&self, request: v1::AttachRequest) -> Result<String> {
        Ok(self.runtime.clone().attach(request).await?.into_inner().url)
    }

    async fn port_forward(&self, sandbox_id: &str, ports: Vec<i32>) -> Result<String> {
        let request = v1::PortForwardRequest {
            pod_sandbox_id: sandbox_id.to_owned(),
            port: ports,
        };
        Ok(self
            .runtime
            .clone()
            .port_forward(request)
            .await?
            .into_inner()
            .url)
    }

    async fn pull_image(
        &self,
        image: &str,
        auth: Option<v1::AuthConfig>,
        sandbox_config: Option<v1::PodSandboxConfig>,
    ) -> Result<String> {
        let request = v1::PullImageRequest {
            image: Some(v1::ImageSpec {
                image: image.to_owned(),
                ..Default::default()
            }),
            auth,
            sandbox_config,
        };
        Ok(self
            .images
            .clone()
            .pull_image(request)
            .await?
            .into_inner()
            .image_ref)
    }

    async fn image_status(&self, image: &str) -> Result<Option<v1::Image>> {
        let request = v1::ImageStatusRequest {
            image: Some(v1::ImageSpec {
                image: image.to_owned(),
                ..Default::default()
            }),
            verbose: false,
        };
        Ok(self
            .images
            .clone()
            .image_status(request)
            .await?
            .into_inner()
            .image)
    }

    async fn list_images(&self) -> Result<Vec<v1::Image>> {
        let request = v1::ListImagesRequest { filter: None };
        Ok(self
            .images
            .clone()
            .list_images(request)
            .await?
            .into_inner()
            .images)
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        let request = v1::RemoveImageRequest {
            image: Some(v1::ImageSpec {
                image: image.to_owned(),
                ..Default::default()
            }),
        };
        self.images.clone().remove_image(request).await?;
        Ok(())
    }

    async fn list_container_stats(&self) -> Result<Vec<v1::ContainerStats>> {
        let request = v1::ListContainerStatsRequest { filter: None };
        Ok(self
            .runtime
            .clone()
            .list_container_stats(request)
            .await?
            .into_inner()
            .stats)
    }
}
