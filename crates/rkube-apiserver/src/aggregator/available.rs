//! The Available condition of remote APIServices, as upstream's remote availability
//! controller sets it: the Service must exist, listen on the port, and have a ready
//! endpoint; then the backend must answer `GET /apis/<group>/<version>` with a 2xx within
//! five seconds. The loop runs when APIServices, Services or EndpointSlices change and at
//! least every resync period; a backend is probed again when what leads to it changed or the
//! period has passed. Its discovery answer is kept for `/apis` and aggregated discovery.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rkube_api::ApiError;
use rkube_api::registry::ResourceType;
use serde_json::{Value, json};

use super::proxy;
use super::remote::Remote;
use crate::app::App;
use crate::auth::UserInfo;
use crate::cache::Freshness;
use crate::decode::FieldValidation;

/// How long the discovery check may take (upstream's client timeout).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How many discovery checks are made at once (upstream's availability controller).
const DISCOVERY_ATTEMPTS: usize = 5;

/// How often the loop looks again while the watch cache cannot wake it.
const POLL_WITHOUT_CACHE: Duration = Duration::from_secs(1);

/// An Available condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Availability {
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl Availability {
    fn passed() -> Self {
        Self {
            status: "True",
            reason: "Passed",
            message: "all checks passed".to_owned(),
        }
    }

    fn failed(reason: &'static str, message: String) -> Self {
        Self {
            status: "False",
            reason,
            message,
        }
    }
}

/// The last probe of one APIService.
struct Probe {
    at: Instant,
    /// What led to the backend then: the spec and the outcome of the Service checks.
    fingerprint: String,
}

impl App {
    /// Keeps the Available condition, the proxy's table, the discovery and the OpenAPI
    /// documents of remote APIServices current, until the process ends; backends are probed
    /// again at least every `resync`.
    pub async fn run_remote_api_services(self: Arc<Self>, resync: Duration) {
        futures::join!(
            self.clone().run_availability(resync),
            self.run_remote_openapi()
        );
    }

