//! NetworkPolicy enforcement (networking.k8s.io/v1) for the pods of this node, in an nftables
//! table of its own.
//!
//! The objects are read into a small model here ([`Policy`], [`PodInfo`], [`Cluster`]);
//! [`netpol_rules`](crate::netpol_rules) computes the table from it and
//! [`netpol_script`](crate::netpol_script) writes it (both pure); [`Enforcer`] applies it
//! through a [`Dataplane`], whole on the first sync and then as differences; [`run`] keeps it
//! current from watches of NetworkPolicies, Pods and Namespaces.
//!
//! Semantics are upstream's (API reference, "Network Policies" concept page): a pod selected
//! by a policy whose policyTypes include Ingress (Egress) accepts (sends) only what some rule
//! of some such policy allows; a pod no policy of a type selects is not isolated for it. Peers
//! and ports are unions; namespaceSelector with podSelector in one peer is an AND. Traffic to
//! and from the pod's own node is always allowed, host-network pods are never policed, and
//! replies of allowed connections pass.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::core::{Expression, Selector};
use tokio::sync::{Mutex, Notify};

use crate::dataplane::{Dataplane, Error};
use crate::model::Protocol;
use crate::netpol_rules::{self, Ruleset};
use crate::netpol_script;
use crate::{WatchChange, key, watch};

/// Labels of a pod or a namespace.
pub type Labels = BTreeMap<String, String>;

/// The label the API server puts on every namespace, holding its name; set here too, so that
/// selectors on it work whatever wrote the namespace.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// How policies are enforced on this node.
#[derive(Clone, Debug)]
pub struct NetpolConfig {
    /// This node's name: its pods are the ones policed here.
    pub node_name: String,
    /// The nftables table (family ip), owned by the enforcer alone.
    pub table: String,
    /// The shortest time between two syncs: changes within it are applied together.
    pub min_sync_period: Duration,
}

impl NetpolConfig {
    /// The settings the agent uses: table `rkube-netpol-<bridge>`, 20 ms between syncs.
    pub fn for_bridge(node_name: &str, bridge: &str) -> NetpolConfig {
        NetpolConfig {
            node_name: node_name.to_owned(),
            table: format!("rkube-netpol-{bridge}"),
            min_sync_period: Duration::from_millis(20),
        }
    }
}

/// A container port a policy can name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NamedPort {
    /// The port's name.
    pub name: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// The container port.
    pub port: u16,
}

/// What policies need of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The labels.
    pub labels: Labels,
    /// The pod's IPv4 address, once it has one.
    pub ip: Option<Ipv4Addr>,
    /// The node it is bound to.
    pub node: Option<String>,
    /// spec.hostNetwork: such pods are the node's traffic and never policed.
    pub host_network: bool,
    /// Succeeded or Failed: its address may already belong to another pod.
    pub terminal: bool,
    /// The named container ports (containers and init containers).
    pub ports: Vec<NamedPort>,
}

impl PodInfo {
    /// Reads a Pod.
    pub fn from_pod(pod: &Pod) -> PodInfo {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let ips = status
            .and_then(|s| s.pod_ips.as_ref())
            .into_iter()
            .flatten()
            .map(|ip| ip.ip.as_str())
            .chain(status.and_then(|s| s.pod_ip.as_deref()));
        let ip = ips.filter_map(|ip| ip.parse::<Ipv4Addr>().ok()).next();
        let mut ports = Vec::new();
        if let Some(spec) = spec {
            let containers = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten());
            for port in containers.flat_map(|c| c.ports.iter().flatten()) {
                let (Some(name), Some(protocol), Ok(number)) = (
                    port.name.as_ref(),
                    Protocol::parse(port.protocol.as_deref()),
                    u16::try_from(port.container_port),
                ) else {
                    continue;
                };
                ports.push(NamedPort {
                    name: name.clone(),
                    protocol,
                    port: number,
                });
            }
        }
        ports.sort();
        ports.dedup();
        PodInfo {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            ip,
            node: spec.and_then(|s| s.node_name.clone()),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            terminal: matches!(
                status.and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            ),
            ports,
        }
    }

    /// Whether policies see this pod at all, as a target or as a peer.
    pub fn is_policed(&self) -> bool {
        !self.host_network && !self.terminal && self.ip.is_some()
    }

    /// The container port `name` of `protocol`, if the pod has one.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name == name && p.protocol == protocol)
            .map(|p| p.port)
    }
}

