//! ConfigMaps and Secrets as a node recently read them, for refreshing the volumes of running
//! pods. Like upstream's cache-based object manager (`configMapAndSecretChangeDetectionStrategy:
//! Cache`), a read younger than a short TTL is reused, so a node's periodic refresh costs the
//! API server one read per object per TTL, not one per pod. Starting a pod reads directly.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use tokio::sync::Mutex;

/// How long a read is reused.
pub const TTL: Duration = Duration::from_secs(5);

type Entries<K> = Mutex<HashMap<(String, String), (Instant, Option<K>)>>;

/// The node's recent reads, by namespace and name; an object the API does not have is
/// remembered as absent.
#[derive(Default)]
pub struct SourceCache {
    config_maps: Entries<ConfigMap>,
    secrets: Entries<Secret>,
}

impl SourceCache {
    /// ConfigMap `ns/name`, through `api` (its namespace's) when the last read is stale.
    pub async fn config_map(
        &self,
        api: &Api<ConfigMap>,
        ns: &str,
        name: &str,
    ) -> Option<ConfigMap> {
        read(&self.config_maps, api, ns, name, Instant::now()).await
    }

    /// Secret `ns/name`, through `api` (its namespace's) when the last read is stale.
    pub async fn secret(&self, api: &Api<Secret>, ns: &str, name: &str) -> Option<Secret> {
        read(&self.secrets, api, ns, name, Instant::now()).await
    }
}

async fn read<K>(
    entries: &Entries<K>,
    api: &Api<K>,
    ns: &str,
    name: &str,
    now: Instant,
) -> Option<K>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let key = (ns.to_owned(), name.to_owned());
    if let Some((at, object)) = entries.lock().await.get(&key)
        && now.duration_since(*at) < TTL
    {
        return object.clone();
    }
    // A failed read is not remembered: the next refresh tries again.
    let object = api.get_opt(name).await.ok()?;
    let mut entries = entries.lock().await;
    entries.retain(|_, (at, _)| now.duration_since(*at) < TTL);
    entries.insert(key, (now, object.clone()));
    object
}
