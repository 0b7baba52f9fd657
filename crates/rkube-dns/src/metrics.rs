//! Counters of what the server did, in the Prometheus text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// The DNS server's counters. Cloning gives another handle on the same counters.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    counters: Arc<Mutex<Counters>>,
}

#[derive(Debug, Default)]
struct Counters {
    /// (transport, query type) → queries.
    requests: BTreeMap<(&'static str, &'static str), u64>,
    /// (query type, response code) → responses.
    responses: BTreeMap<(&'static str, String), u64>,
    cache_hits: u64,
    cache_misses: u64,
    forward_failures: u64,
}

impl Metrics {
    /// The counters as Prometheus text (`text/plain; version=0.0.4`), for `/metrics`:
    /// `rkube_dns_requests_total{proto,type}`, `rkube_dns_responses_total{type,rcode}`,
    /// `rkube_dns_cache_hits_total`, `rkube_dns_cache_misses_total` and
    /// `rkube_dns_forward_failures_total`.
    pub fn render(&self) -> String {
        let counters = self.lock();
        let mut out = String::new();
        header(
            &mut out,
            "rkube_dns_requests_total",
            "DNS queries received.",
        );
        for ((proto, qtype), count) in &counters.requests {
            let _ = writeln!(
                out,
                "rkube_dns_requests_total{{proto=\"{proto}\",type=\"{qtype}\"}} {count}"
            );
        }
        header(&mut out, "rkube_dns_responses_total", "DNS responses sent.");
        for ((qtype, rcode), count) in &counters.responses {
            let _ = writeln!(
                out,
                "rkube_dns_responses_total{{type=\"{qtype}\",rcode=\"{rcode}\"}} {count}"
            );
        }
        let single = [
            (
                "rkube_dns_cache_hits_total",
                "Forwarded questions answered from the cache.",
                counters.cache_hits,
            ),
            (
                "rkube_dns_cache_misses_total",
                "Forwarded questions not in the cache.",
                counters.cache_misses,
            ),
            (
                "rkube_dns_forward_failures_total",
                "Forwarded questions no resolver answered.",
                counters.forward_failures,
            ),
        ];
        for (name, help, count) in single {
            header(&mut out, name, help);
            let _ = writeln!(out, "{name} {count}");
        }
        out
    }

    pub(crate) fn request(&self, tcp: bool, qtype: RecordType) {
        let proto = if tcp { "tcp" } else { "udp" };
        *self
            .lock()
            .requests
            .entry((proto, type_label(qtype)))
            .or_default() += 1;
    }

    pub(crate) fn response(&self, qtype: Option<RecordType>, rcode: ResponseCode) {
        let qtype = qtype.map_or("none", type_label);
        *self
            .lock()
            .responses
            .entry((qtype, rcode_label(rcode)))
            .or_default() += 1;
    }

    pub(crate) fn cache(&self, hit: bool) {
        let mut counters = self.lock();
        if hit {
            counters.cache_hits += 1;
        } else {
            counters.cache_misses += 1;
        }
    }

    pub(crate) fn forward_failure(&self) {
        self.lock().forward_failures += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
}

/// The label of a query type: its mnemonic for common types, `other` for the rest (so a
/// client cannot make up new series).
fn type_label(qtype: RecordType) -> &'static str {
    match qtype {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::ANY => "ANY",
        RecordType::AXFR => "AXFR",
        RecordType::CAA => "CAA",
        RecordType::CNAME => "CNAME",
        RecordType::HTTPS => "HTTPS",
        RecordType::IXFR => "IXFR",
        RecordType::MX => "MX",
        RecordType::NS => "NS",
        RecordType::PTR => "PTR",
        RecordType::SOA => "SOA",
        RecordType::SRV => "SRV",
        RecordType::SVCB => "SVCB",
        RecordType::TXT => "TXT",
        _ => "other",
    }
}

/// The mnemonic of a response code.
fn rcode_label(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::BADVERS => "BADVERS".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let metrics = Metrics::default();
        metrics.request(false, RecordType::A);
        metrics.request(false, RecordType::A);
        metrics.request(true, RecordType::SRV);
        metrics.response(Some(RecordType::A), ResponseCode::NXDomain);
        metrics.response(Some(RecordType::from(65280)), ResponseCode::NoError);
        metrics.cache(true);
        let text = metrics.render();
        assert!(text.contains("# TYPE rkube_dns_requests_total counter\n"));
        assert!(text.contains("rkube_dns_requests_total{proto=\"udp\",type=\"A\"} 2\n"));
        assert!(text.contains("rkube_dns_requests_total{proto=\"tcp\",type=\"SRV\"} 1\n"));
        assert!(text.contains("rkube_dns_responses_total{type=\"A\",rcode=\"NXDOMAIN\"} 1\n"));
        assert!(text.contains("rkube_dns_responses_total{type=\"other\",rcode=\"NOERROR\"} 1\n"));
        assert!(text.contains("rkube_dns_cache_hits_total 1\n"));
        assert!(text.contains("rkube_dns_forward_failures_total 0\n"));
    }
}