/// A port of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortRef {
    /// A number, with endPort the last of a range.
    Number {
        /// The port.
        port: u16,
        /// endPort.
        end: Option<u16>,
    },
    /// A container port's name, resolved on the pod the traffic goes to.
    Name(String),
    /// Every port of the protocol.
    All,
}

/// One entry of a rule's `ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyPort {
    /// The protocol (TCP when unset).
    pub protocol: Protocol,
    /// Which ports.
    pub port: PortRef,
}

/// One entry of a rule's `from` or `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Pods: those `pods` selects (all when absent) in the namespaces `namespaces` selects
    /// (the policy's own when absent).
    Pods {
        /// namespaceSelector.
        namespaces: Option<Selector>,
        /// podSelector.
        pods: Option<Selector>,
    },
    /// Addresses: `cidr` but not `except` (IPv4 only; IPv6 blocks match nothing here).
    Block {
        /// First address and prefix length.
        cidr: (Ipv4Addr, u8),
        /// Excluded ranges, same form.
        except: Vec<(Ipv4Addr, u8)>,
    },
    /// A peer that matches nothing (IPv6, unparsable or empty).
    Nothing,
}

/// One ingress or egress rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `from`/`to`; `None` when missing or empty: every address.
    pub peers: Option<Vec<Peer>>,
    /// `ports`; `None` when missing or empty: every port and protocol.
    pub ports: Option<Vec<PolicyPort>>,
}

/// A NetworkPolicy, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The namespace: its pods are the ones `pod_selector` picks.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// spec.podSelector.
    pub pod_selector: Selector,
    /// The ingress rules if the policy isolates for ingress.
    pub ingress: Option<Vec<Rule>>,
    /// The egress rules if the policy isolates for egress.
    pub egress: Option<Vec<Rule>>,
}

/// A selector that matches nothing: what an unparsable one is taken as (the API server
/// validates selectors, so this is only for objects it did not check).
fn nothing() -> Selector {
    Selector::from(Expression::In(String::new(), BTreeSet::new()))
}

fn selector(s: &LabelSelector) -> Selector {
    Selector::try_from(s.clone()).unwrap_or_else(|_| nothing())
}

fn cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, len) = text.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    if len > 32 {
        return None;
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    Some((Ipv4Addr::from(u32::from(addr) & mask), len))
}

fn peer(p: &NetworkPolicyPeer) -> Peer {
    if let Some(block) = &p.ip_block {
        let Some(range) = cidr(&block.cidr) else {
            return Peer::Nothing;
        };
        return Peer::Block {
            cidr: range,
            except: block
                .except
                .iter()
                .flatten()
                .filter_map(|e| cidr(e))
                .collect(),
        };
    }
    if p.namespace_selector.is_none() && p.pod_selector.is_none() {
        return Peer::Nothing;
    }
    Peer::Pods {
        namespaces: p.namespace_selector.as_ref().map(selector),
        pods: p.pod_selector.as_ref().map(selector),
    }
}

fn policy_port(p: &NetworkPolicyPort) -> Option<PolicyPort> {
    let protocol = Protocol::parse(p.protocol.as_deref())?;
    let port = match &p.port {
        None => PortRef::All,
        Some(IntOrString::Int(n)) => PortRef::Number {
            port: u16::try_from(*n).ok()?,
            end: p.end_port.and_then(|e| u16::try_from(e).ok()),
        },
        Some(IntOrString::String(name)) => match name.parse::<u16>() {
            Ok(port) => PortRef::Number { port, end: None },
            Err(_) => PortRef::Name(name.clone()),
        },
    };
    Some(PolicyPort { protocol, port })
}

fn rule(peers: Option<&Vec<NetworkPolicyPeer>>, ports: Option<&Vec<NetworkPolicyPort>>) -> Rule {
    Rule {
        peers: peers
            .filter(|p| !p.is_empty())
            .map(|p| p.iter().map(peer).collect()),
        // A port of an unknown protocol allows nothing, but the rule still lists ports.
        ports: ports
            .filter(|p| !p.is_empty())
            .map(|p| p.iter().filter_map(policy_port).collect()),
    }
}

