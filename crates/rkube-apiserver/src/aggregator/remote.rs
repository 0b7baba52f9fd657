//! The APIServices another server answers (`spec.service` set), as the proxy, discovery and
//! OpenAPI read them: kept in memory, rebuilt from the APIService objects whenever the
//! availability loop runs (see `available`).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::openapi::RemoteSpecs;
use crate::requestheader::FrontProxy;

/// One remote group version.
pub(crate) struct Remote {
    /// The APIService's name (`<version>.<group>`).
    pub name: String,
    pub group: String,
    pub version: String,
    pub group_priority: i64,
    pub version_priority: i64,
    /// The Service in front of the extension API server, and its port.
    pub namespace: String,
    pub service: String,
    pub port: i32,
    /// How to reach it over TLS, or why that cannot be set up (a bad caBundle, no
    /// front-proxy certificate): upstream's transport building error.
    pub tls: Result<Arc<rustls::ClientConfig>, String>,
    /// Whether its Available condition is True; requests are proxied only then.
    pub available: bool,
    /// The `APIResourceList` it answered at `/apis/<group>/<version>` when last checked.
    pub resources: Option<Value>,
}

impl Remote {
    /// The name the backend's serving certificate must carry, as upstream's service
    /// resolver builds it.
    pub fn server_name(&self) -> String {
        format!("{}.{}.svc", self.service, self.namespace)
    }

    /// The URL of a path on the backend, as upstream shows it in messages.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}:{}{path}", self.server_name(), self.port)
    }

    /// From an APIService object; `None` for a local one or one without a group version.
    pub fn from_api_service(
        object: &Value,
        front_proxy: Option<&FrontProxy>,
        resources: Option<Value>,
    ) -> Option<Self> {
        let spec = &object["spec"];
        let service = spec["service"].as_object()?;
        let name = object["metadata"]["name"].as_str()?.to_owned();
        let group = spec["group"].as_str().filter(|g| !g.is_empty())?.to_owned();
        let version = spec["version"]
            .as_str()
            .filter(|v| !v.is_empty())?
            .to_owned();
        let ca_bundle = spec["caBundle"]
            .as_str()
            .and_then(|b| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(b).ok()
            })
            .unwrap_or_default();
        let insecure = spec["insecureSkipTLSVerify"].as_bool().unwrap_or(false);
        let tls = match front_proxy {
            Some(proxy) => proxy.client_config(&ca_bundle, insecure),
            None => Err("this server has no front-proxy client certificate".to_owned()),
        };
        let available = object["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Available" && c["status"] == "True");
        Some(Self {
            name,
            group,
            version,
            group_priority: spec["groupPriorityMinimum"].as_i64().unwrap_or(0),
            version_priority: spec["versionPriority"].as_i64().unwrap_or(0),
            namespace: service.get("namespace")?.as_str()?.to_owned(),
            service: service.get("name")?.as_str()?.to_owned(),
            port: service
                .get("port")
                .and_then(Value::as_i64)
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(443),
            tls,
            available,
            resources,
        })
    }
}

/// The remote group versions, by APIService name, and the OpenAPI documents their servers
/// publish.
#[derive(Default)]
pub(crate) struct RemoteApis {
    by_name: RwLock<BTreeMap<String, Arc<Remote>>>,
    /// Wakes the OpenAPI loop when the table is replaced.
    replaced: tokio::sync::Notify,
    /// The remote servers' OpenAPI documents.
    pub openapi: RemoteSpecs,
}

impl RemoteApis {
    /// Replaces the table.
    pub fn replace(&self, remotes: BTreeMap<String, Arc<Remote>>) {
        *self.by_name.write().unwrap_or_else(|p| p.into_inner()) = remotes;
        self.replaced.notify_one();
    }

    /// Waits until the table is next replaced (or was, since the last wait).
    pub async fn changed(&self) {
        self.replaced.notified().await;
    }

    /// Every remote group version, ordered by name.
    pub fn all(&self) -> Vec<Arc<Remote>> {
        self.by_name
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The remote group version of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Remote>> {
        self.by_name
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The remote group version a request path is under: `/apis/<group>/<version>` and
    /// everything below it.
    pub fn route(&self, path: &str) -> Option<Arc<Remote>> {
        let rest = path.strip_prefix("/apis/")?;
        let mut parts = rest.splitn(3, '/');
        let (group, version) = (parts.next()?, parts.next()?);
        if group.is_empty() || version.is_empty() {
            return None;
        }
        let by_name = self.by_name.read().unwrap_or_else(|p| p.into_inner());
        if by_name.is_empty() {
            return None;
        }
        by_name.get(&format!("{version}.{group}")).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_under_a_remote_group_version_are_routed_to_it() {
        let object = json!({
            "metadata": {"name": "v1alpha1.wardle.example.com"},
            "spec": {
                "group": "wardle.example.com",
                "version": "v1alpha1",
                "service": {"namespace": "default", "name": "api", "port": 8443},
                "groupPriorityMinimum": 2000,
                "versionPriority": 200,
            },
            "status": {"conditions": [{"type": "Available", "status": "True"}]},
        });
        let remote = Remote::from_api_service(&object, None, None).unwrap();
        assert!(remote.available && remote.tls.is_err());
        assert_eq!(
            remote.url("/apis/wardle.example.com/v1alpha1"),
            "https://api.default.svc:8443/apis/wardle.example.com/v1alpha1"
        );
        let table = RemoteApis::default();
        table.replace(BTreeMap::from([(remote.name.clone(), Arc::new(remote))]));
        for path in [
            "/apis/wardle.example.com/v1alpha1",
            "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders/x",
        ] {
            assert!(table.route(path).is_some(), "{path}");
        }
        for path in [
            "/apis/wardle.example.com",
            "/apis/wardle.example.com/v1",
            "/api/v1/pods",
        ] {
            assert!(table.route(path).is_none(), "{path}");
        }
        let local =
            json!({"metadata": {"name": "v1.apps"}, "spec": {"group": "apps", "version": "v1"}});
        assert!(Remote::from_api_service(&local, None, None).is_none());
    }
}
