//! rkube's service proxy: every node watches Services and EndpointSlices and programs one
//! nftables table of its own so that traffic to a ClusterIP, NodePort, externalIP or
//! load-balancer address reaches a ready endpoint, as upstream's nftables proxy mode does.
//! [`model`] reads the objects, [`rules`] computes the rule set (pure), [`proxier`] applies
//! it through a [`dataplane::Dataplane`]. [`netpol`] enforces NetworkPolicies for the node's
//! pods in a table of its own.

pub mod dataplane;
pub mod healthcheck;
pub mod metrics_http;
pub mod model;
pub mod netpol;
pub mod netpol_rules;
pub mod netpol_script;
pub mod proxier;
pub mod routes;
pub mod rules;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::{Api, Resource};
use tokio::sync::{Mutex, Notify};

pub use proxier::Metrics;

/// How the proxy runs.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// This node's name: its endpoints are the local ones.
    pub node_name: String,
    /// The rules' settings (table, pod and service ranges, node-port addresses).
    pub rules: rules::RulesConfig,
    /// How often the whole table is rewritten, whatever changed.
    pub full_sync_period: Duration,
    /// The shortest time between two syncs: changes within it are applied together.
    pub min_sync_period: Duration,
}

#[derive(Default)]
struct State {
    cluster: model::Cluster,
    services_listed: bool,
    slices_listed: bool,
}

fn key<K: Resource>(object: &K) -> (String, String) {
    let meta = object.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

async fn watch<K, S, F>(api: Api<K>, state: Arc<Mutex<S>>, changed: Arc<Notify>, apply: F)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: Fn(&mut S, WatchChange<K>),
{
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut listing: Vec<K> = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(object)) => listing.push(object),
            Ok(watcher::Event::InitDone) => {
                apply(
                    &mut *state.lock().await,
                    WatchChange::Relisted(std::mem::take(&mut listing)),
                );
                changed.notify_one();
            }
            Ok(watcher::Event::Apply(object)) => {
                apply(&mut *state.lock().await, WatchChange::Applied(object));
                changed.notify_one();
            }
            Ok(watcher::Event::Delete(object)) => {
                apply(&mut *state.lock().await, WatchChange::Deleted(object));
                changed.notify_one();
            }
            Err(e) => {
                tracing::debug!(error = %e, "proxy watch");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

enum WatchChange<K> {
    Relisted(Vec<K>),
    Applied(K),
    Deleted(K),
}

fn update<K: Resource + Clone>(
    map: &mut std::collections::BTreeMap<(String, String), K>,
    change: WatchChange<K>,
) {
    match change {
        WatchChange::Relisted(objects) => {
            *map = objects.into_iter().map(|o| (key(&o), o)).collect();
        }
        WatchChange::Applied(object) => {
            map.insert(key(&object), object);
        }
        WatchChange::Deleted(object) => {
            map.remove(&key(&object));
        }
    }
}

/// Runs the proxy until `stop` resolves. The rules stay in place when it returns, so that
/// Services keep working while the agent restarts.
pub async fn run(
    client: kube::Client,
    config: ProxyConfig,
    dataplane: Arc<dyn dataplane::Dataplane>,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) {
    let state = Arc::new(Mutex::new(State::default()));
    let changed = Arc::new(Notify::new());
    let services = tokio::spawn(watch(
        Api::<Service>::all(client.clone()),
        state.clone(),
        changed.clone(),
        |s: &mut State, c| {
            if matches!(c, WatchChange::Relisted(_)) {
                s.services_listed = true;
            }
            update(&mut s.cluster.services, c);
        },
    ));
    let slices = tokio::spawn(watch(
        Api::<EndpointSlice>::all(client),
        state.clone(),
        changed.clone(),
        |s: &mut State, c| {
            if matches!(c, WatchChange::Relisted(_)) {
                s.slices_listed = true;
            }
            update(&mut s.cluster.slices, c);
        },
    ));
    let mut proxier = proxier::Proxier::new(
        config.rules.clone(),
        dataplane,
        config.full_sync_period,
        metrics,
    );
    let mut health = healthcheck::HealthServers::default();
    let sync_loop = async {
        let mut retry: Option<Duration> = None;
        loop {
            match retry {
                // A periodic wake-up brings the full resync when it is due.
                None => {
                    let _ = tokio::time::timeout(config.full_sync_period, changed.notified()).await;
                }
                Some(delay) => {
                    let _ = tokio::time::timeout(delay, changed.notified()).await;
                }
            }
            tokio::time::sleep(config.min_sync_period).await;
            let ports = {
                let state = state.lock().await;
                if !state.services_listed || !state.slices_listed {
                    continue;
                }
                state.cluster.service_ports(&config.node_name)
            };
            match proxier.sync(&ports, std::time::Instant::now()) {
                Ok(()) => {
                    retry = None;
                    health.sync(healthcheck::desired(&ports)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "programming service rules");
                    retry = Some(Duration::from_secs(1));
                }
            }
        }
    };
    tokio::select! {
        () = sync_loop => {}
        () = stop => {}
    }
    services.abort();
    slices.abort();
}
