//! Node IPAM: every node gets a pod CIDR (`spec.podCIDR` / `spec.podCIDRs`) cut from the
//! cluster CIDR, one subnet per node and never the same one twice, as upstream's range
//! allocator does. Allocations are rebuilt from the nodes themselves when the controller
//! starts, so nothing needs to be stored elsewhere; a deleted node's subnet is free again.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::events::{EventType, Recorder};
use crate::informer::{Change, Next, SharedInformers, WorkQueue, feed};

/// An IPv4 range in CIDR notation, e.g. `10.42.0.0/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    network: u32,
    prefix: u8,
}

impl Ipv4Cidr {
    /// The range of `prefix` bits at `address` (host bits are cleared).
    pub fn new(address: Ipv4Addr, prefix: u8) -> Self {
        let prefix = prefix.min(32);
        Self {
            network: u32::from(address) & mask(prefix),
            prefix,
        }
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The first address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network)
    }

    /// Whether `other` lies wholly inside this range.
    pub fn contains(&self, other: &Ipv4Cidr) -> bool {
        other.prefix >= self.prefix && other.network & mask(self.prefix) == self.network
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not in CIDR notation (a.b.c.d/n)"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{s:?}: {ip:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to 32"))?;
        Ok(Self::new(ip, prefix))
    }
}

/// Why a subnet could not be handed out or taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    /// Every subnet is in use.
    #[error("no remaining CIDRs in {0}")]
    Full(Ipv4Cidr),
    /// The subnet is not one of this range's subnets.
    #[error("{0} is not a /{1} subnet of {2}")]
    Outside(Ipv4Cidr, u8, Ipv4Cidr),
    /// The node cidr mask is shorter than the cluster's.
    #[error(
        "--node-cidr-mask-size {0} must be at least the cluster CIDR's prefix ({1}) and at most 30"
    )]
    BadMaskSize(u8, u8),
}

/// The subnets of a cluster CIDR and which are taken. Allocation goes round the range from
/// the last subnet handed out, so a just-freed subnet is not reused at once.
#[derive(Debug)]
pub struct CidrSet {
    cluster: Ipv4Cidr,
    subnet_prefix: u8,
    used: BTreeSet<u32>,
    next: u32,
}

impl CidrSet {
    /// The `/subnet_prefix` subnets of `cluster`.
    pub fn new(cluster: Ipv4Cidr, subnet_prefix: u8) -> Result<Self, CidrError> {
        if subnet_prefix < cluster.prefix || subnet_prefix > 30 {
            return Err(CidrError::BadMaskSize(subnet_prefix, cluster.prefix));
        }
        Ok(Self {
            cluster,
            subnet_prefix,
            used: BTreeSet::new(),
            next: 0,
        })
    }

    /// How many subnets the range has.
    pub fn capacity(&self) -> u64 {
        1u64 << (self.subnet_prefix - self.cluster.prefix)
    }

    fn subnet(&self, index: u32) -> Ipv4Cidr {
        let size = 1u64 << (32 - self.subnet_prefix);
        let start = u64::from(self.cluster.network) + u64::from(index) * size;
        Ipv4Cidr::new(Ipv4Addr::from(start as u32), self.subnet_prefix)
    }

    fn index(&self, subnet: &Ipv4Cidr) -> Result<u32, CidrError> {
        if subnet.prefix != self.subnet_prefix || !self.cluster.contains(subnet) {
            return Err(CidrError::Outside(
                *subnet,
                self.subnet_prefix,
                self.cluster,
            ));
        }
        Ok((subnet.network - self.cluster.network) >> (32 - self.subnet_prefix))
    }

    /// Hands out a free subnet.
    pub fn allocate(&mut self) -> Result<Ipv4Cidr, CidrError> {
        let capacity = self.capacity();
        for step in 0..capacity {
            let index = ((u64::from(self.next) + step) % capacity) as u32;
            if self.used.insert(index) {
                self.next = ((u64::from(index) + 1) % capacity) as u32;
                return Ok(self.subnet(index));
            }
        }
        Err(CidrError::Full(self.cluster))
    }

