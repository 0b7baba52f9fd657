//! Cluster settings the node, pod and certificate controllers act on, with upstream's defaults
//! (kube-controller-manager's flags of the same names).

use std::time::Duration;

use crate::nodeipam::Ipv4Cidr;

/// Settings of the node lifecycle, node IPAM, pod GC and CSR signing controllers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--cluster-cidr`: the range node pod CIDRs are cut from; `None` turns node IPAM off.
    pub cluster_cidr: Option<Ipv4Cidr>,
    /// `--node-cidr-mask-size`: the prefix length of each node's pod CIDR.
    pub node_cidr_mask_size: u8,
    /// `--node-monitor-grace-period`: how long a node may go without a heartbeat (lease
    /// renewal or status update) before it is marked Unknown.
    pub node_monitor_grace_period: Duration,
    /// `--node-monitor-period`: how often node health is checked.
    pub node_monitor_period: Duration,
    /// `--terminated-pod-gc-threshold`: how many terminated pods may exist before the oldest
    /// are deleted.
    pub terminated_pod_gc_threshold: usize,
    /// How long a pod bound to a node that does not exist waits before it is deleted, in case
    /// the node is only being created.
    pub orphan_pod_quarantine: Duration,
    /// `--cluster-signing-duration`: the longest certificate the CSR signer issues, and what
    /// it issues when a request asks for no duration.
    pub cluster_signing_duration: Duration,
    /// Whether the built-in service load balancer gives LoadBalancer Services the nodes'
    /// addresses (`--disable servicelb` turns it off).
    pub service_lb: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cluster_cidr: Some(Ipv4Cidr::new([10, 42, 0, 0].into(), 16)),
            node_cidr_mask_size: 24,
            node_monitor_grace_period: Duration::from_secs(40),
            node_monitor_period: Duration::from_secs(5),
            terminated_pod_gc_threshold: 12_500,
            orphan_pod_quarantine: Duration::from_secs(40),
            cluster_signing_duration: crate::certificates::policy::DEFAULT_DURATION,
            service_lb: true,
        }
    }
}
