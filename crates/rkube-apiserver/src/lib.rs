//! The rkube API server: the Kubernetes REST API over the rkube store, served over HTTPS to
//! kubectl and every other client, and in-process to components sharing the server's process.

/// The `serde::de::Visitor` methods of a visitor that looks only at the shape of a document
/// (maps and sequences) and passes over its scalars.
macro_rules! ignore_scalars {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    };
}

mod admission;
mod aggregator;
mod alloc;
mod app;
pub mod auth;
mod authn;
mod bootstrap;
mod cache;
pub mod certs;
mod componentstatus;
mod crd;
mod crd_conversion;
mod crd_rule_cost;
mod crd_rules;
mod csr;
mod decode;
mod delete;
mod discovery;
mod encode;
mod endpoints;
mod filter;
mod flowcontrol;
mod gnostic;
mod limitranger;
pub mod memory;
pub mod nodeproxy;
mod objects;
mod openapi;
mod openapi_v2;
mod patch;
mod pod_strategy;
mod policy;
mod priority;
mod quota;
pub mod request;
pub mod request_metrics;
pub mod requestheader;
mod rest;
mod reviews;
mod runtimeclass;
mod satokens;
mod scale;
mod serve;
mod served;
mod service_strategy;
mod serviceaccount;
mod status;
mod status_strategy;
mod subresources;
mod tables;
mod warnings;
mod watch;
mod webhook;
mod yaml_keys;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

pub use alloc::Ipv4Cidr;
pub use app::{App, AppConfig, MetricsSource};
use auth::{AllowAuthenticated, TokenAuthenticator};
pub use authn::Caller;
pub use cache::WatchCacheConfig;
use rkube_store::Store;
pub use serve::host_addresses;

/// How to run the API server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where certificates and the admin kubeconfig are kept.
    pub data_dir: PathBuf,
    /// The address to listen on.
    pub bind_address: IpAddr,
    /// The HTTPS port (0: any free port).
    pub https_port: u16,
    /// Extra names and addresses for the serving certificate.
    pub tls_sans: Vec<String>,
    /// The Service cluster IP range.
    pub service_cidr: Ipv4Cidr,
    /// Static bearer tokens, in upstream's CSV format.
    pub token_auth_file: Option<PathBuf>,
    /// Bearer tokens the embedding program accepts besides the token file's (the node join
    /// secret: see [`auth::NodeTokenFile`]).
    pub extra_tokens: TokenAuthenticator,
    /// How long Events live after their last write (upstream's `--event-ttl`).
    pub event_ttl: std::time::Duration,
    /// How the watch cache behaves.
    pub watch_cache: WatchCacheConfig,
    /// What `/metrics` serves (e.g. the scheduler's registry).
    pub metrics: Vec<MetricsSource>,
    /// Admission plugins turned off, by upstream name (upstream's
    /// `--disable-admission-plugins`; today `Priority` and `ServiceAccount` can be).
    pub disable_admission_plugins: Vec<String>,
    /// The cluster DNS address: `kube-system/kube-dns` is created with it (none by default).
    pub cluster_dns: Option<std::net::Ipv4Addr>,
    /// How often the backends of remote APIServices are checked at least (besides whenever
    /// APIServices, Services or EndpointSlices change).
    pub api_service_resync: std::time::Duration,
}