    /// Marks `subnet` taken (a node already has it); false if it already was.
    pub fn occupy(&mut self, subnet: &Ipv4Cidr) -> Result<bool, CidrError> {
        let index = self.index(subnet)?;
        Ok(self.used.insert(index))
    }

    /// Frees `subnet`.
    pub fn release(&mut self, subnet: &Ipv4Cidr) {
        if let Ok(index) = self.index(subnet) {
            self.used.remove(&index);
        }
    }

    /// How many subnets are taken.
    pub fn used(&self) -> usize {
        self.used.len()
    }
}

/// Runs node IPAM with the cluster settings; does nothing when no cluster CIDR is set.
pub async fn run(client: impl Into<SharedInformers>, settings: crate::Settings) {
    let Some(cidr) = settings.cluster_cidr else {
        return;
    };
    match NodeIpamController::new(client, cidr, settings.node_cidr_mask_size) {
        Ok(controller) => controller.run().await,
        Err(err) => tracing::error!(error = %err, "node IPAM is off"),
    }
}

/// The subnets handed out, and to which node.
struct Allocations {
    set: CidrSet,
    by_node: HashMap<String, Ipv4Cidr>,
}

/// Gives each node a pod CIDR.
pub struct NodeIpamController {
    client: kube::Client,
    informers: SharedInformers,
    allocations: Arc<Mutex<Allocations>>,
    recorder: Recorder,
}

fn node_cidr(node: &Node) -> Option<Ipv4Cidr> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidrs
        .as_ref()
        .and_then(|all| all.iter().find_map(|c| c.parse().ok()))
        .or_else(|| spec.pod_cidr.as_ref().and_then(|c| c.parse().ok()))
}

