//! The Services behind containers' Docker-link environment variables
//! (`<SVC>_SERVICE_HOST` …), kept by one watch of every Service, as upstream's kubelet reads
//! them from its Service informer rather than listing them for each container.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// The namespace and name of the master Service, whose variables every pod gets.
const MASTER: (&str, &str) = ("default", "kubernetes");

/// Until the watch has listed once, upstream's kubelet refuses to make the environment of a
/// container (the variables of existing Services would be missing); the pod's sync is
/// retried.
#[derive(Debug, thiserror::Error)]
#[error("services have not yet been read at least once, cannot construct envvars")]
pub struct NotSynced;

/// Every Service of the cluster, by namespace and name.
#[derive(Default)]
pub struct ServiceCache {
    services: RwLock<HashMap<String, BTreeMap<String, Service>>>,
    synced: AtomicBool,
}

impl ServiceCache {
    /// The watch has listed once.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst)
    }

    /// The variables of the master Service and, with `links` (the pod's
    /// `enableServiceLinks`), of the Services of `namespace`, in name order; a Service of the
    /// namespace named like the master Service takes its place, as upstream.
    pub fn env(&self, namespace: &str, links: bool) -> Result<Vec<(String, String)>, NotSynced> {
        if !self.synced() {
            return Err(NotSynced);
        }
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
        if let Some(master) = services.get(MASTER.0).and_then(|s| s.get(MASTER.1)) {
            chosen.insert(MASTER.1, master);
        }
        if links {
            for (name, service) in services.get(namespace).into_iter().flatten() {
                chosen.insert(name.as_str(), service);
            }
        }
        Ok(chosen.into_values().flat_map(env_vars).collect())
    }

    fn replace(&self, listed: HashMap<String, BTreeMap<String, Service>>) {
        *self
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = listed;
        self.synced.store(true, Ordering::SeqCst);
    }

    fn apply(&self, service: Service) {
        let (Some(ns), Some(name)) = (
            service.metadata.namespace.clone(),
            service.metadata.name.clone(),
        ) else {
            return;
        };
        self.services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(ns)
            .or_default()
            .insert(name, service);
    }

    fn delete(&self, service: &Service) {
        let (Some(ns), Some(name)) = (
            service.metadata.namespace.as_deref(),
            service.metadata.name.as_deref(),
        ) else {
            return;
        };
        let mut services = self
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(names) = services.get_mut(ns) {
            names.remove(name);
            if names.is_empty() {
                services.remove(ns);
            }
        }
    }
}

/// Keeps `cache` up to date with every Service through `client`.
pub async fn watch_services(client: kube::Client, cache: std::sync::Arc<ServiceCache>) {
    let api: Api<Service> = Api::all(client);
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listing: HashMap<String, BTreeMap<String, Service>> = HashMap::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(service)) => {
                if let (Some(ns), Some(name)) = (
                    service.metadata.namespace.clone(),
                    service.metadata.name.clone(),
                ) {
                    listing.entry(ns).or_default().insert(name, service);
                }
            }
            Ok(watcher::Event::InitDone) => cache.replace(std::mem::take(&mut listing)),
            Ok(watcher::Event::Apply(service)) => cache.apply(service),
            Ok(watcher::Event::Delete(service)) => cache.delete(&service),
            Err(e) => tracing::debug!(error = %e, "service watch"),
        }
    }
}

/// The variables of one Service (none without a cluster IP), as upstream's
/// `envvars.FromServices`.
pub fn env_vars(service: &Service) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let name = service.metadata.name.clone().unwrap_or_default();
    let Some(spec) = &service.spec else {
        return out;
    };
    let Some(ip) = spec
        .cluster_ip
        .clone()
        .filter(|ip| ip != "None" && !ip.is_empty())
    else {
        return out;
    };
    let prefix = name.to_uppercase().replace('-', "_");
    let ports = spec.ports.clone().unwrap_or_default();
    out.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
    if let Some(first) = ports.first() {
        out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        let proto = first.protocol.clone().unwrap_or_else(|| "TCP".to_owned());
        out.push((
            format!("{prefix}_PORT"),
            format!("{}://{ip}:{}", proto.to_lowercase(), first.port),
        ));
    }
    for p in &ports {
        let proto = p.protocol.clone().unwrap_or_else(|| "TCP".to_owned());
        if let Some(pname) = &p.name {
            out.push((
                format!(
                    "{prefix}_SERVICE_PORT_{}",
                    pname.to_uppercase().replace('-', "_")
                ),
                p.port.to_string(),
            ));
        }
        let base = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
        out.push((
            base.clone(),
            format!("{}://{ip}:{}", proto.to_lowercase(), p.port),
        ));
        out.push((format!("{base}_PROTO"), proto.to_lowercase()));
        out.push((format!("{base}_PORT"), p.port.to_string()));
        out.push((format!("{base}_ADDR"), ip.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(ns: &str, name: &str, ip: &str, port: i32) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": port}]},
        }))
        .unwrap_or_default()
    }

    fn lookup<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
        env.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn no_environment_is_made_before_the_first_list() {
        let cache = ServiceCache::default();
        assert!(cache.env("default", true).is_err());
        cache.replace(HashMap::new());
        assert_eq!(cache.env("default", true).ok(), Some(Vec::new()));
    }

    #[test]
    fn a_namespace_gets_its_services_and_the_master_service() {
        let cache = ServiceCache::default();
        cache.replace(HashMap::new());
        cache.apply(service("default", "kubernetes", "10.43.0.1", 443));
        cache.apply(service("team", "web-front", "10.43.0.7", 80));
        cache.apply(service("team", "headless", "None", 80));
        cache.apply(service("other", "db", "10.43.0.9", 5432));
        let env = cache.env("team", true).unwrap_or_default();
        assert_eq!(lookup(&env, "WEB_FRONT_SERVICE_HOST"), Some("10.43.0.7"));
        assert_eq!(lookup(&env, "WEB_FRONT_SERVICE_PORT_HTTP"), Some("80"));
        assert_eq!(
            lookup(&env, "WEB_FRONT_PORT_80_TCP"),
            Some("tcp://10.43.0.7:80")
        );
        assert_eq!(lookup(&env, "KUBERNETES_SERVICE_HOST"), Some("10.43.0.1"));
        assert_eq!(lookup(&env, "HEADLESS_SERVICE_HOST"), None);
        assert_eq!(lookup(&env, "DB_SERVICE_HOST"), None);

        // Without service links only the master Service's.
        let env = cache.env("team", false).unwrap_or_default();
        assert_eq!(lookup(&env, "WEB_FRONT_SERVICE_HOST"), None);
        assert_eq!(lookup(&env, "KUBERNETES_SERVICE_HOST"), Some("10.43.0.1"));

        cache.delete(&service("team", "web-front", "", 0));
        let env = cache.env("team", true).unwrap_or_default();
        assert_eq!(lookup(&env, "WEB_FRONT_SERVICE_HOST"), None);
    }

    #[test]
    fn a_service_of_the_namespace_named_kubernetes_replaces_the_master_one() {
        let cache = ServiceCache::default();
        cache.replace(HashMap::new());
        cache.apply(service("default", "kubernetes", "10.43.0.1", 443));
        cache.apply(service("team", "kubernetes", "10.43.0.5", 8443));
        let env = cache.env("team", true).unwrap_or_default();
        let hosts: Vec<&str> = env
            .iter()
            .filter(|(k, _)| k == "KUBERNETES_SERVICE_HOST")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(hosts, ["10.43.0.5"]);
    }
}
