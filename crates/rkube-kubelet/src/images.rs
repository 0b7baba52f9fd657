//! Image pulls: the pull policy, credentials from imagePullSecrets (dockerconfigjson), and the
//! registry host configuration containerd reads (k3s's registries.yaml turned into
//! `certs.d/<host>/hosts.toml`).

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;

use crate::cri::v1;

/// Whether to pull now (upstream's shouldPullImage).
pub fn should_pull(policy: &str, present: bool) -> Result<bool, String> {
    match policy {
        "Always" => Ok(true),
        "Never" if !present => Err("ErrImageNeverPull".to_owned()),
        "Never" => Ok(false),
        _ => Ok(!present),
    }
}

/// The registry host of an image reference (`docker.io` when it names none).
pub fn registry_host(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// Credentials for `image` from the pod's pull secrets (dockerconfigjson or dockercfg).
pub fn auth_for(image: &str, secrets: &[&Secret]) -> Option<v1::AuthConfig> {
    let host = registry_host(image);
    for secret in secrets {
        let data = secret.data.as_ref()?;
        let (auths, nested) = match (data.get(".dockerconfigjson"), data.get(".dockercfg")) {
            (Some(json), _) => (json, true),
            (None, Some(cfg)) => (cfg, false),
            _ => continue,
        };
        let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(&auths.0) else {
            continue;
        };
        let entries = if nested { &parsed["auths"] } else { &parsed };
        let Some(entries) = entries.as_object() else {
            continue;
        };
        for (key, entry) in entries {
            let key_host = key
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default();
            let matches = key_host == host
                || (host == "docker.io"
                    && (key_host == "index.docker.io" || key_host == "registry-1.docker.io"));
            if !matches {
                continue;
            }
            let mut auth = v1::AuthConfig {
                username: entry["username"].as_str().unwrap_or_default().to_owned(),
                password: entry["password"].as_str().unwrap_or_default().to_owned(),
                auth: entry["auth"].as_str().unwrap_or_default().to_owned(),
                ..Default::default()
            };
            if auth.username.is_empty()
                && !auth.auth.is_empty()
                && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(&auth.auth)
            {
                let text = String::from_utf8_lossy(&decoded).into_owned();
                if let Some((u, p)) = text.split_once(':') {
                    auth.username = u.to_owned();
                    auth.password = p.to_owned();
                }
            }
            return Some(auth);
        }
    }
    None
}

/// k3s's registries.yaml.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Registries {
    /// Mirrors per registry host (`docker.io`, `*`).
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Per-endpoint-host settings: auth and TLS.
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryConfig>,
}

/// A registry's mirrors.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Mirror {
    /// Endpoints tried in order (the registry itself last, as containerd does).
    #[serde(default)]
    pub endpoint: Vec<String>,
    /// Rewrites of repository names.
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

/// Settings for one endpoint host.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct RegistryConfig {
    /// Credentials.
    #[serde(default)]
    pub auth: Option<RegistryAuth>,
    /// TLS.
    #[serde(default)]
    pub tls: Option<RegistryTls>,
}

/// Credentials.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct RegistryAuth {
    /// User.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
    /// base64 of user:password.
    #[serde(default)]
    pub auth: String,
    /// A bearer token.
    #[serde(default)]
    pub identitytoken: String,
}

