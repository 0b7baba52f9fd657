//! The built-in service load balancer (k3s's ServiceLB model): a LoadBalancer Service with no
//! `loadBalancerClass` is given the addresses of the cluster's Ready nodes as its
//! `status.loadBalancer.ingress`, and every node's proxy serves the Service's ports on those
//! addresses. A Service that stops being a LoadBalancer loses them.

use k8s_openapi::api::core::v1::{Node, Service};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;

use crate::informer::{AbortOnDrop, Change, Next, SharedInformers, WorkQueue, feed, key_of};
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
    informers: SharedInformers,
}

impl ServiceLbController {
    /// A controller acting through `client`.
    pub fn new(client: impl Into<SharedInformers>) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            client: informers.client().clone(),
            informers,
        }
    }

    /// Runs until dropped.
    pub async fn run(self) {
        let queue = WorkQueue::new();
        let (services, service_changes) = self.informers.informer::<Service>().await;
        let (nodes, node_changes) = self.informers.informer::<Node>().await;
        let load_balancers = services.clone();
        let _feeds = [
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                service_changes,
                |change: &Change<Service>| match change {
                    Change::Deleted(_) => Vec::new(),
                    Change::Added(s) | Change::Updated { new: s, .. } => vec![key_of(s.as_ref())],
                },
            ))),
            // A node's address counts only while it is Ready: when that changes, every
            // LoadBalancer Service looks again.
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                node_changes,
                move |change: &Change<Node>| {
                    let moved = match change {
                        Change::Added(n) | Change::Deleted(n) => node_address(n).is_some(),
                        Change::Updated { old, new } => node_address(old) != node_address(new),
                    };
                    if !moved {
                        return Vec::new();
                    }
                    load_balancers
                        .state_filter(|s| {
                            s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
                        })
                        .iter()
                        .map(|s| key_of(s.as_ref()))
                        .collect()
                },
            ))),
        ];
        if services.wait_until_ready().await.is_err() || nodes.wait_until_ready().await.is_err() {
            return;
        }
        let this = &self;
        let (services, nodes) = (&services, &nodes);
        queue
            .run("service-lb-controller", |(ns, name)| async move {
                let Some(service) = services.get(&ObjectRef::new(&name).within(&ns)) else {
                    return Ok::<_, kube::Error>(Next::Wait);
                };
                let all = nodes.state();
                let node_list: Vec<&Node> = all.iter().map(|n| n.as_ref()).collect();
                if let Some(want) = desired_ingress(&service, &node_list)
                    && want != current_ingress(&service)
                {
                    this.write(&service, &want).await?;
                }
                Ok(Next::Wait)
            })
            .await;
    }

    async fn write(&self, service: &Service, ips: &[String]) -> Result<(), kube::Error> {
        let ns = service.metadata.namespace.as_deref().unwrap_or("default");
        let name = service.metadata.name.as_deref().unwrap_or("");
        let api: Api<Service> = Api::namespaced(self.client.clone(), ns);
        let ingress: Vec<serde_json::Value> = ips
            .iter()
            .map(|ip| json!({"ip": ip, "ipMode": "VIP"}))
            .collect();
        let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
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