impl NodeIpamController {
    /// A controller cutting `/mask_size` subnets out of `cluster_cidr`.
    pub fn new(
        client: impl Into<SharedInformers>,
        cluster_cidr: Ipv4Cidr,
        mask_size: u8,
    ) -> Result<Self, CidrError> {
        let informers: SharedInformers = client.into();
        Ok(Self {
            recorder: Recorder::new(informers.client().clone(), "cidrAllocator"),
            client: informers.client().clone(),
            informers,
            allocations: Arc::new(Mutex::new(Allocations {
                set: CidrSet::new(cluster_cidr, mask_size)?,
                by_node: HashMap::new(),
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Allocations> {
        self.allocations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let queue = WorkQueue::new();
        let (nodes, stream) = self.informers.informer::<Node>().await;
        let feeder = tokio::spawn(feed(queue.clone(), stream, |change: &Change<Node>| {
            vec![change.object().metadata.name.clone().unwrap_or_default()]
        }));
        let _feeder = crate::informer::AbortOnDrop(feeder);
        if nodes.wait_until_ready().await.is_err() {
            return;
        }
        // Rebuild what is taken from the nodes that exist, before handing anything out.
        for node in nodes.state() {
            self.remember(&node);
        }
        let this = &self;
        let nodes = &nodes;
        queue
            .run("node-ipam", |name| async move {
                this.reconcile(nodes, &name).await
            })
            .await;
    }

    fn remember(&self, node: &Node) {
        let (Some(name), Some(cidr)) = (node.metadata.name.clone(), node_cidr(node)) else {
            return;
        };
        let mut allocations = self.lock();
        if allocations.by_node.get(&name) == Some(&cidr) {
            return;
        }
        match allocations.set.occupy(&cidr) {
            Ok(_) => {
                allocations.by_node.insert(name, cidr);
            }
            Err(err) => {
                tracing::debug!(node = %name, error = %err, "node pod CIDR outside the cluster CIDR")
            }
        }
    }

    /// Gives `name` a subnet if it has none; frees the subnet of a node that is gone.
    pub async fn reconcile(&self, nodes: &Store<Node>, name: &str) -> Result<Next, kube::Error> {
        let Some(node) = nodes.get(&ObjectRef::new(name)) else {
            let mut allocations = self.lock();
            if let Some(cidr) = allocations.by_node.remove(name) {
                allocations.set.release(&cidr);
                tracing::debug!(node = name, %cidr, "released the pod CIDR of a deleted node");
            }
            return Ok(Next::Wait);
        };
        if node_cidr(&node).is_some() {
            self.remember(&node);
            return Ok(Next::Wait);
        }
        let allocated = {
            let mut allocations = self.lock();
            // A node deleted and created again under the same name before its deletion was
            // seen: its old subnet goes back first.
            if let Some(old) = allocations.by_node.remove(name) {
                allocations.set.release(&old);
            }
            let allocated = allocations.set.allocate();
            if let Ok(cidr) = &allocated {
                allocations.by_node.insert(name.to_owned(), *cidr);
            }
            allocated
        };
        let cidr = match allocated {
            Ok(cidr) => cidr,
            Err(err) => {
                self.recorder
                    .publish(
                        &*node,
                        EventType::Normal,
                        "CIDRNotAvailable",
                        &format!("Node {name} status is now: CIDRNotAvailable"),
                    )
                    .await;
                tracing::warn!(node = name, error = %err, "no pod CIDR for node");
                return Ok(Next::After(std::time::Duration::from_secs(30)));
            }
        };
        let patch = serde_json::json!({
            "spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}
        });
        let api: Api<Node> = Api::all(self.client.clone());
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(Next::Wait),
            Err(err) => {
                {
                    let mut allocations = self.lock();
                    if allocations.by_node.get(name) == Some(&cidr) {
                        allocations.by_node.remove(name);
                        allocations.set.release(&cidr);
                    }
                }
                if crate::informer::is_not_found(&err) {
                    Ok(Next::Wait)
                } else {
                    Err(err)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_print_with_host_bits_cleared() {
        assert_eq!(cidr("10.42.7.9/16").to_string(), "10.42.0.0/16");
        assert!("10.42.0.0".parse::<Ipv4Cidr>().is_err());
        assert!("10.42.0.0/33".parse::<Ipv4Cidr>().is_err());
        assert!("::1/64".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn subnets_are_handed_out_in_order_without_duplicates() {
        let mut set = CidrSet::new(cidr("10.42.0.0/16"), 24).unwrap();
        assert_eq!(set.capacity(), 256);
        assert_eq!(set.allocate().unwrap(), cidr("10.42.0.0/24"));
        assert_eq!(set.allocate().unwrap(), cidr("10.42.1.0/24"));
        let mut seen = BTreeSet::new();
        seen.insert(cidr("10.42.0.0/24"));
        seen.insert(cidr("10.42.1.0/24"));
        while let Ok(next) = set.allocate() {
            assert!(seen.insert(next), "{next} handed out twice");
        }
        assert_eq!(seen.len(), 256);
        assert_eq!(set.allocate(), Err(CidrError::Full(cidr("10.42.0.0/16"))));
        set.release(&cidr("10.42.5.0/24"));
        assert_eq!(set.allocate().unwrap(), cidr("10.42.5.0/24"));
    }

    #[test]
    fn occupied_subnets_are_skipped_and_freed_ones_come_back_last() {
        let mut set = CidrSet::new(cidr("10.0.0.0/22"), 24).unwrap();
        assert!(set.occupy(&cidr("10.0.0.0/24")).unwrap());
        assert!(!set.occupy(&cidr("10.0.0.0/24")).unwrap());
        assert!(set.occupy(&cidr("10.0.9.0/24")).is_err());
        assert!(set.occupy(&cidr("10.0.1.0/25")).is_err());
        assert_eq!(set.allocate().unwrap(), cidr("10.0.1.0/24"));
        set.release(&cidr("10.0.0.0/24"));
        assert_eq!(set.allocate().unwrap(), cidr("10.0.2.0/24"));
        assert_eq!(set.allocate().unwrap(), cidr("10.0.3.0/24"));
        assert_eq!(set.allocate().unwrap(), cidr("10.0.0.0/24"));
        assert_eq!(set.used(), 4);
    }

    #[test]
    fn a_node_mask_shorter_than_the_cluster_prefix_is_refused() {
        assert!(CidrSet::new(cidr("10.42.0.0/16"), 8).is_err());
        assert!(CidrSet::new(cidr("10.42.0.0/16"), 31).is_err());
    }
}