    /// The availability loop.
    async fn run_availability(self: Arc<Self>, resync: Duration) {
        let mut probes: HashMap<String, Probe> = HashMap::new();
        let mut changes = None;
        loop {
            if changes.is_none() {
                changes = self.change_receivers().await;
            }
            if let Err(err) = self.sync_remote_api_services(&mut probes, resync).await {
                tracing::warn!(error = %err, "checking remote APIServices");
            }
            let wait = match &changes {
                Some(_) => resync,
                None => POLL_WITHOUT_CACHE.min(resync),
            };
            let changed = async {
                match changes.as_mut() {
                    Some(receivers) => {
                        let waits = receivers.iter_mut().map(|r| Box::pin(r.changed()));
                        let (result, _, _) = futures::future::select_all(waits).await;
                        if result.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = changed => {}
            }
        }
    }

    /// Receivers that wake on APIService, Service and EndpointSlice events, once the watch
    /// cache serves them.
    async fn change_receivers(
        &self,
    ) -> Option<Vec<tokio::sync::watch::Receiver<rkube_store::Revision>>> {
        let mut receivers = Vec::new();
        for (group, kind) in [
            ("apiregistration.k8s.io", "APIService"),
            ("", "Service"),
            ("discovery.k8s.io", "EndpointSlice"),
        ] {
            let rt = self.resource(group, kind).ok()?;
            let cache = self.cache.ready_for(rt, Freshness::Any).await.ok()??;
            receivers.push(cache.subscribe());
        }
        Some(receivers)
    }

    /// One pass: checks what is due, writes changed conditions, rebuilds the table.
    async fn sync_remote_api_services(
        &self,
        probes: &mut HashMap<String, Probe>,
        resync: Duration,
    ) -> Result<(), ApiError> {
        let rt = self.resource("apiregistration.k8s.io", "APIService")?;
        let objects: Vec<Value> = self
            .list_current(rt, None)
            .await?
            .into_iter()
            .filter(|o| o["spec"]["service"].is_object())
            .collect();
        let passes = objects.iter().map(|object| {
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            let last = probes.get(name).map(|p| (p.at, p.fingerprint.clone()));
            self.sync_remote(rt, object, last, resync)
        });
        let mut table = BTreeMap::new();
        for (remote, probe) in futures::future::join_all(passes)
            .await
            .into_iter()
            .flatten()
        {
            if let Some(probe) = probe {
                probes.insert(remote.name.clone(), probe);
            }
            table.insert(remote.name.clone(), Arc::new(remote));
        }
        probes.retain(|name, _| table.contains_key(name));
        self.remotes.replace(table);
        Ok(())
    }

    /// Checks one remote APIService when due; its table entry, and the probe if one ran.
    async fn sync_remote(
        &self,
        rt: &'static ResourceType,
        object: &Value,
        last: Option<(Instant, String)>,
        resync: Duration,
    ) -> Option<(Remote, Option<Probe>)> {
        let previous = self
            .remotes
            .get(object["metadata"]["name"].as_str().unwrap_or_default());
        let resources = previous.and_then(|p| p.resources.clone());
        let mut remote =
            Remote::from_api_service(object, self.config.front_proxy.as_ref(), resources)?;
        let checked = self.check_service(&remote).await;
        let fingerprint = format!("{}|{checked:?}", object["spec"]);
        let due = match &last {
            None => true,
            Some((at, seen)) => *seen != fingerprint || at.elapsed() >= resync,
        };
        if !due {
            return Some((remote, None));
        }
        let availability = match checked {
            Err(failed) => failed,
            Ok(()) => {
                let (availability, resources) = self.discovery_check(&remote).await;
                if resources.is_some() {
                    remote.resources = resources;
                }
                availability
            }
        };
        remote.available = availability.status == "True";
        if let Err(err) = self
            .set_remote_available(rt, &remote.name, &availability)
            .await
        {
            tracing::warn!(apiservice = %remote.name, error = %err, "updating APIService status");
        }
        let probe = Probe {
            at: Instant::now(),
            fingerprint,
        };
        Some((remote, Some(probe)))
    }

    /// The checks before the network one: the Service, its port and a ready endpoint.
    async fn check_service(&self, remote: &Remote) -> Result<(), Availability> {
        let (ns, name) = (&remote.namespace, &remote.service);
        let unknown = |reason: &'static str, err: String| Availability {
            status: "Unknown",
            reason,
            message: format!("service/{name} in {ns:?} cannot be checked due to: {err}"),
        };
        let services = self
            .resource("", "Service")
            .map_err(|e| unknown("ServiceAccessError", e.to_string()))?;
        let service = match self.lookup(services, Some(ns), name).await {
            Ok(s) => s,
            Err(ApiError::NotFound { .. }) => {
                return Err(Availability::failed(
                    "ServiceNotFound",
                    format!("service/{name} in {ns:?} is not present"),
                ));
            }
            Err(err) => return Err(unknown("ServiceAccessError", err.to_string())),
        };
        let kind = service["spec"]["type"].as_str().unwrap_or("ClusterIP");
        if kind != "ClusterIP" {
            return Ok(());
        }
        let Some(port) = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["port"].as_i64() == Some(i64::from(remote.port)))
        else {
            return Err(Availability::failed(
                "ServicePortError",
                format!(
                    "service/{name} in {ns:?} is not listening on port {}",
                    remote.port
                ),
            ));
        };
        let port_name = port["name"].as_str().unwrap_or_default();
        let slices_rt = self
            .resource("discovery.k8s.io", "EndpointSlice")
            .map_err(|e| unknown("EndpointsAccessError", e.to_string()))?;
        let slices: Vec<Value> = self
            .list_current(slices_rt, Some(ns))
            .await
            .map_err(|e| unknown("EndpointsAccessError", e.to_string()))?
            .into_iter()
            .filter(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == name.as_str())
            .collect();
        if slices.is_empty() {
            return Err(Availability::failed(
                "EndpointsNotFound",
                format!("cannot find endpointslices for service/{name} in {ns:?}"),
            ));
        }
        if !slices.iter().any(|s| has_ready_endpoint(s, port_name)) {
            return Err(Availability::failed(
                "MissingEndpoints",
                format!(
                    "endpointslices for service/{name} in {ns:?} have no addresses with port name {port_name:?}"
                ),
            ));
        }
        Ok(())
    }