impl Policy {
    /// Reads a NetworkPolicy, with upstream's policyTypes default: Ingress always, Egress when
    /// there are egress rules.
    pub fn from_network_policy(np: &NetworkPolicy) -> Policy {
        let default = NetworkPolicySpec::default();
        let spec = np.spec.as_ref().unwrap_or(&default);
        let types = spec.policy_types.as_ref().filter(|t| !t.is_empty());
        let (isolates_ingress, isolates_egress) = match &types {
            Some(types) => (
                types.iter().any(|t| t == "Ingress"),
                types.iter().any(|t| t == "Egress"),
            ),
            None => (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
        };
        let ingress = spec.ingress.iter().flatten();
        let egress = spec.egress.iter().flatten();
        Policy {
            namespace: np.metadata.namespace.clone().unwrap_or_default(),
            name: np.metadata.name.clone().unwrap_or_default(),
            pod_selector: spec
                .pod_selector
                .as_ref()
                .map_or_else(Selector::default, selector),
            ingress: isolates_ingress.then(|| {
                ingress
                    .map(|r| rule(r.from.as_ref(), r.ports.as_ref()))
                    .collect()
            }),
            egress: isolates_egress.then(|| {
                egress
                    .map(|r| rule(r.to.as_ref(), r.ports.as_ref()))
                    .collect()
            }),
        }
    }
}

/// What the rules are computed from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cluster {
    /// NetworkPolicies by namespace and name.
    pub policies: BTreeMap<(String, String), Policy>,
    /// Pods by namespace and name, on every node (peers are cluster-wide).
    pub pods: BTreeMap<(String, String), PodInfo>,
    /// Namespace labels by name.
    pub namespaces: BTreeMap<String, Labels>,
}

impl Cluster {
    /// A namespace's labels, with [`NAMESPACE_NAME_LABEL`] (also for a namespace not seen).
    pub fn namespace_labels(&self, namespace: &str) -> Labels {
        let mut labels = self.namespaces.get(namespace).cloned().unwrap_or_default();
        labels
            .entry(NAMESPACE_NAME_LABEL.to_owned())
            .or_insert_with(|| namespace.to_owned());
        labels
    }
}

/// The sync state: what was last applied.
pub struct Enforcer {
    table: String,
    dataplane: Arc<dyn Dataplane>,
    applied: Option<Ruleset>,
}

impl Enforcer {
    /// An enforcer that has applied nothing yet: its first sync replaces the table, whatever
    /// an earlier run left.
    pub fn new(table: &str, dataplane: Arc<dyn Dataplane>) -> Enforcer {
        Enforcer {
            table: table.to_owned(),
            dataplane,
            applied: None,
        }
    }

    /// Makes the packet filter enforce `cluster`'s policies for the pods of `node`: the whole
    /// table on the first sync and after a failure, else only what changed; `Ok(true)` when a
    /// script was applied.
    pub fn sync(&mut self, cluster: &Cluster, node: &str) -> Result<bool, Error> {
        self.apply(netpol_rules::build(cluster, node))
    }

    /// Applies a rule set computed by [`netpol_rules::build`], as [`Enforcer::sync`] does.
    pub fn apply(&mut self, ruleset: Ruleset) -> Result<bool, Error> {
        let script = match &self.applied {
            Some(applied) => netpol_script::diff_script(&self.table, applied, &ruleset),
            None => Some(netpol_script::full_script(&self.table, &ruleset)),
        };
        let Some(script) = script else {
            return Ok(false);
        };
        if let Err(e) = self.dataplane.apply(&script) {
            self.applied = None;
            return Err(e);
        }
        self.applied = Some(ruleset);
        Ok(true)
    }
}

#[derive(Default)]
struct State {
    cluster: Cluster,
    policies_listed: bool,
    pods_listed: bool,
    namespaces_listed: bool,
}

fn namespace_labels(ns: &Namespace) -> (String, Labels) {
    (
        ns.metadata.name.clone().unwrap_or_default(),
        ns.metadata.labels.clone().unwrap_or_default(),
    )
}