impl ServerConfig {
    /// The defaults for a server keeping its files under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            bind_address: IpAddr::from([0, 0, 0, 0]),
            https_port: 6443,
            tls_sans: Vec::new(),
            service_cidr: Ipv4Cidr::default_services(),
            token_auth_file: None,
            extra_tokens: TokenAuthenticator::default(),
            event_ttl: std::time::Duration::from_secs(3600),
            watch_cache: WatchCacheConfig::default(),
            metrics: Vec::new(),
            disable_admission_plugins: Vec::new(),
            cluster_dns: None,
            api_service_resync: std::time::Duration::from_secs(10),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Certificates could not be made or read.
    #[error("certificates: {0}")]
    Certs(#[from] certs::CertError),
    /// The token file is bad.
    #[error(transparent)]
    Tokens(#[from] auth::TokenFileError),
    /// The listener or TLS setup failed.
    #[error("{what}: {message}")]
    Serve {
        /// What was being set up.
        what: String,
        /// What failed.
        message: String,
    },
    /// The initial objects could not be written.
    #[error("creating the initial objects: {0}")]
    Bootstrap(rkube_api::ApiError),
}

/// The API server's client certificate for kubelets, made once under `dir`.
fn kubelet_tls(
    dir: &std::path::Path,
    certs: &certs::ClusterCerts,
) -> Result<nodeproxy::KubeletTls, StartError> {
    let (cert_path, key_path) = (
        dir.join("kubelet-client.crt"),
        dir.join("kubelet-client.key"),
    );
    let (cert, key) = match (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        (Ok(c), Ok(k)) => (c, k),
        _ => {
            let (c, k) = certs::client_cert(
                &certs.ca_cert,
                &certs.ca_key,
                "kube-apiserver-kubelet-client",
                &["system:masters"],
            )?;
            certs::write_private(&key_path, &k)?;
            std::fs::write(&cert_path, &c).map_err(|e| StartError::Serve {
                what: format!("writing {}", cert_path.display()),
                message: e.to_string(),
            })?;
            (c, k)
        }
    };
    nodeproxy::KubeletTls::new(&cert, &key).map_err(|message| StartError::Serve {
        what: "loading the kubelet client certificate".into(),
        message,
    })
}

/// A running API server.
pub struct ApiServer {
    app: Arc<App>,
    local_addr: SocketAddr,
    kubeconfig: PathBuf,
    ca_cert: String,
    ca_key: String,
    accept_task: tokio::task::JoinHandle<()>,
    cache_task: tokio::task::JoinHandle<()>,
    definitions_task: tokio::task::JoinHandle<()>,
    api_services_task: tokio::task::JoinHandle<()>,
    remote_api_services_task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    /// Starts serving on `store`: makes or loads certificates, creates the initial objects,
    /// listens, writes `<data-dir>/kubeconfig.yaml`, and reports ready.
    pub async fn start(config: ServerConfig, store: Arc<dyn Store>) -> Result<Self, StartError> {
        let host_ips = serve::host_addresses();
        let mut sans = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "kubernetes".to_owned(),
            "kubernetes.default".to_owned(),
            "kubernetes.default.svc".to_owned(),
            "kubernetes.default.svc.cluster.local".to_owned(),
            config.service_cidr.nth(1).to_string(),
        ];
        sans.extend(host_ips.iter().map(ToString::to_string));
        sans.extend(config.tls_sans.iter().cloned());
        sans.dedup();
        let certs = certs::ensure(&config.data_dir.join("tls"), &sans)?;
        let front_proxy = certs::ensure_front_proxy(&config.data_dir.join("tls"))?;
        let front_proxy =
            requestheader::FrontProxy::new(&front_proxy).map_err(|message| StartError::Serve {
                what: "loading the front-proxy certificates".into(),
                message,
            })?;
        let mut tokens = match &config.token_auth_file {
            Some(path) => TokenAuthenticator::from_file(path)?,
            None => TokenAuthenticator::default(),
        };
        tokens.extend(config.extra_tokens.clone());
        let listener = tokio::net::TcpListener::bind((config.bind_address, config.https_port))
            .await
            .map_err(|e| StartError::Serve {
                what: format!("listening on {}:{}", config.bind_address, config.https_port),
                message: e.to_string(),
            })?;
        let local_addr = listener.local_addr().map_err(|e| StartError::Serve {
            what: "reading the listen address".into(),
            message: e.to_string(),
        })?;
        let advertise_ip = host_ips
            .first()
            .copied()
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let app_config = AppConfig {
            advertise_address: format!("{advertise_ip}:{}", local_addr.port()),
            service_cidr: config.service_cidr,
            watch_cache: config.watch_cache.clone(),
            metrics: config.metrics.clone(),
            disable_admission_plugins: config.disable_admission_plugins.clone(),
            kubelet_tls: Some(kubelet_tls(&config.data_dir.join("tls"), &certs)?),
            cluster_dns: config.cluster_dns,
            front_proxy: Some(front_proxy),
        };
        let app = Arc::new(App::new(
            objects::Objects::new(store, config.event_ttl),
            app_config,
            tokens,
            satokens::TokenIssuer::load_or_create(&config.data_dir.join("tls"))?,
            Arc::new(AllowAuthenticated),
        ));
        let cache_task = app.start_watch_cache();
        // A small store loads in milliseconds: wait for it briefly so the first reads are
        // already served from the cache, without holding up readiness on a large one.
        let loading = std::time::Instant::now();
        while !app.watch_cache_ready() && loading.elapsed() < std::time::Duration::from_millis(300)
        {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        bootstrap::run(&app, advertise_ip, local_addr.port())
            .await
            .map_err(StartError::Bootstrap)?;
        app.publish_authentication(&certs.ca_cert)
            .await
            .map_err(StartError::Bootstrap)?;
        let registered = rkube_api::registry::custom_generation();
        app.register_local_api_services(false)
            .await
            .map_err(StartError::Bootstrap)?;
        let definitions_task = tokio::spawn(app.clone().run_definitions());
        let api_services_task = tokio::spawn(app.clone().run_local_api_services(registered));
        let remote_api_services_task = tokio::spawn(
            app.clone()
                .run_remote_api_services(config.api_service_resync),
        );
        let acceptor = serve::tls_acceptor(&certs, app.config.front_proxy.as_ref())?;
        let accept_task = tokio::spawn(serve::accept_loop(listener, acceptor, app.clone()));
        let kubeconfig = config.data_dir.join("kubeconfig.yaml");
        let server_url = format!("https://127.0.0.1:{}", local_addr.port());
        certs::write_kubeconfig(&kubeconfig, &certs::admin_kubeconfig(&certs, &server_url))?;
        app.set_ready();
        Ok(Self {
            app,
            local_addr,
            kubeconfig,
            ca_cert: certs.ca_cert.clone(),
            ca_key: certs.ca_key.clone(),
            accept_task,
            cache_task,
            definitions_task,
            api_services_task,
            remote_api_services_task,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The cluster CA certificate (PEM), which clients use to trust the server.
    pub fn ca_cert(&self) -> &str {
        &self.ca_cert
    }

    /// The cluster CA's private key (PEM), for the controller manager's certificate signer.
    pub fn ca_key(&self) -> &str {
        &self.ca_key
    }

    /// The admin kubeconfig.
    pub fn kubeconfig_path(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// A client that reaches this server in process (no socket, no TLS), as a component
    /// sharing its process would use it. It acts as `system:apiserver` (system:masters).
    pub fn client(&self) -> kube::Client {
        serve::in_process_client(self.app.clone())
    }

    /// An in-process client that identifies as `user_agent` (its writes' field manager is
    /// the part before the first `/`).
    pub fn client_as(&self, user_agent: &str) -> kube::Client {
        serve::in_process_client_as(self.app.clone(), Some(user_agent))
    }

    /// Whether the watch cache has loaded and serves reads.
    pub fn watch_cache_ready(&self) -> bool {
        self.app.watch_cache_ready()
    }

    /// Stops accepting connections and feeding the watch cache.
    pub fn shutdown(self) {
        self.accept_task.abort();
        self.cache_task.abort();
        self.definitions_task.abort();
        self.api_services_task.abort();
        self.remote_api_services_task.abort();
    }
}
