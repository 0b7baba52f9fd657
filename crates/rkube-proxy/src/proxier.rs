//! The proxy's sync: the current Services and EndpointSlices to a rule set, applied as the
//! difference from the last one applied (the whole table on start, after a failure and
//! periodically), with stale UDP flows cleared.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::dataplane::{Dataplane, Error, StaleFlow};
use crate::model::{Protocol, ServicePort};
use crate::rules::{self, RulesConfig, Ruleset};

/// Where each UDP service address sends traffic: (address or node port, port) to endpoints.
type UdpServing = BTreeMap<(UdpKey, u16), BTreeSet<Ipv4Addr>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum UdpKey {
    Address(Ipv4Addr),
    NodePort,
}

fn udp_serving(ports: &[ServicePort]) -> UdpServing {
    let mut out = UdpServing::new();
    for sp in ports.iter().filter(|p| p.protocol == Protocol::Udp) {
        let endpoints: BTreeSet<Ipv4Addr> = sp.cluster_endpoints().iter().map(|e| e.ip).collect();
        for ip in sp
            .cluster_ip
            .iter()
            .chain(&sp.external_ips)
            .chain(&sp.load_balancer_ips)
        {
            out.insert((UdpKey::Address(*ip), sp.port), endpoints.clone());
        }
        if let Some(node_port) = sp.node_port {
            out.insert((UdpKey::NodePort, node_port), endpoints.clone());
        }
    }
    out
}

