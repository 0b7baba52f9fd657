//! What the proxy serves, read from Services and EndpointSlices: one [`ServicePort`] per port
//! of a Service, with the endpoints it balances over. Pure: no I/O.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A transport protocol, as nftables names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// From a Kubernetes protocol name (TCP when unset).
    pub fn parse(name: Option<&str>) -> Option<Protocol> {
        match name.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// nftables' name.
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One endpoint of a service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The endpoint's address.
    pub ip: Ipv4Addr,
    /// The port traffic goes to.
    pub port: u16,
    /// Ready (and not terminating).
    pub ready: bool,
    /// Serving (ready, whether or not terminating).
    pub serving: bool,
    /// Terminating.
    pub terminating: bool,
    /// Runs on this node.
    pub local: bool,
}

/// How a Service's traffic is kept to endpoints on the node it arrives at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TrafficPolicy {
    /// Any endpoint in the cluster.
    #[default]
    Cluster,
    /// Only endpoints on this node.
    Local,
}

/// One port of one Service, with everything the rules need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port's name ("" for a single unnamed port).
    pub port_name: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The Service's cluster IPv4 address, if it has one.
    pub cluster_ip: Option<Ipv4Addr>,
    /// The Service port.
    pub port: u16,
    /// The node port, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    /// externalIPs.
    pub external_ips: Vec<Ipv4Addr>,
    /// status.loadBalancer.ingress addresses.
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// sessionAffinity ClientIP's timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// internalTrafficPolicy.
    pub internal_policy: TrafficPolicy,
    /// externalTrafficPolicy (for NodePort, LoadBalancer and externalIPs).
    pub external_policy: TrafficPolicy,
    /// The health check node port of a LoadBalancer with externalTrafficPolicy Local.
    pub health_check_node_port: Option<u16>,
    /// The endpoints, sorted.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// `namespace/name/protocol/port-name`, upstream's name for a service port.
    pub fn key(&self) -> String {
        let mut key = String::new();
        self.write_key(&mut key);
        key
    }

    /// Appends [`ServicePort::key`] to `out`.
    pub fn write_key(&self, out: &mut String) {
        for (i, part) in [
            self.namespace.as_str(),
            self.name.as_str(),
            self.protocol.nft(),
            self.port_name.as_str(),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                out.push('/');
            }
            out.push_str(part);
        }
    }

    /// The endpoints traffic routed "cluster-wide" goes to: the ready ones, else the serving
    /// terminating ones (upstream's CategorizeEndpoints).
    pub fn cluster_endpoints(&self) -> Vec<&Endpoint> {
        pick(self.endpoints.iter())
    }

    /// The endpoints on this node, chosen the same way.
    pub fn local_endpoints(&self) -> Vec<&Endpoint> {
        pick(self.endpoints.iter().filter(|e| e.local))
    }

    /// Whether traffic from outside the node is used (NodePort, LoadBalancer, externalIPs).
    pub fn has_external(&self) -> bool {
        self.node_port.is_some()
            || !self.external_ips.is_empty()
            || !self.load_balancer_ips.is_empty()
    }
}

fn pick<'a>(endpoints: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<&'a Endpoint> {
    let ready: Vec<&Endpoint> = endpoints.clone().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints.filter(|e| e.serving && e.terminating).collect()
}

/// The service ports of `service`, with endpoints from `slices` (the Service's EndpointSlices).
/// `node` is this node's name. Services the proxy does not serve (ExternalName, headless, no
/// IPv4 cluster IP and no external addresses) give none.
pub fn service_ports(service: &Service, slices: &[&EndpointSlice], node: &str) -> Vec<ServicePort> {
    let Some(spec) = &service.spec else {
        return Vec::new();
    };
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    let name = service.metadata.name.clone().unwrap_or_default();
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if kind == "ExternalName" {
        return Vec::new();
    }
    let cluster_ip = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .find_map(|ip| ip.parse::<Ipv4Addr>().ok());
    let external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .filter(|ip: &Ipv4Addr| !ip.is_loopback())
        .collect();
    let load_balancer_ips: Vec<Ipv4Addr> = if kind == "LoadBalancer" {
        service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            // ipMode Proxy: the load balancer delivers to the nodes itself; VIP (the default)
            // is served here.
            .filter(|i| i.ip_mode.as_deref().unwrap_or("VIP") == "VIP")
            .filter_map(|i| i.ip.as_deref()?.parse().ok())
            // Loopback addresses cannot be DNATed elsewhere: never served.
            .filter(|ip: &Ipv4Addr| !ip.is_loopback())
            .collect()
    } else {
        Vec::new()
    };
    if cluster_ip.is_none() && external_ips.is_empty() && load_balancer_ips.is_empty() {
        return Vec::new();
    }
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(10800)
    });
    let policy = |p: Option<&str>| match p {
        Some("Local") => TrafficPolicy::Local,
        _ => TrafficPolicy::Cluster,
    };
    let internal_policy = policy(spec.internal_traffic_policy.as_deref());
    let external_policy = policy(spec.external_traffic_policy.as_deref());
    let health_check_node_port = (kind == "LoadBalancer"
        && external_policy == TrafficPolicy::Local)
        .then(|| {
            spec.health_check_node_port
                .and_then(|p| u16::try_from(p).ok())
        })
        .flatten();
    let mut out = Vec::new();
    for port in spec.ports.iter().flatten() {
        let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else {
            continue;
        };
        let Ok(number) = u16::try_from(port.port) else {
            continue;
        };
        let port_name = port.name.clone().unwrap_or_default();
        let node_port = if kind == "NodePort" || kind == "LoadBalancer" {
            port.node_port.and_then(|p| u16::try_from(p).ok())
        } else {
            None
        };
        let mut endpoints = endpoints_for(slices, &port_name, protocol, node);
        endpoints.sort();
        endpoints.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
        out.push(ServicePort {
            namespace: namespace.clone(),
            name: name.clone(),
            port_name,
            protocol,
            cluster_ip,
            port: number,
            node_port,
            external_ips: external_ips.clone(),
            load_balancer_ips: load_balancer_ips.clone(),
            affinity_timeout,
            internal_policy,
            external_policy,
            health_check_node_port,
            endpoints,
        });
    }
    out
}

