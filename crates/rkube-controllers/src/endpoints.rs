//! The endpoints controller: each Service with a selector gets an Endpoints object of the same
//! name listing its pods' addresses, ready ones under `addresses` and the others under
//! `notReadyAddresses`, with each Service port resolved against each pod's container ports.
//! Services without a selector are left alone: their Endpoints belong to whoever wrote them
//! (the `kubernetes` Service's are the API server's).
//!
//! The pieces shared with the EndpointSlice controller live here too: which pods count, pod
//! readiness, target port resolution, and the informers both run on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::informer::{
    AbortOnDrop, Change, Next, WorkQueue, feed, is_conflict, is_not_found, key_of,
};
use crate::informer::{KeyIndex, SharedInformers};

/// Upstream's cap on addresses in one Endpoints object; beyond it the object is truncated
/// and annotated.
pub const MAX_ENDPOINTS: usize = 1000;
/// The annotation marking a truncated Endpoints object.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// The label on objects of a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// The label naming the controller of an Endpoints object.
pub const ENDPOINTS_MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";

/// Whether the pod's Ready condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// Whether the pod has finished (Succeeded or Failed).
pub fn is_pod_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether a pod belongs among a Service's endpoints at all: it has an IP, has not finished,
/// and (unless `include_terminating`) is not being deleted.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if is_pod_terminal(pod) {
        return false;
    }
    if pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .is_none_or(str::is_empty)
    {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// Whether the Service is headless (`clusterIP: None`).
pub fn is_headless(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None")
}

/// The Service's IP family, as an EndpointSlice address type.
pub fn address_type(service: &Service) -> &'static str {
    let first = service
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first().cloned());
    match first.as_deref() {
        Some("IPv6") => "IPv6",
        _ => "IPv4",
    }
}

/// The pod's address of the given family (`IPv4` or `IPv6`).
pub fn pod_ip(pod: &Pod, address_type: &str) -> Option<String> {
    let status = pod.status.as_ref()?;
    let mut ips: Vec<&str> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.as_str())
        .collect();
    if let Some(ip) = status.pod_ip.as_deref() {
        ips.insert(0, ip);
    }
    ips.into_iter()
        .filter(|ip| !ip.is_empty())
        .find(|ip| ip.contains(':') == (address_type == "IPv6"))
        .map(str::to_owned)
}

/// The port a Service port reaches on `pod`: a number as is, a name looked up among the pod's
/// container ports of the same protocol; `None` when the pod has no port of that name.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            pod.spec.as_ref()?.containers.iter().find_map(|c| {
                c.ports.iter().flatten().find_map(|p| {
                    (p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                        .then_some(p.container_port)
                })
            })
        }
    }
}

/// The hostname a pod has in a Service's DNS: its `spec.hostname` when its `spec.subdomain`
/// names the Service.
pub fn pod_hostname(pod: &Pod, service: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == service.metadata.name.as_deref()
        && pod.metadata.namespace == service.metadata.namespace)
        .then(|| hostname.to_owned())
}

/// A reference to a pod, as endpoints carry it.
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// The Service's selector as label requirements; `None` for a Service without one.
pub fn service_selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    service.spec.as_ref()?.selector.as_ref()
}

/// Whether `pod` is selected by `service` (same namespace, labels match the selector).
pub fn selects(service: &Service, pod: &Pod) -> bool {
    let Some(selector) = service_selector(service) else {
        return false;
    };
    if service.metadata.namespace != pod.metadata.namespace {
        return false;
    }
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The ports one pod serves for a Service, in the Service's port order; a port whose target
/// the pod lacks is left out, as upstream does.
pub fn pod_ports(pod: &Pod, service: &Service) -> Vec<EndpointPort> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|port| {
            Some(EndpointPort {
                name: port.name.clone().filter(|n| !n.is_empty()),
                port: find_port(pod, port)?,
                protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: port.app_protocol.clone(),
            })
        })
        .collect()
}

fn has_ports(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| !p.is_empty())
}