/// Whether bridged IPv4 traffic passes the ip family's hooks (br_netfilter loaded and
/// `bridge-nf-call-iptables` on), which policing between pods of one node relies on.
pub fn bridged_traffic_is_filtered() -> bool {
    std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
        .is_ok_and(|v| v.trim() == "1")
}

/// Enforces NetworkPolicies on `config.node_name`'s pods until `stop` resolves. Nothing is
/// applied before NetworkPolicies, Pods and Namespaces have all been listed; the table stays
/// in place when it returns, so that policies keep holding while the agent restarts. The
/// client needs list and watch on networkpolicies, pods and namespaces.
pub async fn run(
    client: kube::Client,
    config: NetpolConfig,
    dataplane: Arc<dyn Dataplane>,
    stop: impl Future<Output = ()>,
) {
    if !bridged_traffic_is_filtered() {
        // Pods on one bridge would then reach each other without meeting the forward hook.
        tracing::warn!(
            "net.bridge.bridge-nf-call-iptables is not 1 (br_netfilter): traffic between pods \
             of this node is not policed"
        );
    }
    let state = Arc::new(Mutex::new(State::default()));
    let changed = Arc::new(Notify::new());
    let policies = tokio::spawn(watch(
        Api::<NetworkPolicy>::all(client.clone()),
        state.clone(),
        changed.clone(),
        |s: &mut State, c| {
            let map = &mut s.cluster.policies;
            match c {
                WatchChange::Relisted(all) => {
                    s.policies_listed = true;
                    *map = all
                        .iter()
                        .map(|p| (key(p), Policy::from_network_policy(p)))
                        .collect();
                }
                WatchChange::Applied(p) => {
                    map.insert(key(&p), Policy::from_network_policy(&p));
                }
                WatchChange::Deleted(p) => {
                    map.remove(&key(&p));
                }
            }
        },
    ));
    let pods = tokio::spawn(watch(
        Api::<Pod>::all(client.clone()),
        state.clone(),
        changed.clone(),
        |s: &mut State, c| {
            let map = &mut s.cluster.pods;
            match c {
                WatchChange::Relisted(all) => {
                    s.pods_listed = true;
                    *map = all.iter().map(|p| (key(p), PodInfo::from_pod(p))).collect();
                }
                WatchChange::Applied(p) => {
                    map.insert(key(&p), PodInfo::from_pod(&p));
                }
                WatchChange::Deleted(p) => {
                    map.remove(&key(&p));
                }
            }
        },
    ));
    let namespaces = tokio::spawn(watch(
        Api::<Namespace>::all(client),
        state.clone(),
        changed.clone(),
        |s: &mut State, c| {
            let map = &mut s.cluster.namespaces;
            match c {
                WatchChange::Relisted(all) => {
                    s.namespaces_listed = true;
                    *map = all.iter().map(namespace_labels).collect();
                }
                WatchChange::Applied(ns) => {
                    let (name, labels) = namespace_labels(&ns);
                    map.insert(name, labels);
                }
                WatchChange::Deleted(ns) => {
                    map.remove(&namespace_labels(&ns).0);
                }
            }
        },
    ));
    let mut enforcer = Enforcer::new(&config.table, dataplane);
    let sync_loop = async {
        let mut retry: Option<Duration> = None;
        loop {
            match retry {
                None => changed.notified().await,
                Some(delay) => {
                    let _ = tokio::time::timeout(delay, changed.notified()).await;
                }
            }
            tokio::time::sleep(config.min_sync_period).await;
            let ruleset = {
                let state = state.lock().await;
                if !(state.policies_listed && state.pods_listed && state.namespaces_listed) {
                    continue;
                }
                netpol_rules::build(&state.cluster, &config.node_name)
            };
            // nft runs outside the lock, so the watches keep going.
            match enforcer.apply(ruleset) {
                Ok(_) => retry = None,
                Err(e) => {
                    tracing::warn!(error = %e, "programming network policies");
                    retry = Some(Duration::from_secs(1));
                }
            }
        }
    };
    tokio::select! {
        () = sync_loop => {}
        () = stop => {}
    }
    policies.abort();
    pods.abort();
    namespaces.abort();
}
