//! Starts an API server for a test: on a fresh sqlite store in a temporary directory,
//! listening on a free loopback port, with a client over the in-process transport.

// This crate is test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod fake_kubelet;
pub mod real_crds;
pub mod wardle;

use std::sync::Arc;

use rkube_apiserver::{ApiServer, ServerConfig};
use rkube_store::{SqliteConfig, SqliteStore, Store};

/// A running server and what keeps it alive.
pub struct TestServer {
    /// The server.
    pub server: ApiServer,
    /// An in-process client acting as an administrator.
    pub client: kube::Client,
    /// The data directory.
    pub dir: tempfile::TempDir,
}

/// Opens the sqlite store of a data directory.
pub async fn open_store(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(SqliteConfig::new(dir.join("db/state.db")))
            .await
            .unwrap(),
    )
}

/// The configuration tests run a server with, in `dir`: a free loopback port, and the
/// ServiceAccount admission plugin off, as upstream's integration test servers run
/// (`--disable-admission-plugins=ServiceAccount`), since most tests create pods without the
/// controller that gives each namespace its `default` account.
pub fn test_config(dir: &std::path::Path) -> ServerConfig {
    let mut config = ServerConfig::new(dir);
    config.https_port = 0;
    config.bind_address = [127, 0, 0, 1].into();
    config.disable_admission_plugins = vec!["ServiceAccount".into()];
    config
}

/// Starts a server in `dir`.
pub async fn start_in(dir: &std::path::Path) -> ApiServer {
    ApiServer::start(test_config(dir), open_store(dir).await)
        .await
        .unwrap()
}

/// Starts a server in a fresh directory.
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// Starts a server in a fresh directory, with the test configuration changed by `configure`.
pub async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    configure(&mut config);
    let server = ApiServer::start(config, open_store(dir.path()).await)
        .await
        .unwrap();
    let client = server.client();
    TestServer {
        server,
        client,
        dir,
    }
}

/// The API error inside a kube error, if it is one.
pub fn api_error(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A TLS acceptor for a test's HTTPS server, its certificate (for `names`) issued by a CA of
/// its own named `ca_name`; and that CA's PEM, for the caBundle of whoever calls the server.
pub fn tls_acceptor(ca_name: &str, names: &[&str]) -> (tokio_rustls::TlsAcceptor, String) {
    tls_server(ca_name, names, None)
}

/// An HTTPS server on 127.0.0.1 (certificate for `names` from its own CA `ca_name`) that
/// answers every JSON request body with `answer`'s JSON, as webhooks do: its address and the
/// CA's PEM.
pub async fn json_server(
    ca_name: &str,
    names: &[&str],
    answer: impl Fn(&serde_json::Value) -> serde_json::Value + Send + Sync + 'static,
) -> (std::net::SocketAddr, String) {
    use http_body_util::BodyExt;
    let answer = Arc::new(answer);
    let (acceptor, ca_pem) = tls_acceptor(ca_name, names);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, answer) = (acceptor.clone(), answer.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let answer = answer.clone();
                        async move {
                            let body = request.into_body().collect().await?.to_bytes();
                            let question: serde_json::Value =
                                serde_json::from_slice(&body).unwrap();
                            let body = serde_json::to_vec(&answer(&question)).unwrap();
                            Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(body),
                            )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, ca_pem)
}

/// [`tls_acceptor`] for a server that requires a client certificate signed by `client_ca`
/// (PEM).
pub fn tls_acceptor_requiring_clients(
    ca_name: &str,
    names: &[&str],
    client_ca: &str,
) -> (tokio_rustls::TlsAcceptor, String) {
    tls_server(ca_name, names, Some(client_ca))
}

fn tls_server(
    ca_name: &str,
    names: &[&str],
    client_ca: Option<&str>,
) -> (tokio_rustls::TlsAcceptor, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem())
}
