//! Request-header authentication, both ways. As the front proxy, the server tells an
//! extension API server who asked in `X-Remote-User`, `X-Remote-Group` and
//! `X-Remote-Extra-<key>` (and `X-Remote-Uid` when the user has one), presenting the
//! front-proxy client certificate that vouches for them. As a backend, it believes those headers from a caller whose client certificate the
//! request-header CA signed and whose name is allowed, as upstream's `headerrequest`
//! authenticator does. Whatever `X-Remote-*` headers a client sends itself are removed before
//! a request is passed on.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, header};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::auth::UserInfo;
use crate::certs::{FRONT_PROXY_CLIENT, FrontProxyCerts};

/// The header naming the user.
pub const USER_HEADER: &str = "X-Remote-User";
/// The header naming one group (repeated for each).
pub const GROUP_HEADER: &str = "X-Remote-Group";
/// The prefix of the headers carrying the user's extra values, by key.
pub const EXTRA_PREFIX: &str = "X-Remote-Extra-";
/// The header with the user's uid. Sent as upstream's aggregator sends it since 1.33
/// (`RemoteRequestHeaderUID`, on by default); never believed from a front proxy, as upstream
/// reads it only when `--requestheader-uid-headers` names it.
const UID_HEADER: &str = "x-remote-uid";

/// The front-proxy identity of this server, and what it accepts from other front proxies.
#[derive(Clone)]
pub struct FrontProxy {
    /// The request-header CA (PEM), which extension API servers trust.
    pub ca_pem: String,
    /// The names a front proxy's certificate may carry (`requestheader-allowed-names`).
    pub allowed_names: Vec<String>,
    /// The request-header CA's public key (SubjectPublicKeyInfo, DER).
    ca_public_key: Vec<u8>,
    client_chain: Vec<CertificateDer<'static>>,
    client_key: Arc<PrivateKeyDer<'static>>,
}

/// Shows the allowed names, never the key.
impl std::fmt::Debug for FrontProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontProxy")
            .field("allowed_names", &self.allowed_names)
            .finish_non_exhaustive()
    }
}

impl FrontProxy {
    /// From the front-proxy PKI, allowing only its own client name (upstream's
    /// `--requestheader-allowed-names=front-proxy-client`).
    pub fn new(certs: &FrontProxyCerts) -> Result<Self, String> {
        let ca_der = CertificateDer::from_pem_slice(certs.ca_cert.as_bytes())
            .map_err(|e| format!("reading the front-proxy CA: {e}"))?;
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der)
            .map_err(|e| format!("parsing the front-proxy CA: {e}"))?;
        let client_chain = CertificateDer::pem_slice_iter(certs.client_cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("reading the front-proxy client certificate: {e}"))?;
        let client_key = PrivateKeyDer::from_pem_slice(certs.client_key.as_bytes())
            .map_err(|e| format!("reading the front-proxy client key: {e}"))?;
        Ok(Self {
            ca_pem: certs.ca_cert.clone(),
            allowed_names: vec![FRONT_PROXY_CLIENT.to_owned()],
            ca_public_key: ca.public_key().raw.to_vec(),
            client_chain,
            client_key: Arc::new(client_key),
        })
    }

    /// The request-header CA as DER, for the TLS client verifier.
    pub fn ca_der(&self) -> Option<CertificateDer<'static>> {
        CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).ok()
    }

    /// The common name of a client certificate (DER) the request-header CA signed; `None`
    /// for any other certificate.
    pub fn signed_name(&self, der: &[u8]) -> Option<String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let (_, key) = SubjectPublicKeyInfo::from_der(&self.ca_public_key).ok()?;
        cert.verify_signature(Some(&key)).ok()?;
        let name = cert.subject().iter_common_name().next()?.as_str().ok()?;
        Some(name.to_owned())
    }

    /// Whether a front proxy named `name` may assert identities.
    pub fn allows(&self, name: &str) -> bool {
        self.allowed_names.is_empty() || self.allowed_names.iter().any(|n| n == name)
    }

    /// A TLS client for an extension API server: its certificate checked against
    /// `ca_bundle` (PEM) unless `insecure`, presenting the front-proxy client certificate.
    /// An empty bundle trusts nothing: the server has no system roots to fall back on.
    pub fn client_config(
        &self,
        ca_bundle: &[u8],
        insecure: bool,
    ) -> Result<Arc<rustls::ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(crate::nodeproxy::any_server_cert(provider))
        } else {
            builder.with_root_certificates(crate::webhook::client::trusted(ca_bundle)?)
        };
        let mut config = builder
            .with_client_auth_cert(self.client_chain.clone(), self.client_key.clone_key())
            .map_err(|e| format!("loading the front-proxy client certificate: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Whether `name` is one of the request-header headers (or the credentials) a client must
/// not pass through the proxy.
fn is_identity_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    name == header::AUTHORIZATION.as_str()
        || name.eq_ignore_ascii_case(USER_HEADER)
        || name.eq_ignore_ascii_case(GROUP_HEADER)
        || name == UID_HEADER
        || name
            .get(..EXTRA_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(EXTRA_PREFIX))
}

/// Removes the credentials and every `X-Remote-*` header the client sent.
pub fn strip(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_identity_header(n))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Writes `user` into the request-header headers (after [`strip`]): the uid only when there
/// is one, extra keys percent-encoded, as upstream's `SetAuthProxyHeaders` writes them.
pub fn set(headers: &mut HeaderMap, user: &UserInfo) {
    let append = |headers: &mut HeaderMap, name: HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(name, value);
        }
    };
    append(
        headers,
        HeaderName::from_static("x-remote-user"),
        &user.name,
    );
    if !user.uid.is_empty() {
        append(headers, HeaderName::from_static(UID_HEADER), &user.uid);
    }
    for group in &user.groups {
        append(headers, HeaderName::from_static("x-remote-group"), group);
    }
    for (key, values) in &user.extra {
        let Ok(name) = HeaderName::from_bytes(
            format!("{}{}", EXTRA_PREFIX.to_ascii_lowercase(), escape(key)).as_bytes(),
        ) else {
            continue;
        };
        for value in values {
            append(headers, name.clone(), value);
        }
    }
}