/// Pods serving one set of ports: the ports, the ready addresses and the others.
type PortGroup = (
    Vec<EndpointPort>,
    Vec<EndpointAddress>,
    Vec<EndpointAddress>,
);

/// The Endpoints subsets of `service` given the pods it selects: one subset per distinct set of
/// ports, addresses sorted by IP. A not-ready pod is listed under `notReadyAddresses`, or
/// among the ready ones when the Service publishes not-ready addresses.
pub fn endpoint_subsets(service: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    let publish_not_ready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let family = address_type(service);
    let mut groups: BTreeMap<String, PortGroup> = BTreeMap::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(ip) = pod_ip(pod, family) else {
            continue;
        };
        let ports = pod_ports(pod, service);
        if ports.is_empty() && (has_ports(service) || !is_headless(service)) {
            continue;
        }
        let address = EndpointAddress {
            ip,
            hostname: pod_hostname(pod, service),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_reference(pod)),
        };
        let mut sorted = ports.clone();
        sorted.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let key = serde_json::to_string(&sorted).unwrap_or_default();
        let group = groups
            .entry(key)
            .or_insert_with(|| (sorted, Vec::new(), Vec::new()));
        if publish_not_ready || is_pod_ready(pod) {
            group.1.push(address);
        } else {
            group.2.push(address);
        }
    }
    let by_ip = |a: &EndpointAddress, b: &EndpointAddress| {
        (&a.ip, a.target_ref.as_ref().and_then(|r| r.uid.as_ref()))
            .cmp(&(&b.ip, b.target_ref.as_ref().and_then(|r| r.uid.as_ref())))
    };
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// Cuts subsets down to [`MAX_ENDPOINTS`] addresses, ready ones kept first; true if it did.
pub fn truncate_subsets(subsets: &mut [EndpointSubset]) -> bool {
    let total: usize = subsets
        .iter()
        .map(|s| {
            s.addresses.as_ref().map_or(0, Vec::len)
                + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        })
        .sum();
    if total <= MAX_ENDPOINTS {
        return false;
    }
    let mut budget = MAX_ENDPOINTS;
    for subset in subsets.iter_mut() {
        if let Some(ready) = subset.addresses.as_mut() {
            ready.truncate(budget);
            budget -= ready.len();
        }
    }
    for subset in subsets.iter_mut() {
        if let Some(not_ready) = subset.not_ready_addresses.as_mut() {
            not_ready.truncate(budget);
            budget -= not_ready.len();
        }
    }
    true
}

/// The Endpoints object `service` should have, given the pods it selects.
pub fn desired_endpoints(service: &Service, pods: &[&Pod]) -> Endpoints {
    let mut subsets = endpoint_subsets(service, pods);
    let truncated = truncate_subsets(&mut subsets);
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(ENDPOINTS_MANAGED_BY.into(), "endpoint-controller".into());
    let mut endpoints = Endpoints {
        subsets: (!subsets.is_empty()).then_some(subsets),
        ..Endpoints::default()
    };
    endpoints.metadata.name = service.metadata.name.clone();
    endpoints.metadata.namespace = service.metadata.namespace.clone();
    endpoints.metadata.labels = Some(labels);
    if truncated {
        endpoints.metadata.annotations = Some(BTreeMap::from([(
            OVER_CAPACITY.to_owned(),
            "truncated".to_owned(),
        )]));
    }
    endpoints
}

/// A Service's queue key: namespace and name.
pub type ServiceKey = (String, String);

/// The caches a Service-driven controller reads: Services and pods.
#[derive(Clone)]
pub struct ServiceCaches {
    /// Every Service.
    pub services: Store<Service>,
    /// Every pod.
    pub pods: Store<Pod>,
    /// Every pod, by namespace: a Service selects only pods of its own.
    pub pods_by_namespace: KeyIndex<Pod>,
}

