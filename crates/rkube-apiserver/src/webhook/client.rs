//! Posting an `AdmissionReview` to a webhook: HTTPS only, the server verified against the
//! webhook's `caBundle`, one connection per call, the whole call bounded by its timeout.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::Value;

/// The largest response read from a webhook.
const MAX_RESPONSE_BYTES: usize = 3 * 1024 * 1024;

/// Where to send a review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The host to connect to (a name or an address).
    pub host: String,
    pub port: u16,
    /// The name the server's certificate must carry.
    pub server_name: String,
    /// The path and query of the request.
    pub path: String,
}

impl Endpoint {
    /// From a `clientConfig.url`, which must be `https://` without user info or fragment.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("parsing url {url:?}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("webhook url {url:?} must use https"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("webhook url {url:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Self {
            server_name: host.clone(),
            host,
            port: uri.port_u16().unwrap_or(443),
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        })
    }

    /// The URL as upstream's errors show it, with the `timeout` parameter it adds.
    pub fn url(&self, timeout: Duration) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let separator = if self.path.contains('?') { '&' } else { '?' };
        format!(
            "https://{host}:{}{}{separator}timeout={}s",
            self.port,
            self.path,
            timeout.as_secs()
        )
    }
}

/// The CAs a `caBundle` (PEM) names; without one, the host's trusted CAs, as upstream's
/// clients fall back to the system roots.
pub(crate) fn trusted(ca_bundle: &[u8]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_bundle) {
        let cert = cert.map_err(|e| format!("reading caBundle: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("reading caBundle: {e}"))?;
    }
    if roots.is_empty() {
        if !ca_bundle.iter().all(u8::is_ascii_whitespace) {
            return Err("reading caBundle: it holds no PEM certificate".to_owned());
        }
        // Certificates the host cannot read are skipped, as Go's system pool does.
        let native = rustls_native_certs::load_native_certs().certs;
        let (added, _) = roots.add_parsable_certificates(native);
        tracing::debug!(added, "no caBundle: trusting the host's CAs");
    }
    Ok(roots)
}

/// The TLS client for a webhook: the CAs of its `caBundle`.
fn tls_config(ca_bundle: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = trusted(ca_bundle)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Posts `review` to `endpoint` and returns the decoded answer. Errors are upstream's
/// reasons for a failed call (`failed to call webhook: Post "…": …`).
pub(crate) async fn post(
    endpoint: &Endpoint,
    ca_bundle: &[u8],
    review: &Value,
    timeout: Duration,
) -> Result<Value, String> {
    let url = endpoint.url(timeout);
    let failed = |reason: String| format!("failed to call webhook: Post \"{url}\": {reason}");
    let body = serde_json::to_vec(review).map_err(|e| failed(e.to_string()))?;
    let exchange = exchange(endpoint, ca_bundle, body, timeout);
    let (status, bytes) = match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result.map_err(failed)?,
        Err(_) => return Err(failed("context deadline exceeded".to_owned())),
    };
    if !(200..300).contains(&status) {
        return Err(format!(
            "failed to call webhook: the server responded with status {status}: {}",
            String::from_utf8_lossy(&bytes).trim()
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("received invalid webhook response: {e}"))
}

async fn exchange(
    endpoint: &Endpoint,
    ca_bundle: &[u8],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, bytes::Bytes), String> {
    let config = tls_config(ca_bundle)?;
    let server_name = ServerName::try_from(endpoint.server_name.clone())
        .map_err(|e| format!("invalid server name {:?}: {e}", endpoint.server_name))?;
    let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| format!("dial tcp {}:{}: {e}", endpoint.host, endpoint.port))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let path = format!(
        "{}{}timeout={}s",
        endpoint.path,
        if endpoint.path.contains('?') {
            '&'
        } else {
            '?'
        },
        timeout.as_secs()
    );
    let request = Request::post(path)
        .header(
            header::HOST,
            format!("{}:{}", endpoint.server_name, endpoint.port),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, bytes))
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn a_ca_bundle_is_the_only_trust_and_none_means_the_hosts() {
        assert_eq!(trusted(ca_pem().as_bytes()).unwrap().len(), 1);
        let mut host = rustls::RootCertStore::empty();
        host.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        assert_eq!(trusted(b"").unwrap().len(), host.len());
        assert_eq!(trusted(b"  \n").unwrap().len(), host.len());
        assert_eq!(
            trusted(b"not a certificate").unwrap_err(),
            "reading caBundle: it holds no PEM certificate"
        );
    }

    #[test]
    fn a_url_gives_host_port_and_path() {
        let e = Endpoint::from_url("https://127.0.0.1:8443/validate?x=1").unwrap();
        assert_eq!(e.host, "127.0.0.1");
        assert_eq!(e.port, 8443);
        assert_eq!(e.path, "/validate?x=1");
        assert_eq!(
            e.url(Duration::from_secs(10)),
            "https://127.0.0.1:8443/validate?x=1&timeout=10s"
        );
        let d = Endpoint::from_url("https://hooks.example.com").unwrap();
        assert_eq!((d.port, d.path.as_str()), (443, "/"));
        assert!(Endpoint::from_url("http://127.0.0.1/x").is_err());
    }
}