    /// GETs the group version's discovery from the backend as `system:kube-aggregator`
    /// (system:masters, so the backend's authorization always allows it).
    async fn discovery_check(&self, remote: &Remote) -> (Availability, Option<Value>) {
        let path = format!("/apis/{}/{}", remote.group, remote.version);
        let url = remote.url(&path);
        let user = UserInfo::new(
            "system:kube-aggregator",
            "",
            vec!["system:masters".to_owned()],
        );
        let failing = |reason: String| {
            Availability::failed(
                "FailedDiscoveryCheck",
                format!("failing or missing response from {url}: {reason}"),
            )
        };
        // As upstream, five attempts at once: one success is enough.
        let attempt = || async {
            match proxy::get(self, remote, &path, &user, CHECK_TIMEOUT).await {
                Ok((status, body)) if (200..300).contains(&status) => Ok(body),
                Ok((status, _)) => Err(format!("bad status from {url}: {status}")),
                Err(err) => Err(format!("Get {url:?}: {err}")),
            }
        };
        let attempts = (0..DISCOVERY_ATTEMPTS).map(|_| Box::pin(attempt()));
        match futures::future::select_ok(attempts).await {
            Ok((body, _)) => {
                let resources = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .filter(|v| v["resources"].is_array());
                (Availability::passed(), resources)
            }
            Err(reason) => (failing(reason), None),
        }
    }

    /// Writes the Available condition when it differs from the stored one (the transition
    /// time moves only when the status does).
    async fn set_remote_available(
        &self,
        rt: &'static ResourceType,
        name: &str,
        availability: &Availability,
    ) -> Result<(), ApiError> {
        let current = self.lookup(rt, None, name).await?;
        if next_conditions(&current, availability, "").is_none() {
            return Ok(());
        }
        let now = crate::rest::now_rfc3339();
        let result = self
            .guaranteed_update(
                rt,
                None,
                name,
                Some("status"),
                false,
                None,
                FieldValidation::Ignore,
                None,
                |current| {
                    let mut next = current.clone();
                    if let Some(conditions) = next_conditions(current, availability, &now) {
                        next["status"]["conditions"] = conditions;
                    }
                    Ok(next)
                },
            )
            .await;
        match result {
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

/// Whether an EndpointSlice has a ready endpoint and a port named `port_name`.
fn has_ready_endpoint(slice: &Value, port_name: &str) -> bool {
    let ready = slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["conditions"]["ready"].as_bool() != Some(false));
    let port = slice["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["name"].as_str().unwrap_or_default() == port_name && p["port"].is_number());
    ready && port
}

/// The conditions of `object` with Available set to `availability`; `None` when it says
/// that already.
fn next_conditions(object: &Value, availability: &Availability, now: &str) -> Option<Value> {
    let conditions = object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let old = conditions.iter().find(|c| c["type"] == "Available");
    if let Some(old) = old
        && old["status"] == availability.status
        && old["reason"] == availability.reason
        && old["message"] == availability.message.as_str()
    {
        return None;
    }
    let transition = match old {
        Some(old) if old["status"] == availability.status => old["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let mut next: Vec<Value> = conditions
        .iter()
        .filter(|c| c["type"] != "Available")
        .cloned()
        .collect();
    next.push(json!({
        "type": "Available",
        "status": availability.status,
        "lastTransitionTime": transition,
        "reason": availability.reason,
        "message": availability.message,
    }));
    Some(Value::Array(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_condition_is_rewritten_only_when_it_changes() {
        let object = json!({"status": {"conditions": [{
            "type": "Available", "status": "True", "reason": "Passed",
            "message": "all checks passed", "lastTransitionTime": "2026-01-01T00:00:00Z",
        }]}});
        assert!(next_conditions(&object, &Availability::passed(), "now").is_none());
        let failed = Availability::failed("MissingEndpoints", "none".to_owned());
        let next = next_conditions(&object, &failed, "now").unwrap();
        assert_eq!(next[0]["lastTransitionTime"], "now");
        assert_eq!(next[0]["reason"], "MissingEndpoints");
        let other = Availability::failed("ServiceNotFound", "gone".to_owned());
        let again =
            next_conditions(&json!({"status": {"conditions": next}}), &other, "later").unwrap();
        assert_eq!(again[0]["lastTransitionTime"], "now");
    }

    #[test]
    fn an_endpoint_counts_when_ready_and_on_the_named_port() {
        let slice = json!({
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": 8443}],
        });
        assert!(has_ready_endpoint(&slice, "https"));
        assert!(!has_ready_endpoint(&slice, ""));
        let unready = json!({
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": false}}],
            "ports": [{"name": "https", "port": 8443}],
        });
        assert!(!has_ready_endpoint(&unready, "https"));
    }
}