impl ServiceCaches {
    /// The Service `key` names, if it exists.
    pub fn service(&self, key: &ServiceKey) -> Option<Arc<Service>> {
        self.services.get(&ObjectRef::new(&key.1).within(&key.0))
    }

    /// The pods `service` selects.
    pub fn selected_pods(&self, service: &Service) -> Vec<Arc<Pod>> {
        let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        let mut pods = self.pods_by_namespace.get(namespace);
        pods.retain(|pod| selects(service, pod));
        pods
    }
}

/// The Services each pod (namespace, name) was last seen selected by.
type PodServices = HashMap<(String, String), HashSet<ServiceKey>>;

/// Starts Service and pod informers queueing a Service whenever it or a pod it selects (or
/// selected before the change) changes. The returned guards stop the informers.
pub async fn service_informers(
    informers: &SharedInformers,
    queue: &WorkQueue<ServiceKey>,
) -> (ServiceCaches, Vec<AbortOnDrop>) {
    let (services, service_events) = informers.informer::<Service>().await;
    let (pods, pod_events) = informers.informer::<Pod>().await;
    let pods_by_namespace = crate::podutil::pods_by_namespace(informers).await;
    let services_feed = tokio::spawn(feed(
        queue.clone(),
        service_events,
        |change: &Change<Service>| vec![key_of(change.object())],
    ));
    // Which Services each pod was last seen in, so that a pod whose labels stop matching
    // still updates the Service it left. Pods in no Service are not kept.
    let memo: Arc<Mutex<PodServices>> = Arc::default();
    let reader = services.clone();
    let pods_feed = tokio::spawn(feed(
        queue.clone(),
        pod_events,
        move |change: &Change<Pod>| {
            let pod = change.object();
            let pod_key = key_of(pod);
            let now: HashSet<ServiceKey> = reader
                .state_filter(|svc| selects(svc, pod))
                .iter()
                .map(|svc| key_of(svc.as_ref()))
                .collect();
            let mut memo = memo.lock().unwrap_or_else(|p| p.into_inner());
            let before = match change {
                Change::Added(_) | Change::Updated { .. } if !now.is_empty() => {
                    memo.insert(pod_key, now.clone())
                }
                Change::Added(_) | Change::Updated { .. } | Change::Deleted(_) => {
                    memo.remove(&pod_key)
                }
            };
            now.into_iter()
                .chain(before.into_iter().flatten())
                .collect()
        },
    ));
    (
        ServiceCaches {
            services,
            pods,
            pods_by_namespace,
        },
        vec![AbortOnDrop(services_feed), AbortOnDrop(pods_feed)],
    )
}

/// Keeps each selector Service's Endpoints object true.
pub struct EndpointsController {
    client: kube::Client,
    informers: SharedInformers,
}

