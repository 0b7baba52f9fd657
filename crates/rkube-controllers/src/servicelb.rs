//! The built-in service load balancer (k3s's ServiceLB model): a LoadBalancer Service with no
//! `loadBalancerClass` is given the addresses of the cluster's Ready nodes as its
//! `status.loadBalancer.ingress`, and every node's proxy serves the Service's ports on those
//! addresses. A Service that stops being a LoadBalancer loses them.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;

/// The addresses a node offers load-balanced Services on: its ExternalIP, else its
/// InternalIP. Nodes that are not Ready offer none.
fn node_address(node: &Node) -> Option<String> {
    let status = node.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return None;
    }
    let addresses = status.addresses.as_ref()?;
    let of = |kind: &str| {
        addresses
            .iter()
            .find(|a| a.type_ == kind && !a.address.contains(':'))
            .map(|a| a.address.clone())
    };
    of("ExternalIP").or_else(|| of("InternalIP"))
}

/// What `status.loadBalancer.ingress` should be for `service`, or `None` when this
/// controller leaves the Service alone.
pub fn desired_ingress(service: &Service, nodes: &[&Node]) -> Option<Vec<String>> {
    let spec = service.spec.as_ref()?;
    if spec.load_balancer_class.is_some() {
        return None;
    }
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return Some(Vec::new());
    }
    let mut ips: Vec<String> = nodes.iter().filter_map(|n| node_address(n)).collect();
    ips.sort();
    ips.dedup();
    Some(ips)
}

fn current_ingress(service: &Service) -> Vec<String> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect()
}

/// The controller.
pub struct ServiceLbController {
    client: kube::Client,
}

enum Change {
    Services(Vec<Service>),
    Service(Service),
    ServiceGone(Service),
    Nodes(Vec<Node>),
    Node(Node),
    NodeGone(Node),
}

