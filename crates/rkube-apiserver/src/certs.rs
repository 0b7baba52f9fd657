//! The cluster's certificates: a CA made on first start, the API server's serving certificate,
//! and the admin client certificate behind `<data-dir>/kubeconfig.yaml`. Later starts reuse
//! what is on disk; the serving certificate is remade when the names it must cover change.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Why the certificates could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key could not be made or parsed.
    #[error("{what}: {source}")]
    Rcgen {
        /// What was being done.
        what: String,
        /// What failed.
        #[source]
        source: rcgen::Error,
    },
}

type Result<T, E = CertError> = std::result::Result<T, E>;

/// The PEM files the server uses, all under `<data-dir>/tls`.
#[derive(Clone, Debug)]
pub struct ClusterCerts {
    /// The CA certificate (PEM).
    pub ca_cert: String,
    /// The CA key (PEM), to sign client certificates.
    pub ca_key: String,
    /// The serving certificate chain (PEM).
    pub server_cert: String,
    /// The serving key (PEM).
    pub server_key: String,
    /// The admin client certificate (PEM): CN=system:admin, O=system:masters.
    pub admin_cert: String,
    /// The admin client key (PEM).
    pub admin_key: String,
}

fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CertError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write(path: &Path, contents: &str, private: bool) -> Result<()> {
    let io = |source| CertError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Write then rename, so a crash never leaves half a key behind.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(io)?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

fn rcgen_err(what: &str) -> impl Fn(rcgen::Error) -> CertError + '_ {
    move |source| CertError::Rcgen {
        what: what.to_owned(),
        source,
    }
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

/// Makes a new CA named `common_name`.
fn new_ca(common_name: &str) -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(rcgen_err("generating the CA key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name, None);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, 3650);
    let cert = params
        .self_signed(&key)
        .map_err(rcgen_err("signing the CA"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Signs a leaf certificate with the CA.
fn sign(
    ca_cert: &str,
    ca_key: &str,
    params: CertificateParams,
    what: &str,
) -> Result<(String, String)> {
    let ca_key = KeyPair::from_pem(ca_key).map_err(rcgen_err("reading the CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert, ca_key)
        .map_err(rcgen_err("reading the CA certificate"))?;
    let key = KeyPair::generate().map_err(rcgen_err(what))?;
    let cert = params.signed_by(&key, &issuer).map_err(rcgen_err(what))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A client certificate: CN is the user, each organization a group.
pub fn client_cert(
    ca_cert: &str,
    ca_key: &str,
    user: &str,
    groups: &[&str],
) -> Result<(String, String)> {
    let mut params = CertificateParams::default();
    let mut dn = name(user, None);
    for g in groups {
        dn.push(DnType::OrganizationName, *g);
    }
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut params, 365);
    sign(ca_cert, ca_key, params, "signing a client certificate")
}

fn server_cert(ca_cert: &str, ca_key: &str, sans: &[String]) -> Result<(String, String)> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name("rkube-apiserver", None);
    params.subject_alt_names = sans
        .iter()
        .filter_map(|s| match s.parse::<IpAddr>() {
            Ok(ip) => Some(SanType::IpAddress(ip)),
            Err(_) => s.clone().try_into().ok().map(SanType::DnsName),
        })
        .collect();
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params, 365);
    sign(ca_cert, ca_key, params, "signing the serving certificate")
}

/// Loads the certificates under `dir`, making whatever is missing. `sans` are the names and
/// addresses the serving certificate must cover; when they change it is remade.
pub fn ensure(dir: &Path, sans: &[String]) -> Result<ClusterCerts> {
    let path = |f: &str| dir.join(f);
    let (ca_cert, ca_key) = match (read(&path("ca.crt"))?, read(&path("ca.key"))?) {
        (Some(c), Some(k)) => (c, k),
        _ => {
            let (c, k) = new_ca("rkube-ca")?;
            write(&path("ca.key"), &k, true)?;
            write(&path("ca.crt"), &c, false)?;
            (c, k)
        }
    };
    let wanted = sans.join(",");
    let (server_cert, server_key) = match (
        read(&path("server.crt"))?,
        read(&path("server.key"))?,
        read(&path("server.sans"))?,
    ) {
        (Some(c), Some(k), Some(s)) if s == wanted => (c, k),
        _ => {
            let (c, k) = server_cert(&ca_cert, &ca_key, sans)?;
            write(&path("server.key"), &k, true)?;
            write(&path("server.crt"), &c, false)?;
            write(&path("server.sans"), &wanted, false)?;
            (c, k)
        }
    };
    let (admin_cert, admin_key) = match (read(&path("admin.crt"))?, read(&path("admin.key"))?) {
        (Some(c), Some(k)) => (c, k),
        _ => {
            let (c, k) = client_cert(&ca_cert, &ca_key, "system:admin", &["system:masters"])?;
            write(&path("admin.key"), &k, true)?;
            write(&path("admin.crt"), &c, false)?;
            (c, k)
        }
    };
    Ok(ClusterCerts {
        ca_cert,
        ca_key,
        server_cert,
        server_key,
        admin_cert,
        admin_key,
    })
}

/// The user name of the front-proxy client certificate, the one name extension API servers
/// are told to accept (`requestheader-allowed-names`).
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";

/// The request-header ("front-proxy") PKI, kept apart from the cluster CA as upstream keeps
/// it: the API server presents the client certificate when it proxies a request to an
/// extension API server, which trusts the CA to vouch for the `X-Remote-*` headers.
#[derive(Clone, Debug)]
pub struct FrontProxyCerts {
    /// The request-header CA certificate (PEM).
    pub ca_cert: String,
    /// The client certificate (PEM): CN `front-proxy-client`.
    pub client_cert: String,
    /// The client key (PEM).
    pub client_key: String,
}

/// Loads the front-proxy CA and client certificate under `dir`
/// (`front-proxy-ca.{crt,key}`, `front-proxy-client.{crt,key}`), making whatever is missing.
pub fn ensure_front_proxy(dir: &Path) -> Result<FrontProxyCerts> {
    let path = |f: &str| dir.join(f);
    let (ca_cert, ca_key, made) = match (
        read(&path("front-proxy-ca.crt"))?,
        read(&path("front-proxy-ca.key"))?,
    ) {
        (Some(c), Some(k)) => (c, k, false),
        _ => {
            let (c, k) = new_ca("rkube-front-proxy-ca")?;
            write(&path("front-proxy-ca.key"), &k, true)?;
            write(&path("front-proxy-ca.crt"), &c, false)?;
            (c, k, true)
        }
    };
    let (client_cert, client_key) = match (
        read(&path("front-proxy-client.crt"))?,
        read(&path("front-proxy-client.key"))?,
    ) {
        (Some(c), Some(k)) if !made => (c, k),
        _ => {
            let (c, k) = client_cert(&ca_cert, &ca_key, FRONT_PROXY_CLIENT, &[])?;
            write(&path("front-proxy-client.key"), &k, true)?;
            write(&path("front-proxy-client.crt"), &c, false)?;
            (c, k)
        }
    };
    Ok(FrontProxyCerts {
        ca_cert,
        client_cert,
        client_key,
    })
}

/// Writes a private key file (mode 0600), atomically.
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<()> {
    write(path, contents, true)
}

/// A kubeconfig for the admin user against `server` (e.g. `https://127.0.0.1:6443`).
pub fn admin_kubeconfig(certs: &ClusterCerts, server: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: rkube\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n\
         - name: admin\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n\
         contexts:\n\
         - name: rkube\n  context:\n    cluster: rkube\n    user: admin\n    namespace: default\n\
         current-context: rkube\n\
         preferences: {{}}\n",
        ca = b64(&certs.ca_cert),
        cert = b64(&certs.admin_cert),
        key = b64(&certs.admin_key),
    )
}

/// Writes the admin kubeconfig, readable by its owner only.
pub fn write_kubeconfig(path: &Path, contents: &str) -> Result<()> {
    write(path, contents, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let first = ensure(dir.path(), &sans).unwrap();
        let again = ensure(dir.path(), &sans).unwrap();
        assert_eq!(first.ca_cert, again.ca_cert);
        assert_eq!(first.server_cert, again.server_cert);
        let more = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "10.0.0.5".to_owned(),
        ];
        let remade = ensure(dir.path(), &more).unwrap();
        assert_eq!(first.ca_cert, remade.ca_cert);
        assert_ne!(first.server_cert, remade.server_cert);
    }

    #[test]
    fn the_admin_certificate_names_the_masters_group() {
        let dir = tempfile::tempdir().unwrap();
        let certs = ensure(dir.path(), &["localhost".to_owned()]).unwrap();
        let der = rustls_pemfile_first(&certs.admin_cert);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .filter_map(|a| a.as_str().ok())
            .collect();
        let o: Vec<_> = cert
            .subject()
            .iter_organization()
            .filter_map(|a| a.as_str().ok())
            .collect();
        assert_eq!((cn, o), (vec!["system:admin"], vec!["system:masters"]));
    }

    #[test]
    fn the_front_proxy_client_is_signed_by_its_own_ca() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = ensure(dir.path(), &["localhost".to_owned()]).unwrap();
        let proxy = ensure_front_proxy(dir.path()).unwrap();
        assert_ne!(proxy.ca_cert, cluster.ca_cert);
        assert_eq!(
            ensure_front_proxy(dir.path()).unwrap().client_cert,
            proxy.client_cert
        );
        let der = rustls_pemfile_first(&proxy.client_cert);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let ca_der = rustls_pemfile_first(&proxy.ca_cert);
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .filter_map(|a| a.as_str().ok())
            .collect();
        assert_eq!(cn, vec![FRONT_PROXY_CLIENT]);
    }

    fn rustls_pemfile_first(pem: &str) -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }
}