/// The user the request-header headers name; `None` without a user name (the request is
/// then not authenticated this way).
pub fn user_from_headers(headers: &HeaderMap) -> Option<UserInfo> {
    let name = headers
        .get_all(USER_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .find(|v| !v.is_empty())?
        .to_owned();
    let groups = headers
        .get_all(GROUP_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    let mut user = UserInfo::new(name, "", groups);
    for (header, value) in headers {
        let Some(key) = header
            .as_str()
            .get(EXTRA_PREFIX.len()..)
            .filter(|_| header.as_str()[..EXTRA_PREFIX.len()].eq_ignore_ascii_case(EXTRA_PREFIX))
        else {
            continue;
        };
        let Ok(value) = value.to_str() else {
            continue;
        };
        user.extra
            .entry(unescape(&key.to_ascii_lowercase()))
            .or_default()
            .push(value.to_owned());
    }
    Some(user)
}

/// Percent-encodes what a header name cannot carry (upstream path-escapes extra keys).
fn escape(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes [`escape`]; a malformed escape is kept as it is.
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_round_trips_through_the_headers() {
        let mut user = UserInfo::new("jane", "", vec!["devs".to_owned()]);
        user.extra.insert(
            "example.org/team".to_owned(),
            vec!["a".to_owned(), "b".to_owned()],
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-remote-user", HeaderValue::from_static("mallory"));
        headers.insert("X-Remote-Extra-Evil", HeaderValue::from_static("1"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        strip(&mut headers);
        assert_eq!(headers.len(), 1);
        set(&mut headers, &user);
        assert_eq!(headers["x-remote-extra-example.org%2Fteam"], "a");
        let read = user_from_headers(&headers).unwrap();
        assert_eq!(read.name, "jane");
        assert_eq!(read.groups, vec!["devs", "system:authenticated"]);
        assert_eq!(read.extra["example.org/team"], vec!["a", "b"]);
    }

    #[test]
    fn the_uid_is_sent_when_there_is_one_and_never_believed() {
        let mut headers = HeaderMap::new();
        headers.insert("x-remote-uid", HeaderValue::from_static("forged"));
        strip(&mut headers);
        assert!(headers.is_empty());
        set(&mut headers, &UserInfo::new("jane", "", Vec::new()));
        assert!(headers.get("x-remote-uid").is_none());
        let mut headers = HeaderMap::new();
        set(&mut headers, &UserInfo::new("sam", "uid-1", Vec::new()));
        assert_eq!(headers["x-remote-uid"], "uid-1");
        let read = user_from_headers(&headers).unwrap();
        assert_eq!(read.uid, "");
    }

    #[test]
    fn without_a_user_name_nobody_is_named() {
        let mut headers = HeaderMap::new();
        headers.insert("x-remote-group", HeaderValue::from_static("system:masters"));
        assert!(user_from_headers(&headers).is_none());
    }
}