/// TLS settings.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct RegistryTls {
    /// CA bundle.
    #[serde(default)]
    pub ca_file: String,
    /// Client certificate.
    #[serde(default)]
    pub cert_file: String,
    /// Client key.
    #[serde(default)]
    pub key_file: String,
    /// Skip verification.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl Registries {
    /// Reads registries.yaml.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        serde_norway::from_str(text).map_err(|e| e.to_string())
    }

    /// Credentials configured for an endpoint host.
    pub fn auth_for_host(&self, host: &str) -> Option<v1::AuthConfig> {
        let auth = self.configs.get(host)?.auth.as_ref()?;
        Some(v1::AuthConfig {
            username: auth.username.clone(),
            password: auth.password.clone(),
            auth: auth.auth.clone(),
            identity_token: auth.identitytoken.clone(),
            ..Default::default()
        })
    }

    /// containerd's per-host credentials (`registry.configs."<host>".auth`): containerd
    /// picks them for whichever host it pulls from, a mirror endpoint as well as the
    /// registry itself.
    pub fn containerd_auth(&self) -> String {
        use crate::containerd::toml_string;
        let mut out = String::new();
        for (host, config) in &self.configs {
            let Some(auth) = &config.auth else { continue };
            out.push_str(&format!(
                "\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.{}.auth]\n",
                toml_string(host)
            ));
            for (key, value) in [
                ("username", &auth.username),
                ("password", &auth.password),
                ("auth", &auth.auth),
                ("identitytoken", &auth.identitytoken),
            ] {
                if !value.is_empty() {
                    out.push_str(&format!("  {key} = {}\n", toml_string(value)));
                }
            }
        }
        out
    }

    /// The `hosts.toml` files (by registry host) for containerd's `config_path`.
    pub fn hosts_files(&self) -> BTreeMap<String, String> {
        use crate::containerd::toml_string;
        let mut files = BTreeMap::new();
        let tls_lines = |host: &str| -> String {
            let Some(tls) = self.configs.get(host).and_then(|c| c.tls.as_ref()) else {
                return String::new();
            };
            let mut out = String::new();
            if !tls.ca_file.is_empty() {
                out.push_str(&format!("  ca = {}\n", toml_string(&tls.ca_file)));
            }
            if !tls.cert_file.is_empty() && !tls.key_file.is_empty() {
                out.push_str(&format!(
                    "  client = [[{}, {}]]\n",
                    toml_string(&tls.cert_file),
                    toml_string(&tls.key_file)
                ));
            }
            if tls.insecure_skip_verify {
                out.push_str("  skip_verify = true\n");
            }
            out
        };
        let mut registries: Vec<&String> = self.mirrors.keys().collect();
        for host in self.configs.keys() {
            if !self.mirrors.contains_key(host) {
                registries.push(host);
            }
        }
        for registry in registries {
            let mut text = String::new();
            let upstream = if registry == "docker.io" {
                "https://registry-1.docker.io".to_owned()
            } else if registry == "*" {
                String::new()
            } else {
                format!("https://{registry}")
            };
            if !upstream.is_empty() {
                text.push_str(&format!("server = {}\n", toml_string(&upstream)));
            }
            for endpoint in self
                .mirrors
                .get(registry)
                .map(|m| m.endpoint.as_slice())
                .unwrap_or_default()
            {
                let url = if endpoint.contains("://") {
                    endpoint.clone()
                } else {
                    format!("https://{endpoint}")
                };
                let host = url
                    .split("://")
                    .nth(1)
                    .unwrap_or_default()
                    .split('/')
                    .next()
                    .unwrap_or_default();
                text.push_str(&format!(
                    "\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
                    toml_string(&url)
                ));
                text.push_str(&tls_lines(host));
            }
            if !upstream.is_empty() && self.configs.contains_key(registry) {
                text.push_str(&format!(
                    "\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
                    toml_string(&upstream)
                ));
                text.push_str(&tls_lines(registry));
            }
            let dir = if registry == "*" {
                "_default".to_owned()
            } else {
                registry.clone()
            };
            files.insert(dir, text);
        }
        files
    }

    /// Writes the hosts files under `certs_d`, replacing what was there.
    pub fn write(&self, certs_d: &Path) -> std::io::Result<()> {
        let _ = std::fs::remove_dir_all(certs_d);
        std::fs::create_dir_all(certs_d)?;
        for (dir, text) in self.hosts_files() {
            let d = certs_d.join(dir);
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join("hosts.toml"), text)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies_follow_upstream() {
        assert_eq!(should_pull("Always", true), Ok(true));
        assert_eq!(should_pull("IfNotPresent", true), Ok(false));
        assert_eq!(should_pull("IfNotPresent", false), Ok(true));
        assert!(should_pull("Never", false).is_err());
    }

    #[test]
    fn hosts_are_read_from_references() {
        assert_eq!(registry_host("busybox"), "docker.io");
        assert_eq!(registry_host("library/busybox:1"), "docker.io");
        assert_eq!(registry_host("127.0.0.1:5000/x/y:1"), "127.0.0.1:5000");
        assert_eq!(registry_host("localhost/x"), "localhost");
    }

    #[test]
    fn dockerconfigjson_credentials_match_the_image_registry() {
        let json = r#"{"auths":{"reg.example:5000":{"auth":"dTpw"}}}"#;
        let secret = Secret {
            data: Some(BTreeMap::from([(
                ".dockerconfigjson".to_owned(),
                k8s_openapi::ByteString(json.as_bytes().to_vec()),
            )])),
            ..Default::default()
        };
        let auth = auth_for("reg.example:5000/app:1", &[&secret]);
        assert_eq!(
            auth.map(|a| (a.username, a.password)),
            Some(("u".into(), "p".into()))
        );
        assert!(auth_for("other.example/app:1", &[&secret]).is_none());
    }

    #[test]
    fn mirrors_become_hosts_files() -> Result<(), String> {
        let r = Registries::from_yaml(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:5000\"]\nconfigs:\n  \"127.0.0.1:5000\":\n    tls:\n      insecure_skip_verify: true\n",
        )?;
        let files = r.hosts_files();
        let docker = files.get("docker.io").cloned().unwrap_or_default();
        assert!(docker.contains("server = \"https://registry-1.docker.io\""));
        assert!(docker.contains("[host.\"http://127.0.0.1:5000\"]"));
        assert!(docker.contains("skip_verify = true"));
        Ok(())
    }
}
