//! Cluster DNS on a node: the agent serves it on its pod bridge's gateway address (the first
//! address of the node's podCIDR, which pods reach directly) and publishes that address as an
//! endpoint of the `kube-system/kube-dns` Service, whose cluster IP pods are given as their
//! name server; the service proxy sends queries to the nodes' servers.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::{Dns, DnsConfig, Metrics};

/// The field manager of the EndpointSlices the agents publish.
pub const MANAGER: &str = "rkube-agent";

/// How the node's DNS server runs.
#[derive(Clone, Debug)]
pub struct NodeDnsConfig {
    /// This node's name.
    pub node_name: String,
    /// The pod bridge (created here with its gateway address if it does not exist yet).
    pub bridge: String,
    /// The cluster domain.
    pub cluster_domain: String,
}

/// The gateway address and prefix length of a pod CIDR (its first address, as host-local
/// IPAM and the bridge plugin use it).
pub fn gateway(pod_cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (base, prefix) = pod_cidr.split_once('/')?;
    let base: Ipv4Addr = base.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    if prefix >= 31 {
        return None;
    }
    Some((Ipv4Addr::from(u32::from(base) + 1), prefix))
}

/// The node's EndpointSlice of the kube-dns Service.
pub fn endpoint_slice(node: &Node, address: Ipv4Addr) -> serde_json::Value {
    let name = node.metadata.name.clone().unwrap_or_default();
    serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("kube-dns-{name}"),
            "namespace": "kube-system",
            "labels": {
                "kubernetes.io/service-name": "kube-dns",
                "endpointslice.kubernetes.io/managed-by": MANAGER,
            },
            // Deleted with its Node.
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Node",
                "name": name,
                "uid": node.metadata.uid.clone().unwrap_or_default(),
            }],
        },
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": [address.to_string()],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": name,
        }],
        "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        ],
    })
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        anyhow::bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes sure the bridge exists, is up and holds `gateway/prefix`, as the CNI bridge plugin
/// would make it for the first pod.
fn ensure_bridge(bridge: &str, gateway: Ipv4Addr, prefix: u8) -> anyhow::Result<()> {
    if ip(&["link", "show", "dev", bridge]).is_err() {
        ip(&["link", "add", "name", bridge, "type", "bridge"])?;
    }
    let address = format!("{gateway}/{prefix}");
    let shown = ip(&["-4", "addr", "show", "dev", bridge])?;
    if !shown.contains(&format!("inet {address} ")) {
        ip(&["addr", "add", &address, "dev", bridge])?;
    }
    ip(&["link", "set", "dev", bridge, "up"])?;
    Ok(())
}

async fn node_with_pod_cidr(nodes: &Api<Node>, name: &str) -> (Node, String) {
    loop {
        if let Ok(node) = nodes.get(name).await
            && let Some(cidr) = node.spec.as_ref().and_then(|s| s.pod_cidr.clone())
        {
            return (node, cidr);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Serves cluster DNS on this node until `stop` resolves: waits for the node's podCIDR,
/// listens on its gateway address, port 53, publishes the endpoint and answers from watches.
pub async fn run_on_node(
    client: kube::Client,
    config: NodeDnsConfig,
    metrics: impl FnOnce(Metrics),
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    tokio::pin!(stop);
    let (node, cidr) = tokio::select! {
        found = node_with_pod_cidr(&nodes, &config.node_name) => found,
        () = &mut stop => return Ok(()),
    };
    let (address, prefix) =
        gateway(&cidr).with_context(|| format!("the node's podCIDR {cidr} has no gateway"))?;
    ensure_bridge(&config.bridge, address, prefix)
        .with_context(|| format!("setting up the pod bridge {}", config.bridge))?;
    let dns = Dns::bind(DnsConfig {
        listen: SocketAddr::from((address, 53)),
        cluster_domain: config.cluster_domain.clone(),
        ..DnsConfig::default()
    })
    .await
    .with_context(|| format!("serving DNS on {address}:53"))?;
    metrics(dns.metrics());
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    let slice = endpoint_slice(&node, address);
    let name = format!("kube-dns-{}", config.node_name);
    let publish = async {
        // Published until it takes: the API may be briefly away.
        loop {
            match slices
                .patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&slice),
                )
                .await
            {
                Ok(_) => break,
                Err(e) => tracing::warn!(error = %e, "publishing the DNS endpoint"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        std::future::pending::<()>().await;
    };
    tracing::info!(%address, "cluster DNS listening");
    tokio::select! {
        result = dns.run(client, &mut stop) => result,
        () = publish => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_is_the_first_address_of_the_pod_range() {
        assert_eq!(
            gateway("10.42.3.0/24"),
            Some(("10.42.3.1".parse().unwrap(), 24))
        );
        assert_eq!(gateway("10.42.3.0/32"), None);
        assert_eq!(gateway("nonsense"), None);
    }

    #[test]
    fn the_endpoint_slice_belongs_to_kube_dns_and_its_node() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "uid": "u1"}
        }))
        .unwrap();
        let slice = endpoint_slice(&node, "10.42.0.1".parse().unwrap());
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            "kube-dns"
        );
        assert_eq!(slice["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(slice["endpoints"][0]["addresses"][0], "10.42.0.1");
        assert_eq!(slice["endpoints"][0]["nodeName"], "n1");
    }
}