fn key(meta: &kube::api::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

impl ServiceLbController {
    /// A controller acting through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    /// Runs until dropped.
    pub async fn run(self) {
        let services = watcher(
            Api::<Service>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .map(|e| (true, e.map(|e| wrap(e, |s| Kind::Service(Box::new(s))))));
        let nodes = watcher(
            Api::<Node>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .map(|e| (false, e.map(|e| wrap(e, |n| Kind::Node(Box::new(n))))));
        let mut events = futures::stream::select(services.boxed(), nodes.boxed());
        let mut services: BTreeMap<String, Service> = BTreeMap::new();
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        let mut listing_services = Vec::new();
        let mut listing_nodes = Vec::new();
        let (mut services_listed, mut nodes_listed) = (false, false);
        while let Some((is_service, event)) = events.next().await {
            let change = match event {
                Ok(watcher::Event::Init) => {
                    if is_service {
                        listing_services.clear();
                    } else {
                        listing_nodes.clear();
                    }
                    continue;
                }
                Ok(watcher::Event::InitApply(Kind::Service(s))) => {
                    listing_services.push(*s);
                    continue;
                }
                Ok(watcher::Event::InitApply(Kind::Node(n))) => {
                    listing_nodes.push(*n);
                    continue;
                }
                Ok(watcher::Event::InitDone) if is_service => {
                    Change::Services(std::mem::take(&mut listing_services))
                }
                Ok(watcher::Event::InitDone) => Change::Nodes(std::mem::take(&mut listing_nodes)),
                Ok(watcher::Event::Apply(Kind::Service(s))) => Change::Service(*s),
                Ok(watcher::Event::Apply(Kind::Node(n))) => Change::Node(*n),
                Ok(watcher::Event::Delete(Kind::Service(s))) => Change::ServiceGone(*s),
                Ok(watcher::Event::Delete(Kind::Node(n))) => Change::NodeGone(*n),
                Err(e) => {
                    tracing::debug!(error = %e, "servicelb watch");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Which services to look at after this change.
            let touched: Vec<String> = match change {
                Change::Services(list) => {
                    services = list.into_iter().map(|s| (key(&s.metadata), s)).collect();
                    services_listed = true;
                    services.keys().cloned().collect()
                }
                Change::Service(s) => {
                    let k = key(&s.metadata);
                    services.insert(k.clone(), s);
                    vec![k]
                }
                Change::ServiceGone(s) => {
                    services.remove(&key(&s.metadata));
                    Vec::new()
                }
                Change::Nodes(list) => {
                    nodes = list.into_iter().map(|n| (key(&n.metadata), n)).collect();
                    nodes_listed = true;
                    services.keys().cloned().collect()
                }
                Change::Node(n) => {
                    let k = key(&n.metadata);
                    let before = nodes.get(&k).and_then(node_address);
                    let after = node_address(&n);
                    nodes.insert(k, n);
                    if before == after {
                        Vec::new()
                    } else {
                        services.keys().cloned().collect()
                    }
                }
                Change::NodeGone(n) => {
                    nodes.remove(&key(&n.metadata));
                    services.keys().cloned().collect()
                }
            };
            if !services_listed || !nodes_listed {
                continue;
            }
            let node_list: Vec<&Node> = nodes.values().collect();
            for k in touched {
                let Some(service) = services.get(&k) else {
                    continue;
                };
                let Some(want) = desired_ingress(service, &node_list) else {
                    continue;
                };
                if want == current_ingress(service) {
                    continue;
                }
                self.write(service, &want).await;
            }
        }
    }

    async fn write(&self, service: &Service, ips: &[String]) {
        let ns = service.metadata.namespace.as_deref().unwrap_or("default");
        let name = service.metadata.name.as_deref().unwrap_or("");
        let api: Api<Service> = Api::namespaced(self.client.clone(), ns);
        let ingress: Vec<serde_json::Value> = ips
            .iter()
            .map(|ip| json!({"ip": ip, "ipMode": "VIP"}))
            .collect();
        let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
        if let Err(e) = api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(service = %format!("{ns}/{name}"), error = %e, "setting load balancer addresses");
        }
    }
}

enum Kind {
    Service(Box<Service>),
    Node(Box<Node>),
}

fn wrap<T>(event: watcher::Event<T>, kind: fn(T) -> Kind) -> watcher::Event<Kind> {
    match event {
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(kind(o)),
        watcher::Event::InitDone => watcher::Event::InitDone,
        watcher::Event::Apply(o) => watcher::Event::Apply(kind(o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(kind(o)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: &str, addresses: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {
                "conditions": [{"type": "Ready", "status": ready}],
                "addresses": addresses,
            }
        }))
        .unwrap()
    }

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "lb"}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn load_balancers_get_the_ready_nodes_addresses() {
        let a = node(
            "a",
            "True",
            json!([{"type": "InternalIP", "address": "192.0.2.2"}]),
        );
        let b = node(
            "b",
            "True",
            json!([{"type": "InternalIP", "address": "10.0.0.3"}, {"type": "ExternalIP", "address": "198.51.100.3"}]),
        );
        let c = node(
            "c",
            "False",
            json!([{"type": "InternalIP", "address": "192.0.2.4"}]),
        );
        let lb = service(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
        assert_eq!(
            desired_ingress(&lb, &[&a, &b, &c]),
            Some(vec!["192.0.2.2".to_owned(), "198.51.100.3".to_owned()])
        );
    }

    #[test]
    fn other_classes_are_left_alone_and_other_types_cleared() {
        let a = node(
            "a",
            "True",
            json!([{"type": "InternalIP", "address": "192.0.2.2"}]),
        );
        let classed =
            service(json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/lb"}));
        assert_eq!(desired_ingress(&classed, &[&a]), None);
        let plain = service(json!({"type": "ClusterIP"}));
        assert_eq!(desired_ingress(&plain, &[&a]), Some(Vec::new()));
    }
}
