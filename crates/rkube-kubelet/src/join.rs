//! Joining a cluster with a token (`rkube agent --server URL --token TOKEN`), k3s's way: the
//! token pins the cluster CA by its hash and carries a secret that authenticates the agent
//! until it holds a client certificate for `system:node:<name>` (group `system:nodes`),
//! obtained through the CSR API and kept under `<data-dir>/agent/`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

/// The signer of kubelet client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The signer of kubelet serving certificates.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";

/// A parsed join token: `K10<sha256 of the CA certificate, hex>::node:<secret>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// The CA's hash.
    pub ca_hash: String,
    /// The secret sent as a bearer token.
    pub secret: String,
}

impl JoinToken {
    /// Reads a token.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let rest = text.strip_prefix("K10").ok_or_else(|| {
            "a join token starts with K10 (read it from the server's <data-dir>/node-token)"
                .to_owned()
        })?;
        let (hash, secret) = rest
            .split_once("::")
            .ok_or_else(|| "a join token has the form K10<ca-hash>::node:<secret>".to_owned())?;
        let secret = secret.split_once(':').map_or(secret, |(_, s)| s);
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) || secret.is_empty() {
            return Err("a join token has the form K10<ca-hash>::node:<secret>".to_owned());
        }
        Ok(Self {
            ca_hash: hash.to_lowercase(),
            secret: secret.to_owned(),
        })
    }

    /// The token for a CA and secret.
    pub fn format(ca_pem: &str, secret: &str) -> String {
        format!("K10{}::node:{secret}", ca_hash(ca_pem))
    }
}

/// The hex sha256 of the CA certificate's PEM text.
pub fn ca_hash(ca_pem: &str) -> String {
    crate::pause::sha256(ca_pem.as_bytes())
        .trim_start_matches("sha256:")
        .to_owned()
}

fn client(
    server: &str,
    ca_pem: Option<&str>,
    token: Option<&str>,
    cert: Option<(&str, &str)>,
) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::try_from(config(
        server, ca_pem, token, cert,
    )?)?)
}

/// A client configuration for `server`: trusting `ca_pem` (anything when `None`), with a
/// bearer token or a client certificate and key (PEM).
pub fn config(
    server: &str,
    ca_pem: Option<&str>,
    token: Option<&str>,
    cert: Option<(&str, &str)>,
) -> anyhow::Result<kube::Config> {
    let mut config = kube::Config::new(server.parse().context("the server URL")?);
    match ca_pem {
        Some(ca) => {
            let ders = pem_blocks(ca);
            anyhow::ensure!(!ders.is_empty(), "the cluster CA has no certificate");
            config.root_cert = Some(ders);
        }
        None => config.accept_invalid_certs = true,
    }
    if let Some(token) = token {
        config.auth_info.token = Some(token.to_owned().into());
    }
    if let Some((cert, key)) = cert {
        config.auth_info.client_certificate_data = Some(base64_of(cert));
        config.auth_info.client_key_data = Some(base64_of(key).into());
    }
    Ok(config)
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn pem_blocks(pem: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    let mut out = Vec::new();
    let mut current = String::new();
    let mut inside = false;
    for line in pem.lines() {
        if line.starts_with("-----BEGIN CERTIFICATE") {
            inside = true;
            current.clear();
        } else if line.starts_with("-----END CERTIFICATE") {
            inside = false;
            if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(current.trim()) {
                out.push(der);
            }
        } else if inside {
            current.push_str(line.trim());
        }
    }
    out
}

/// Joins: returns a client authenticated as `system:node:<node>`, making and keeping its
/// certificate on first join.
pub async fn join(
    server: &str,
    token: &str,
    data_dir: &Path,
    node: &str,
) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::try_from(
        join_config(server, token, data_dir, node).await?,
    )?)
}