impl EndpointsController {
    /// A controller acting through `client`.
    pub fn new(client: impl Into<SharedInformers>) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            client: informers.client().clone(),
            informers,
        }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let queue = WorkQueue::new();
        let (caches, mut guards) = service_informers(&self.informers, &queue).await;
        // Endpoints deleted by someone else are written again.
        let (_endpoints, endpoint_events) = self.informers.informer::<Endpoints>().await;
        guards.push(AbortOnDrop(tokio::spawn(feed(
            queue.clone(),
            endpoint_events,
            |change: &Change<Endpoints>| match change {
                Change::Deleted(ep) => vec![key_of(ep.as_ref())],
                Change::Added(_) | Change::Updated { .. } => Vec::new(),
            },
        ))));
        if caches.services.wait_until_ready().await.is_err()
            || caches.pods.wait_until_ready().await.is_err()
        {
            return;
        }
        let this = &self;
        let caches = &caches;
        queue
            .run("endpoint", |key| async move {
                this.reconcile(caches, &key).await
            })
            .await;
    }

    /// Brings the Endpoints of the Service `key` names up to date. Idempotent.
    pub async fn reconcile(
        &self,
        caches: &ServiceCaches,
        key: &ServiceKey,
    ) -> Result<Next, kube::Error> {
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), &key.0);
        let Some(service) = caches.service(key) else {
            // The Service is gone: so are its endpoints.
            return match api.delete(&key.1, &DeleteParams::default()).await {
                Ok(_) => Ok(Next::Wait),
                Err(err) if is_not_found(&err) => Ok(Next::Wait),
                Err(err) => Err(err),
            };
        };
        if service_selector(&service).is_none() {
            return Ok(Next::Wait);
        }
        let pods = caches.selected_pods(&service);
        let refs: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
        let mut desired = desired_endpoints(&service, &refs);
        match api.get_opt(&key.1).await? {
            None => match api.create(&PostParams::default(), &desired).await {
                Ok(_) => Ok(Next::Wait),
                Err(err) if is_conflict(&err) => Ok(Next::After(std::time::Duration::ZERO)),
                Err(err) => Err(err),
            },
            Some(current) => {
                let mut annotations = current.metadata.annotations.clone().unwrap_or_default();
                annotations.remove(OVER_CAPACITY);
                if let Some(extra) = desired.metadata.annotations.take() {
                    annotations.extend(extra);
                }
                if current.subsets.clone().unwrap_or_default()
                    == desired.subsets.clone().unwrap_or_default()
                    && current.metadata.labels == desired.metadata.labels
                    && current.metadata.annotations.clone().unwrap_or_default() == annotations
                {
                    return Ok(Next::Wait);
                }
                let mut next = current;
                next.subsets = desired.subsets;
                next.metadata.labels = desired.metadata.labels;
                next.metadata.annotations = Some(annotations);
                api.replace(&key.1, &PostParams::default(), &next).await?;
                Ok(Next::Wait)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn pod(name: &str, ip: &str, ready: bool, extra: serde_json::Value) -> Pod {
        let mut value = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i", "ports": [
                {"name": "http", "containerPort": 8080, "protocol": "TCP"}
            ]}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}
            ]},
        });
        merge(&mut value, extra);
        serde_json::from_value(value).unwrap()
    }

    pub(crate) fn service(extra: serde_json::Value) -> Service {
        let mut value = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.43.0.10",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]},
        });
        merge(&mut value, extra);
        serde_json::from_value(value).unwrap()
    }

    fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
        match (base, extra) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (slot, v) => *slot = v,
        }
    }

    fn ips(addresses: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        addresses.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn ready_and_not_ready_pods_are_split_and_named_ports_resolved() {
        let svc = service(json!({}));
        let a = pod("a", "10.42.0.3", true, json!({}));
        let b = pod("b", "10.42.0.2", true, json!({}));
        let c = pod("c", "10.42.0.4", false, json!({}));
        let subsets = endpoint_subsets(&svc, &[&a, &b, &c]);
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), ["10.42.0.2", "10.42.0.3"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.42.0.4"]);
        let port = &subsets[0].ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
        let address = &subsets[0].addresses.as_ref().unwrap()[0];
        assert_eq!(address.node_name.as_deref(), Some("n1"));
        assert_eq!(
            address.target_ref.as_ref().unwrap().name.as_deref(),
            Some("b")
        );
    }

    #[test]
    fn pods_whose_ports_differ_land_in_different_subsets() {
        let svc = service(json!({}));
        let a = pod("a", "10.42.0.2", true, json!({}));
        let b = pod(
            "b",
            "10.42.0.3",
            true,
            json!({"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"name": "http", "containerPort": 9090}]}]}}),
        );
        // A pod without the named port serves nothing for this Service.
        let c = pod(
            "c",
            "10.42.0.4",
            true,
            json!({"spec": {"containers": [{"name": "c", "image": "i"}]}}),
        );
        let subsets = endpoint_subsets(&svc, &[&a, &b, &c]);
        let ports: Vec<i32> = subsets
            .iter()
            .map(|s| s.ports.as_ref().unwrap()[0].port)
            .collect();
        assert_eq!(ports, [8080, 9090]);
        assert_eq!(ips(&subsets[1].addresses), ["10.42.0.3"]);
    }

    #[test]
    fn pods_without_ip_finished_or_terminating_are_left_out() {
        let svc = service(json!({}));
        let no_ip = pod("a", "", true, json!({}));
        let done = pod(
            "b",
            "10.42.0.3",
            false,
            json!({"status": {"phase": "Succeeded"}}),
        );
        let going = pod(
            "c",
            "10.42.0.4",
            true,
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        );
        assert!(endpoint_subsets(&svc, &[&no_ip, &done, &going]).is_empty());
        // Publishing not-ready addresses keeps terminating pods, as ready.
        let publish = service(json!({"spec": {"publishNotReadyAddresses": true}}));
        let subsets = endpoint_subsets(&publish, &[&no_ip, &done, &going]);
        assert_eq!(ips(&subsets[0].addresses), ["10.42.0.4"]);
    }

    #[test]
    fn publish_not_ready_addresses_lists_unready_pods_as_ready() {
        let svc = service(json!({"spec": {"publishNotReadyAddresses": true}}));
        let a = pod("a", "10.42.0.2", false, json!({}));
        let subsets = endpoint_subsets(&svc, &[&a]);
        assert_eq!(ips(&subsets[0].addresses), ["10.42.0.2"]);
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn headless_services_without_ports_list_addresses_and_hostnames() {
        let svc = service(json!({"spec": {"clusterIP": "None", "ports": null}}));
        let a = pod(
            "a",
            "10.42.0.2",
            true,
            json!({"spec": {"hostname": "a-0", "subdomain": "web"}}),
        );
        let subsets = endpoint_subsets(&svc, &[&a]);
        assert_eq!(ips(&subsets[0].addresses), ["10.42.0.2"]);
        assert!(subsets[0].ports.is_none());
        assert_eq!(
            subsets[0].addresses.as_ref().unwrap()[0]
                .hostname
                .as_deref(),
            Some("a-0")
        );
        let endpoints = desired_endpoints(&svc, &[&a]);
        assert_eq!(
            endpoints.metadata.labels.as_ref().unwrap()[HEADLESS_LABEL],
            ""
        );
        assert_eq!(endpoints.metadata.labels.as_ref().unwrap()["team"], "a");
        // A ClusterIP Service without ports has no endpoints.
        let plain = service(json!({"spec": {"ports": null}}));
        assert!(endpoint_subsets(&plain, &[&a]).is_empty());
    }

    #[test]
    fn numeric_and_missing_target_ports_resolve_to_numbers() {
        let a = pod("a", "10.42.0.2", true, json!({}));
        let port = |target: serde_json::Value| -> ServicePort {
            serde_json::from_value(json!({"port": 80, "targetPort": target})).unwrap()
        };
        assert_eq!(find_port(&a, &port(json!(8443))), Some(8443));
        assert_eq!(find_port(&a, &port(json!("http"))), Some(8080));
        assert_eq!(find_port(&a, &port(json!("nope"))), None);
        assert_eq!(find_port(&a, &port(serde_json::Value::Null)), Some(80));
        let udp: ServicePort =
            serde_json::from_value(json!({"port": 80, "targetPort": "http", "protocol": "UDP"}))
                .unwrap();
        assert_eq!(find_port(&a, &udp), None);
    }

    #[test]
    fn more_than_a_thousand_addresses_are_truncated_ready_first() {
        let svc = service(json!({}));
        let pods: Vec<Pod> = (0..1100)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.42.{}.{}", i / 250, i % 250),
                    i % 2 == 0,
                    json!({}),
                )
            })
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let endpoints = desired_endpoints(&svc, &refs);
        let subset = &endpoints.subsets.as_ref().unwrap()[0];
        assert_eq!(subset.addresses.as_ref().unwrap().len(), 550);
        assert_eq!(subset.not_ready_addresses.as_ref().unwrap().len(), 450);
        assert_eq!(
            endpoints.metadata.annotations.unwrap()[OVER_CAPACITY],
            "truncated"
        );
    }
}
