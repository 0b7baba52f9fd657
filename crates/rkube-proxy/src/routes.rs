//! Pod networking across nodes without an overlay: every other node's podCIDR is routed to
//! that node's internal address (host-gateway routes), so pods reach each other with their own
//! addresses. Routes are tagged with their own routing protocol number and removed when their
//! node goes.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::runtime::watcher;

/// The routing protocol number rkube's node routes carry (`ip route … proto 147`, a number
/// iproute2 gives no name), so that they are told apart from everyone else's.
pub const ROUTE_PROTOCOL: u8 = 147;

/// The routes this node needs: podCIDR to the node's InternalIP, for every other node whose
/// address is not one of this host's nor loopback (nodes sharing a host reach each other's
/// bridges directly).
pub fn desired_routes(
    nodes: &BTreeMap<String, Node>,
    this_node: &str,
    local_addresses: &[IpAddr],
) -> BTreeMap<String, Ipv4Addr> {
    let mut out = BTreeMap::new();
    for (name, node) in nodes {
        if name == this_node {
            continue;
        }
        let Some(cidr) = node.spec.as_ref().and_then(|s| {
            s.pod_cidrs
                .iter()
                .flatten()
                .chain(s.pod_cidr.iter())
                .find(|c| !c.contains(':'))
        }) else {
            continue;
        };
        let Some(address) = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .find_map(|a| a.address.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        if address.is_loopback() || local_addresses.contains(&IpAddr::V4(address)) {
            continue;
        }
        out.insert(cidr.clone(), address);
    }
    out
}

/// The host's routing table, behind a trait so that the route logic is tested without it.
pub trait RouteTable: Send + Sync {
    /// Routes of [`ROUTE_PROTOCOL`] inside `within` (a CIDR): destination to gateway.
    fn list(&self, within: &str) -> BTreeMap<String, Ipv4Addr>;
    /// Adds or replaces a route.
    fn replace(&self, cidr: &str, via: Ipv4Addr) -> Result<(), String>;
    /// Removes a route.
    fn delete(&self, cidr: &str) -> Result<(), String>;
}

/// The host's table through `ip route` (Debian's iproute2).
#[derive(Debug, Default, Clone)]
pub struct IpRoute;

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

impl RouteTable for IpRoute {
    fn list(&self, within: &str) -> BTreeMap<String, Ipv4Addr> {
        let proto = ROUTE_PROTOCOL.to_string();
        let Ok(text) = ip(&["-4", "route", "show", "proto", &proto, "root", within]) else {
            return BTreeMap::new();
        };
        text.lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let dst = words.next()?;
                let via = line.split_whitespace().skip_while(|w| *w != "via").nth(1)?;
                Some((dst.to_owned(), via.parse().ok()?))
            })
            .collect()
    }

    fn replace(&self, cidr: &str, via: Ipv4Addr) -> Result<(), String> {
        let proto = ROUTE_PROTOCOL.to_string();
        ip(&[
            "route",
            "replace",
            cidr,
            "via",
            &via.to_string(),
            "proto",
            &proto,
        ])
        .map(drop)
    }

    fn delete(&self, cidr: &str) -> Result<(), String> {
        let proto = ROUTE_PROTOCOL.to_string();
        ip(&["route", "del", cidr, "proto", &proto]).map(drop)
    }
}

/// Makes the table hold exactly `desired` among the routes of ours inside `cluster_cidr`.
pub fn reconcile(table: &dyn RouteTable, cluster_cidr: &str, desired: &BTreeMap<String, Ipv4Addr>) {
    let current = table.list(cluster_cidr);
    for (cidr, via) in desired {
        if current.get(cidr) != Some(via) {
            match table.replace(cidr, *via) {
                Ok(()) => tracing::info!(%cidr, %via, "pod route added"),
                Err(e) => tracing::warn!(%cidr, %via, error = %e, "adding a pod route"),
            }
        }
    }
    for cidr in current.keys() {
        if !desired.contains_key(cidr)
            && let Err(e) = table.delete(cidr)
        {
            tracing::warn!(%cidr, error = %e, "removing a pod route");
        }
    }
}

/// Keeps the routes to other nodes' pods until `stop` resolves.
pub async fn run(
    client: kube::Client,
    this_node: String,
    cluster_cidr: String,
    table: impl RouteTable,
    local_addresses: impl Fn() -> Vec<IpAddr>,
    stop: impl Future<Output = ()>,
) {
    let work = async {
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        let mut listing = BTreeMap::new();
        let mut listed = false;
        let mut stream = watcher(Api::<Node>::all(client), watcher::Config::default()).boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => listing.clear(),
                Ok(watcher::Event::InitApply(node)) => {
                    listing.insert(node.metadata.name.clone().unwrap_or_default(), node);
                }
                Ok(watcher::Event::InitDone) => {
                    nodes = std::mem::take(&mut listing);
                    listed = true;
                }
                Ok(watcher::Event::Apply(node)) => {
                    nodes.insert(node.metadata.name.clone().unwrap_or_default(), node);
                }
                Ok(watcher::Event::Delete(node)) => {
                    nodes.remove(&node.metadata.name.clone().unwrap_or_default());
                }
                Err(e) => {
                    tracing::debug!(error = %e, "node route watch");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            if listed {
                let desired = desired_routes(&nodes, &this_node, &local_addresses());
                reconcile(&table, &cluster_cidr, &desired);
            }
        }
    };
    tokio::select! {
        () = work => {}
        () = stop => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn node(name: &str, cidr: &str, ip: &str) -> (String, Node) {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]}
        }))
        .unwrap();
        (name.to_owned(), node)
    }

    #[derive(Default)]
    struct FakeTable(Mutex<BTreeMap<String, Ipv4Addr>>);

    impl RouteTable for FakeTable {
        fn list(&self, _within: &str) -> BTreeMap<String, Ipv4Addr> {
            self.0.lock().unwrap().clone()
        }
        fn replace(&self, cidr: &str, via: Ipv4Addr) -> Result<(), String> {
            self.0.lock().unwrap().insert(cidr.to_owned(), via);
            Ok(())
        }
        fn delete(&self, cidr: &str) -> Result<(), String> {
            self.0.lock().unwrap().remove(cidr);
            Ok(())
        }
    }

    #[test]
    fn other_nodes_pod_ranges_go_to_their_addresses() {
        let nodes: BTreeMap<String, Node> = [
            node("a", "10.42.0.0/24", "192.0.2.1"),
            node("b", "10.42.1.0/24", "192.0.2.2"),
            node("c", "10.42.2.0/24", "192.0.2.1"),
        ]
        .into_iter()
        .collect();
        let mut nodes = nodes;
        nodes.extend([node("d", "10.42.3.0/24", "127.0.0.1")]);
        let local = ["192.0.2.1".parse().unwrap()];
        let routes = desired_routes(&nodes, "a", &local);
        // c shares a's host: its bridge is reached directly.
        assert_eq!(
            routes,
            [("10.42.1.0/24".to_owned(), "192.0.2.2".parse().unwrap())].into()
        );
        let table = FakeTable::default();
        table
            .replace("10.42.9.0/24", "192.0.2.9".parse().unwrap())
            .unwrap();
        reconcile(&table, "10.42.0.0/16", &routes);
        assert_eq!(*table.0.lock().unwrap(), routes);
    }
}