/// [`join`]'s client configuration: the cluster CA (checked against the token's hash) and the
/// certificate of `system:node:<node>`, both kept under `<data_dir>/agent/`.
pub async fn join_config(
    server: &str,
    token: &str,
    data_dir: &Path,
    node: &str,
) -> anyhow::Result<kube::Config> {
    let token = JoinToken::parse(token).map_err(|e| anyhow::anyhow!("--token: {e}"))?;
    let dir = data_dir.join("agent");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (ca_path, cert_path, key_path) = (
        dir.join("server-ca.crt"),
        dir.join("client-kubelet.crt"),
        dir.join("client-kubelet.key"),
    );
    // The CA: fetched without trusting the connection, then accepted only if it has the hash
    // the token pins.
    let ca = loop {
        let bootstrap = client(server, None, Some(&token.secret), None)?;
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(bootstrap, "kube-public");
        match cms.get("kube-root-ca.crt").await {
            Ok(cm) => {
                let ca = cm
                    .data
                    .and_then(|d| d.get("ca.crt").cloned())
                    .unwrap_or_default();
                anyhow::ensure!(
                    ca_hash(&ca) == token.ca_hash,
                    "the server's CA does not match the token's hash: refusing to join"
                );
                break ca;
            }
            Err(kube::Error::Api(e)) if e.code == 401 || e.code == 403 => {
                anyhow::bail!("the server refused the join token ({})", e.message)
            }
            Err(e) => {
                tracing::info!(error = %e, "waiting for the server's CA");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    std::fs::write(&ca_path, &ca).with_context(|| format!("writing {}", ca_path.display()))?;
    if let (Ok(cert), Ok(key)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) && still_valid(&cert)
    {
        return config(server, Some(&ca), None, Some((&cert, &key)));
    }
    let bootstrap = client(server, Some(&ca), Some(&token.secret), None)?;
    let key = rcgen::KeyPair::generate().context("making the node key")?;
    let cert = request_certificate(
        bootstrap,
        &format!("node-csr-{node}"),
        &key,
        &node_subject(node, Vec::new())?,
        KUBELET_CLIENT_SIGNER,
        &["digital signature", "client auth"],
        Duration::from_secs(120),
    )
    .await?;
    let key_pem = key.serialize_pem();
    std::fs::write(&cert_path, &cert)
        .with_context(|| format!("writing {}", cert_path.display()))?;
    write_private(&key_path, &key_pem)?;
    config(server, Some(&ca), None, Some((&cert, &key_pem)))
}

/// Certificate parameters for `system:node:<node>` in `system:nodes`, with subject
/// alternative names (IP addresses become IP names).
pub fn node_subject(node: &str, names: Vec<String>) -> anyhow::Result<rcgen::CertificateParams> {
    let mut params = rcgen::CertificateParams::new(names).context("certificate names")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    Ok(params)
}

/// Sends a certificate signing request for `params` (signed with `key`) to `signer`, named
/// `<prefix>-<random>`, and waits up to `wait` for the certificate (PEM).
pub async fn request_certificate(
    client: kube::Client,
    prefix: &str,
    key: &rcgen::KeyPair,
    params: &rcgen::CertificateParams,
    signer: &str,
    usages: &[&str],
    wait: Duration,
) -> anyhow::Result<String> {
    let csr = params
        .serialize_request(key)
        .context("making the certificate request")?;
    let csr_pem = csr.pem().context("encoding the certificate request")?;
    let name = format!("{prefix}-{:08x}", rand::random::<u32>());
    let csrs: Api<CertificateSigningRequest> = Api::all(client);
    let request = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: k8s_openapi::ByteString(csr_pem.into_bytes()),
            signer_name: signer.to_owned(),
            usages: Some(usages.iter().map(|u| (*u).to_owned()).collect()),
            ..Default::default()
        },
        status: None,
    };
    csrs.create(&PostParams::default(), &request)
        .await
        .with_context(|| format!("sending the certificate request {name}"))?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let current = csrs
            .get(&name)
            .await
            .context("reading the certificate request")?;
        let status = current.status.unwrap_or_default();
        if status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Denied" || c.type_ == "Failed")
        {
            anyhow::bail!("the certificate request {name} was denied");
        }
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            return Ok(String::from_utf8_lossy(&cert.0).into_owned());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the certificate request {name} was not signed within {} s",
            wait.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Writes a file only its owner may read.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Whether a certificate (PEM) is valid for at least another hour.
pub fn still_valid(cert_pem: &str) -> bool {
    let Some(der) = pem_blocks(cert_pem).into_iter().next() else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    cert.validity().not_after.timestamp() > now + 3600
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let t = JoinToken::format(
            "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
            "s3cret",
        );
        let parsed = JoinToken::parse(&t).map_err(|e| e.to_string());
        assert_eq!(parsed.map(|p| p.secret), Ok("s3cret".to_owned()));
        assert!(JoinToken::parse("nope").is_err());
        assert!(JoinToken::parse("K10abc::node:x").is_err());
    }
}