fn endpoints_for(
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: Protocol,
    node: &str,
) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name
                && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
        }) else {
            continue;
        };
        let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let conditions = endpoint.conditions.clone().unwrap_or_default();
            // Unset ready means ready; unset serving means as ready; unset terminating false.
            let ready = conditions.ready.unwrap_or(true);
            let serving = conditions.serving.unwrap_or(ready);
            let terminating = conditions.terminating.unwrap_or(false);
            let local = endpoint.node_name.as_deref() == Some(node);
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse() {
                    out.push(Endpoint {
                        ip,
                        port: number,
                        ready: ready && !terminating,
                        serving,
                        terminating,
                        local,
                    });
                }
            }
        }
    }
    out
}

/// Services and EndpointSlices as the proxy holds them.
#[derive(Default, Debug, Clone)]
pub struct Cluster {
    /// Services by namespace/name.
    pub services: BTreeMap<(String, String), Service>,
    /// EndpointSlices by namespace/name.
    pub slices: BTreeMap<(String, String), EndpointSlice>,
}

impl Cluster {
    /// Every service port the node serves, in a stable order.
    pub fn service_ports(&self, node: &str) -> Vec<ServicePort> {
        let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
        for ((ns, _), slice) in &self.slices {
            if let Some(service) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            {
                by_service
                    .entry((ns.as_str(), service.as_str()))
                    .or_default()
                    .push(slice);
            }
        }
        let mut out = Vec::new();
        for ((ns, name), service) in &self.services {
            let slices = by_service
                .get(&(ns.as_str(), name.as_str()))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            out.extend(service_ports(service, slices, node));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    fn slice(json: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn ready_endpoints_are_preferred_over_terminating_ones() {
        let svc = service(serde_json::json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {"clusterIP": "10.43.0.5", "ports": [{"name": "http", "port": 80}]}
        }));
        let s = slice(serde_json::json!({
            "metadata": {"namespace": "ns", "name": "web-x", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.0.7"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["10.42.0.8"], "conditions": {"ready": false, "serving": true, "terminating": true}, "nodeName": "n2"}
            ]
        }));
        let ports = service_ports(&svc, &[&s], "n1");
        assert_eq!(ports.len(), 1);
        let p = &ports[0];
        assert_eq!(p.key(), "ns/web/tcp/http");
        assert_eq!(p.cluster_ip, Some("10.43.0.5".parse().unwrap()));
        let cluster: Vec<_> = p
            .cluster_endpoints()
            .iter()
            .map(|e| e.ip.to_string())
            .collect();
        assert_eq!(cluster, ["10.42.0.7"]);
        assert_eq!(p.local_endpoints().len(), 1);
        let other_node = service_ports(&svc, &[&s], "n2");
        // n2's only endpoint is terminating: used as a last resort.
        let local: Vec<_> = other_node[0]
            .local_endpoints()
            .iter()
            .map(|e| e.ip.to_string())
            .collect();
        assert_eq!(local, ["10.42.0.8"]);
    }

    #[test]
    fn external_name_and_headless_services_are_not_proxied() {
        let external = service(serde_json::json!({
            "metadata": {"namespace": "ns", "name": "x"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}
        }));
        let headless = service(serde_json::json!({
            "metadata": {"namespace": "ns", "name": "h"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}
        }));
        assert!(service_ports(&external, &[], "n").is_empty());
        assert!(service_ports(&headless, &[], "n").is_empty());
    }

    #[test]
    fn load_balancer_ingress_and_node_ports_are_read() {
        let svc = service(serde_json::json!({
            "metadata": {"namespace": "ns", "name": "lb"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.9",
                     "sessionAffinity": "ClientIP",
                     "externalTrafficPolicy": "Local",
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "UDP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"hostname": "x"}]}}
        }));
        let ports = service_ports(&svc, &[], "n");
        let p = &ports[0];
        assert_eq!(p.protocol, Protocol::Udp);
        assert_eq!(p.node_port, Some(30080));
        assert_eq!(
            p.load_balancer_ips,
            vec!["192.0.2.10".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(p.affinity_timeout, Some(10800));
        assert_eq!(p.external_policy, TrafficPolicy::Local);
    }
}
