//! rkube's cluster DNS: the names of Services, their endpoints and pods under the cluster
//! domain, answered from the API (no add-on), and every other name forwarded to the
//! resolvers of a resolv.conf. It answers as CoreDNS does with kubeadm's default Corefile
//! (the `kubernetes` plugin with `pods insecure`, reverse zones falling through, `forward .
//! /etc/resolv.conf`, `cache 30`).
//!
//! ```no_run
//! # async fn example(client: kube::Client) -> anyhow::Result<()> {
//! use rkube_dns::{Dns, DnsConfig};
//!
//! let config = DnsConfig { listen: "10.43.0.10:53".parse()?, ..DnsConfig::default() };
//! let dns = Dns::bind(config).await?;
//! let metrics = dns.metrics(); // serve metrics.render() on /metrics
//! dns.run(client, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Inside: `index` (the objects, reduced), `lookup` (pure answers from the index), `wire`
//! (messages in and out, truncation), `forward` and `cache` (upstream questions), `watch`
//! (the API watches), `server` (the listeners), `metrics`.

use std::net::SocketAddr;
use std::path::PathBuf;

mod cache;
mod forward;
mod index;
mod lookup;
mod metrics;
pub mod node;
mod server;
mod watch;
mod wire;

pub use metrics::Metrics;
pub use server::{Dns, Records};

/// How the DNS server is set up. `DnsConfig::default()` is `0.0.0.0:53`, `cluster.local`,
/// `/etc/resolv.conf`, no upstreams of its own, TTL 30 and `kube-system/kube-dns`.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Where to listen, UDP and TCP. Port 0 picks a free port (the same for both).
    pub listen: SocketAddr,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// The resolv.conf whose `nameserver`s (port 53) get the names outside the cluster
    /// domain. A nameserver that is this server itself is left out.
    pub resolv_conf: PathBuf,
    /// Resolvers to forward to instead of the resolv.conf's (CoreDNS's `forward . ADDR…`);
    /// empty (the default) reads `resolv_conf`.
    pub upstreams: Vec<SocketAddr>,
    /// TTL of the cluster's records in seconds (also the SOA's minimum).
    pub ttl: u32,
    /// The Service (namespace, name) whose cluster IPs are the name server's own addresses:
    /// the NS records of the cluster domain and `ns.dns.<domain>`.
    pub nameserver_service: (String, String),
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 53)),
            cluster_domain: "cluster.local".to_owned(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            upstreams: Vec::new(),
            ttl: 30,
            nameserver_service: ("kube-system".to_owned(), "kube-dns".to_owned()),
        }
    }
}
