//! Getting requests to the handler: HTTPS with optional client certificates, and the
//! in-process transport for components in the same process.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::StartError;
use crate::app::App;
use crate::auth::user_from_certificate;
use crate::authn::Caller;
use crate::certs::ClusterCerts;
use crate::requestheader::FrontProxy;

fn serve_err(what: &str) -> impl Fn(String) -> StartError + '_ {
    move |message| StartError::Serve {
        what: what.to_owned(),
        message,
    }
}

/// TLS with the serving certificate; client certificates signed by the cluster CA (or the
/// request-header CA of `front_proxy`) are verified when presented, and not required (tokens
/// work too).
pub fn tls_acceptor(
    certs: &ClusterCerts,
    front_proxy: Option<&FrontProxy>,
) -> Result<TlsAcceptor, StartError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let err = serve_err("setting up TLS");
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(certs.server_cert.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(certs.server_key.as_bytes())
        .map_err(|e| err(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(certs.ca_cert.as_bytes()) {
        roots
            .add(ca.map_err(|e| err(e.to_string()))?)
            .map_err(|e| err(e.to_string()))?;
    }
    if let Some(ca) = front_proxy.and_then(FrontProxy::ca_der) {
        roots.add(ca).map_err(|e| err(e.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| err(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| err(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts TLS connections until aborted.
pub async fn accept_loop(listener: tokio::net::TcpListener, acceptor: TlsAcceptor, app: Arc<App>) {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(error = %err, "accepting a connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(err) => {
                    tracing::debug!(error = %err, "TLS handshake failed");
                    return;
                }
            };
            let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
            let proxy_name = leaf.and_then(|c| {
                app.config
                    .front_proxy
                    .as_ref()
                    .and_then(|p| p.signed_name(c))
            });
            let caller = match proxy_name {
                Some(name) => Caller::FrontProxy(name),
                None => Caller::Tls(leaf.and_then(|c| user_from_certificate(c))),
            };
            let service = hyper::service::service_fn(move |request| {
                let (app, caller) = (app.clone(), caller.clone());
                async move { Ok::<_, Infallible>(app.serve(request, caller).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(err) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(error = %err, "connection ended");
            }
        });
    }
}

/// A kube client whose requests go straight to the handler.
pub fn in_process_client(app: Arc<App>) -> kube::Client {
    in_process_client_as(app, None)
}

/// [`in_process_client`] sending `user_agent` (when the request has none), which names the
/// component as the field manager of its writes (`kube-scheduler/…` writes as
/// `kube-scheduler`), as upstream's components name themselves.
pub fn in_process_client_as(app: Arc<App>, user_agent: Option<&str>) -> kube::Client {
    let agent = user_agent.and_then(|a| http::HeaderValue::from_str(a).ok());
    let service = tower::service_fn(move |mut request: Request<kube::client::Body>| {
        let app = app.clone();
        if let Some(agent) = &agent {
            request
                .headers_mut()
                .entry(http::header::USER_AGENT)
                .or_insert_with(|| agent.clone());
        }
        async move { Ok::<_, Infallible>(app.serve(request, Caller::Loopback).await) }
    });
    kube::Client::new(service, "default")
}

/// This host's IPv4 addresses other than loopback, read from the kernel's routing table.
pub fn host_addresses() -> Vec<IpAddr> {
    let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") else {
        return Vec::new();
    };
    let mut addresses: Vec<IpAddr> = Vec::new();
    let mut last: Option<IpAddr> = None;
    for line in trie.lines() {
        let line = line.trim_start_matches([' ', '|', '+', '-']);
        if let Ok(ip) = line.trim().parse::<IpAddr>() {
            last = Some(ip);
        } else if line.contains("/32 host LOCAL")
            && let Some(ip) = last
            && !ip.is_loopback()
            && !addresses.contains(&ip)
        {
            addresses.push(ip);
        }
    }
    addresses
}