/// The UDP flows whose conntrack entries are stale after `old` became `new`.
fn stale_flows(old: &UdpServing, new: &UdpServing) -> Vec<StaleFlow> {
    let mut out = Vec::new();
    let none = BTreeSet::new();
    for ((key, port), endpoints) in new {
        let before = old.get(&(*key, *port)).unwrap_or(&none);
        if before.is_empty() && !endpoints.is_empty() {
            out.push(match key {
                UdpKey::Address(ip) => StaleFlow::ToService {
                    ip: *ip,
                    port: *port,
                },
                UdpKey::NodePort => StaleFlow::ToNodePort { port: *port },
            });
        }
    }
    for ((key, port), endpoints) in old {
        let UdpKey::Address(ip) = key else { continue };
        let after = new.get(&(*key, *port)).unwrap_or(&none);
        for endpoint in endpoints.difference(after) {
            out.push(StaleFlow::ToEndpoint {
                ip: *ip,
                endpoint: *endpoint,
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The proxy's figures, rendered for /metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    syncs: AtomicU64,
    failures: AtomicU64,
    duration_micros_sum: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    last_sync_unix: AtomicU64,
    rules: AtomicU64,
}

const BUCKETS: [f64; 10] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 1.0,
];

impl Metrics {
    fn observe(&self, took: Duration, rules: usize) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.duration_micros_sum.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        for (bucket, le) in self.buckets.iter().zip(BUCKETS) {
            if took.as_secs_f64() <= le {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.rules.store(rules as u64, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_sync_unix.store(now, Ordering::Relaxed);
    }

    /// Prometheus text, in upstream kube-proxy's metric names where they exist.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let syncs = self.syncs.load(Ordering::Relaxed);
        let mut s = String::new();
        s.push_str("# HELP kubeproxy_sync_proxy_rules_duration_seconds SyncProxyRules latency in seconds\n");
        s.push_str("# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram\n");
        for (bucket, le) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                s,
                "kubeproxy_sync_proxy_rules_duration_seconds_bucket{{le=\"{le}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "kubeproxy_sync_proxy_rules_duration_seconds_bucket{{le=\"+Inf\"}} {syncs}"
        );
        let _ = writeln!(
            s,
            "kubeproxy_sync_proxy_rules_duration_seconds_sum {}",
            self.duration_micros_sum.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            s,
            "kubeproxy_sync_proxy_rules_duration_seconds_count {syncs}"
        );
        s.push_str("# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds The last time proxy rules were successfully synced\n");
        s.push_str("# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge\n");
        let _ = writeln!(
            s,
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds {}",
            self.last_sync_unix.load(Ordering::Relaxed)
        );
        s.push_str("# HELP rkube_proxy_sync_failures_total Rule syncs the packet filter refused\n");
        s.push_str("# TYPE rkube_proxy_sync_failures_total counter\n");
        let _ = writeln!(
            s,
            "rkube_proxy_sync_failures_total {}",
            self.failures.load(Ordering::Relaxed)
        );
        s.push_str("# HELP rkube_proxy_rules Rules and map elements programmed\n");
        s.push_str("# TYPE rkube_proxy_rules gauge\n");
        let _ = writeln!(
            s,
            "rkube_proxy_rules {}",
            self.rules.load(Ordering::Relaxed)
        );
        s
    }
}

/// The sync state: what was last applied.
pub struct Proxier {
    config: RulesConfig,
    dataplane: Arc<dyn Dataplane>,
    applied: Option<Ruleset>,
    udp: UdpServing,
    last_full: Option<Instant>,
    full_every: Duration,
    metrics: Arc<Metrics>,
}

impl Proxier {
    /// A proxier that has applied nothing yet.
    pub fn new(
        config: RulesConfig,
        dataplane: Arc<dyn Dataplane>,
        full_every: Duration,
        metrics: Arc<Metrics>,
    ) -> Proxier {
        Proxier {
            config,
            dataplane,
            applied: None,
            udp: UdpServing::new(),
            last_full: None,
            full_every,
            metrics,
        }
    }

    /// Makes the packet filter serve `ports`: the whole table when nothing is known to be
    /// applied or a periodic resync is due, else only the difference.
    pub fn sync(&mut self, ports: &[ServicePort], now: Instant) -> Result<(), Error> {
        let started = Instant::now();
        let ruleset = rules::build(&self.config, ports);
        let due = self
            .last_full
            .is_none_or(|at| now.duration_since(at) >= self.full_every);
        let script = match (&self.applied, due) {
            (Some(applied), false) => rules::diff_script(&self.config, applied, &ruleset),
            _ => Some(rules::full_script(&self.config, &ruleset)),
        };
        if let Some(script) = script
            && let Err(e) = self.dataplane.apply(&script)
        {
            self.applied = None;
            self.metrics.failures.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        if due {
            self.last_full = Some(now);
        }
        let udp = udp_serving(ports);
        let stale = stale_flows(&self.udp, &udp);
        if !stale.is_empty() {
            self.dataplane.clear_udp_flows(&stale);
        }
        self.udp = udp;
        self.metrics.observe(started.elapsed(), ruleset.size());
        self.applied = Some(ruleset);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::Recorder;
    use crate::model::{Endpoint, TrafficPolicy};

    fn udp_port(endpoints: &[&str]) -> ServicePort {
        ServicePort {
            namespace: "kube-system".to_owned(),
            name: "dns".to_owned(),
            port_name: "dns".to_owned(),
            protocol: Protocol::Udp,
            cluster_ip: Some("10.43.0.10".parse().unwrap()),
            port: 53,
            node_port: None,
            external_ips: Vec::new(),
            load_balancer_ips: Vec::new(),
            affinity_timeout: None,
            internal_policy: TrafficPolicy::Cluster,
            external_policy: TrafficPolicy::Cluster,
            health_check_node_port: None,
            endpoints: endpoints
                .iter()
                .map(|ip| Endpoint {
                    ip: ip.parse().unwrap(),
                    port: 53,
                    ready: true,
                    serving: true,
                    terminating: false,
                    local: true,
                })
                .collect(),
        }
    }

    fn proxier(recorder: &Arc<Recorder>) -> Proxier {
        let config = RulesConfig {
            table: "t".to_owned(),
            cluster_cidr: None,
            service_cidrs: Vec::new(),
            nodeport_addresses: Vec::new(),
        };
        Proxier::new(
            config,
            recorder.clone(),
            Duration::from_secs(3600),
            Arc::default(),
        )
    }

    #[test]
    fn the_first_sync_writes_the_table_and_later_ones_the_difference() {
        let recorder = Arc::new(Recorder::default());
        let mut p = proxier(&recorder);
        let now = Instant::now();
        p.sync(&[udp_port(&["10.42.0.5"])], now).unwrap();
        p.sync(&[udp_port(&["10.42.0.5"])], now).unwrap();
        p.sync(&[udp_port(&["10.42.0.6"])], now).unwrap();
        let scripts = recorder.scripts.lock().unwrap();
        assert_eq!(scripts.len(), 2, "an unchanged sync applies nothing");
        assert!(scripts[0].starts_with("add table ip t\ndelete table ip t\n"));
        assert!(!scripts[1].contains("delete table"));
        assert!(p.metrics.render().contains("rkube_proxy_rules "));
    }

    #[test]
    fn a_refused_sync_is_followed_by_a_full_one() {
        let recorder = Arc::new(Recorder::default());
        let mut p = proxier(&recorder);
        let now = Instant::now();
        p.sync(&[udp_port(&["10.42.0.5"])], now).unwrap();
        *recorder.fail_next.lock().unwrap() = true;
        assert!(p.sync(&[udp_port(&["10.42.0.6"])], now).is_err());
        p.sync(&[udp_port(&["10.42.0.6"])], now).unwrap();
        let scripts = recorder.scripts.lock().unwrap();
        assert!(scripts[1].contains("delete table ip t"));
    }

    #[test]
    fn udp_flows_are_cleared_when_endpoints_come_and_go() {
        let recorder = Arc::new(Recorder::default());
        let mut p = proxier(&recorder);
        let now = Instant::now();
        p.sync(&[udp_port(&[])], now).unwrap();
        p.sync(&[udp_port(&["10.42.0.5"])], now).unwrap();
        p.sync(&[udp_port(&["10.42.0.6"])], now).unwrap();
        let flows = recorder.flows.lock().unwrap();
        assert_eq!(
            *flows,
            [
                StaleFlow::ToService {
                    ip: "10.43.0.10".parse().unwrap(),
                    port: 53
                },
                StaleFlow::ToEndpoint {
                    ip: "10.43.0.10".parse().unwrap(),
                    endpoint: "10.42.0.5".parse().unwrap()
                }
            ]
        );
    }
}
