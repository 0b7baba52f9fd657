//! Answers from the cluster's records: a pure function of the index and the question, giving
//! what CoreDNS's `kubernetes` plugin gives with kubeadm's default Corefile
//! (`kubernetes cluster.local in-addr.arpa ip6.arpa { pods insecure; fallthrough in-addr.arpa
//! ip6.arpa; ttl 30 }`), including its choices between NXDOMAIN and NODATA. The rules follow
//! the Kubernetes DNS specification (github.com/kubernetes/dns, docs/specification.md).
//!
//! Names in the cluster zone are `<svc>.<ns>.svc.<zone>`, `<endpoint>.<svc>.<ns>.svc.<zone>`,
//! `_<port>._<proto>.<svc>.<ns>.svc.<zone>` and `<a-b-c-d>.<ns>.pod.<zone>`. Reverse names
//! are answered for cluster IPs and endpoint addresses; every other reverse name, and every
//! name outside the zone, is forwarded.

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use self::reverse::{ptr_targets, reverse_address};
use crate::index::{Index, Key, PortSpec, ServiceEntry, ServiceKind};

mod reverse;
#[cfg(test)]
mod tests;

/// The version of the Kubernetes DNS specification served, as `dns-version.<zone>` TXT.
const SCHEMA_VERSION: &str = "1.1.0";
/// TTL of the `dns-version` record (CoreDNS's).
const SCHEMA_VERSION_TTL: u32 = 28800;
/// The longest chain of ExternalName CNAMEs followed inside the zone.
const MAX_CNAME_CHAIN: usize = 8;

/// The cluster zone and how its records are made.
#[derive(Clone, Debug)]
pub(crate) struct Zone {
    /// The zone, lower case and fully qualified (`cluster.local.`).
    pub name: Name,
    /// The same as text, with its final dot.
    text: String,
    /// TTL of every record; also the SOA's minimum.
    pub ttl: u32,
    /// The Service whose cluster IPs are the name server's addresses (for `NS <zone>` and
    /// `ns.dns.<zone>`), usually `kube-system/kube-dns`.
    pub nameserver: Key,
}

impl Zone {
    /// The zone `domain` (`cluster.local`, with or without the final dot).
    pub(crate) fn new(domain: &str, ttl: u32, nameserver: Key) -> Result<Zone, NameError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let text = format!("{domain}.");
        let name = Name::from_ascii(&text).map_err(|_| NameError)?;
        Ok(Zone {
            name,
            text,
            ttl,
            nameserver,
        })
    }

    /// `<prefix>.<zone>`, if that is a valid name.
    fn child(&self, prefix: &str) -> Option<Name> {
        Name::from_ascii(format!("{prefix}.{}", self.text)).ok()
    }
}

/// A question: a name in any case and a type.
#[derive(Clone, Debug)]
pub(crate) struct Question {
    pub name: Name,
    pub qtype: RecordType,
}

/// An answer given with authority.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

/// What to do with a question.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Resolution {
    /// Answer it from the cluster's records.
    Answer(Answer),
    /// Not the cluster's name: ask the upstream resolvers.
    Forward,
    /// An ExternalName leads outside the cluster: resolve `target` (same type) upstream and
    /// answer `cnames` followed by its answers; if that fails, answer NODATA with `soa`.
    Chase {
        cnames: Vec<Record>,
        target: Name,
        soa: Box<Record>,
    },
}

/// The name does not exist (or, in a reverse zone, is not the cluster's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NameError;

/// Records found for a name.
#[derive(Debug, Default)]
struct Found {
    answers: Vec<Record>,
    additionals: Vec<Record>,
    /// An outside name the last CNAME in `answers` points to.
    chase: Option<Name>,
}

/// Where a name leads: the owner name it is published under and an address or a CNAME
/// target, with the port (for SRV). The `msg.Service` of CoreDNS.
#[derive(Debug)]
struct Hit {
    owner: String,
    host: Host,
    port: Option<u16>,
}

#[derive(Debug)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

/// What a question resolves to.
pub(crate) fn answer(index: &Index, zone: &Zone, question: &Question) -> Resolution {
    let qname = question.name.to_lowercase();
    if zone.name.zone_of(&qname) {
        return in_zone(index, zone, &qname, question.qtype);
    }
    if question.qtype == RecordType::PTR
        && let Some(ip) = reverse_address(&qname)
    {
        let answers: Vec<Record> = ptr_targets(index, zone, ip)
            .into_iter()
            .map(|target| Record::from_rdata(qname.clone(), zone.ttl, RData::PTR(PTR(target))))
            .collect();
        if !answers.is_empty() {
            return Resolution::Answer(Answer {
                rcode: ResponseCode::NoError,
                answers,
                authorities: Vec::new(),
                additionals: Vec::new(),
            });
        }
    }
    // Other reverse names fall through to forwarding (`fallthrough in-addr.arpa ip6.arpa`).
    Resolution::Forward
}

/// A name in the cluster zone.
fn in_zone(index: &Index, zone: &Zone, qname: &Name, qtype: RecordType) -> Resolution {
    let base = base_labels(zone, qname);
    let base: Vec<&str> = base.iter().map(String::as_str).collect();
    let found = match qtype {
        RecordType::A | RecordType::AAAA => addresses(index, zone, qname, &base, qtype, 0),
        RecordType::SRV => srv(index, zone, qname, &base),
        RecordType::TXT => txt(index, qname, &base),
        RecordType::CNAME => cname(index, zone, qname, &base),
        RecordType::PTR => records(index, &base).map(|_| Found::default()),
        RecordType::SOA if base.is_empty() => Ok(Found {
            answers: vec![soa(index, zone)],
            ..Found::default()
        }),
        // SOA anywhere else is NODATA, whether the name exists or not (as CoreDNS).
        RecordType::SOA => Ok(Found::default()),
        RecordType::NS if base.is_empty() => Ok(ns(index, zone, qname)),
        RecordType::AXFR | RecordType::IXFR => {
            return Resolution::Answer(Answer {
                rcode: ResponseCode::Refused,
                answers: Vec::new(),
                authorities: Vec::new(),
                additionals: Vec::new(),
            });
        }
        // Any other type: NODATA if the name has A records or is a name that exists,
        // NXDOMAIN if not.
        _ if base.is_empty() => Ok(Found::default()),
        _ => hits(index, zone, &base, RecordType::A).map(|_| Found::default()),
    };
    let soa = soa(index, zone);
    match found {
        Err(NameError) => {
            // Until every watch has listed its objects, a missing name may only be late.
            let rcode = if index.synced {
                ResponseCode::NXDomain
            } else {
                ResponseCode::ServFail
            };
            Resolution::Answer(Answer {
                rcode,
                answers: Vec::new(),
                authorities: vec![soa],
                additionals: Vec::new(),
            })
        }
        Ok(Found {
            answers,
            chase: Some(target),
            ..
        }) => Resolution::Chase {
            cnames: answers,
            target,
            soa: Box::new(soa),
        },
        Ok(Found {
            answers,
            additionals,
            chase: None,
        }) => {
            let authorities = if answers.is_empty() {
                vec![soa]
            } else {
                Vec::new()
            };
            Resolution::Answer(Answer {
                rcode: ResponseCode::NoError,
                answers,
                authorities,
                additionals,
            })
        }
    }
}

/// The labels of `qname` in front of the zone, lower case.
fn base_labels(zone: &Zone, qname: &Name) -> Vec<String> {
    let keep = usize::from(qname.num_labels().saturating_sub(zone.name.num_labels()));
    qname
        .iter()
        .take(keep)
        .map(|label| String::from_utf8_lossy(label).to_ascii_lowercase())
        .collect()
}

/// A name below the zone, read as CoreDNS's `parseRequest` reads it.
#[derive(Debug, PartialEq, Eq)]
enum Request<'a> {
    /// The apex, `svc.<zone>` or `pod.<zone>`: nothing to look up, and nothing missing.
    Empty,
    /// Not a name the cluster has.
    Invalid,
    Lookup(Lookup<'a>),
}

#[derive(Debug, PartialEq, Eq)]
struct Lookup<'a> {
    pod: bool,
    namespace: &'a str,
    /// The Service (or the pod's dashed address); `None` for `<ns>.svc.<zone>`.
    service: Option<&'a str>,
    endpoint: Option<&'a str>,
    /// Port name and protocol of an SRV name, without underscores; empty matches any.
    port: &'a str,
    protocol: &'a str,
}

fn parse<'a>(base: &[&'a str]) -> Request<'a> {
    let Some((&kind, rest)) = base.split_last() else {
        return Request::Empty;
    };
    let pod = match kind {
        "pod" => true,
        "svc" => false,
        _ => return Request::Invalid,
    };
    let Some((&namespace, rest)) = rest.split_last() else {
        return Request::Empty;
    };
    let mut lookup = Lookup {
        pod,
        namespace,
        service: None,
        endpoint: None,
        port: "",
        protocol: "",
    };
    let Some((&service, rest)) = rest.split_last() else {
        return Request::Lookup(lookup);
    };
    lookup.service = Some(service);
    match rest {
        [] => {}
        [endpoint] => lookup.endpoint = Some(endpoint),
        [port, protocol] => {
            lookup.port = port.strip_prefix('_').unwrap_or(port);
            lookup.protocol = protocol.strip_prefix('_').unwrap_or(protocol);
        }
        _ => return Request::Invalid,
    }
    Request::Lookup(lookup)
}

/// Everything a name below the zone leads to (CoreDNS's `Records`): `Ok` and empty for a
/// name that exists without records of its own (`<ns>.svc.<zone>`).
fn records(index: &Index, base: &[&str]) -> Result<Vec<Hit>, NameError> {
    let lookup = match parse(base) {
        Request::Empty => return Ok(Vec::new()),
        Request::Invalid => return Err(NameError),
        Request::Lookup(lookup) => lookup,
    };
    if !index.has_namespace(lookup.namespace) {
        return Err(NameError);
    }
    let Some(name) = lookup.service else {
        return Ok(Vec::new());
    };
    if lookup.pod {
        // `pods insecure`: the address in the name is the answer, whether a pod has it or
        // not. A further label or port is not looked at (as CoreDNS).
        let ip = pod_address(name).ok_or(NameError)?;
        let owner = format!("{name}.{}.pod", lookup.namespace);
        return Ok(vec![Hit {
            owner,
            host: Host::Ip(ip),
            port: None,
        }]);
    }
    let service = index.service(lookup.namespace, name).ok_or(NameError)?;
    service_hits(index, &lookup, name, service)
}

/// The address a pod name spells: `10-42-0-5` or `fd00--5`.
fn pod_address(label: &str) -> Option<IpAddr> {
    let text = if label.matches('-').count() == 3 && !label.contains("--") {
        label.replace('-', ".")
    } else {
        label.replace('-', ":")
    };
    text.parse().ok()
}

fn service_hits(
    index: &Index,
    lookup: &Lookup<'_>,
    name: &str,
    service: &ServiceEntry,
) -> Result<Vec<Hit>, NameError> {
    let namespace = lookup.namespace;
    let owner = format!("{name}.{namespace}.svc");
    let mut found = false;
    let mut hits = Vec::new();
    if let ServiceKind::ExternalName(target) = &service.kind {
        // No endpoints or ports below an ExternalName; an address is not a CNAME target.
        let plain = lookup.endpoint.is_none() && lookup.port.is_empty();
        if !plain || !lookup.protocol.is_empty() || target.is_empty() {
            return Err(NameError);
        }
        if target.parse::<IpAddr>().is_ok() {
            return Err(NameError);
        }
        return Ok(vec![Hit {
            owner,
            host: Host::Name(target.clone()),
            port: None,
        }]);
    }
    if service.kind == ServiceKind::Headless || lookup.endpoint.is_some() {
        // A headless Service, or one endpoint of any Service, resolves to endpoints.
        for slice in index.slices_of(namespace, name) {
            let endpoints = slice.endpoints.iter();
            for endpoint in endpoints.filter(|e| e.ready || service.publish_not_ready) {
                for &address in &endpoint.addresses {
                    let label = endpoint.label(address);
                    if lookup
                        .endpoint
                        .is_some_and(|e| !e.eq_ignore_ascii_case(&label))
                    {
                        continue;
                    }
                    for port in slice.ports.iter().filter(|p| port_matches(lookup, p)) {
                        found = true;
                        hits.push(Hit {
                            owner: format!("{label}.{owner}"),
                            host: Host::Ip(address),
                            port: port.port,
                        });
                    }
                }
            }
        }
    } else if let ServiceKind::ClusterIp(ips) = &service.kind {
        for port in service.ports.iter().filter(|p| port_matches(lookup, p)) {
            found = true;
            for &ip in ips {
                hits.push(Hit {
                    owner: owner.clone(),
                    host: Host::Ip(ip),
                    port: port.port,
                });
            }
        }
    }
    if found { Ok(hits) } else { Err(NameError) }
}

/// Whether a port matches the `_<port>._<proto>` of the name (empty matches any).
fn port_matches(lookup: &Lookup<'_>, port: &PortSpec) -> bool {
    (lookup.port.is_empty() || lookup.port.eq_ignore_ascii_case(&port.name))
        && (lookup.protocol.is_empty() || lookup.protocol.eq_ignore_ascii_case(&port.protocol))
}

/// The hits for a question of type `qtype` (CoreDNS's `Services`): `ns.dns.<zone>` is the
/// name server; SRV leaves out CNAMEs.
fn hits(
    index: &Index,
    zone: &Zone,
    base: &[&str],
    qtype: RecordType,
) -> Result<Vec<Hit>, NameError> {
    if base == ["ns", "dns"] {
        return Ok(nameserver_addresses(index, zone)
            .into_iter()
            .filter(|(_, ip)| family_type(*ip) == qtype)
            .map(|(owner, ip)| Hit {
                owner,
                host: Host::Ip(ip),
                port: None,
            })
            .collect());
    }
    let mut hits = records(index, base)?;
    if qtype == RecordType::SRV {
        hits.retain(|hit| matches!(hit.host, Host::Ip(_)));
    }
    Ok(hits)
}

/// The name server's names and addresses: the cluster IPs of the configured Service.
fn nameserver_addresses(index: &Index, zone: &Zone) -> Vec<(String, IpAddr)> {
    let (namespace, name) = &zone.nameserver;
    match index.service(namespace, name) {
        Some(ServiceEntry {
            kind: ServiceKind::ClusterIp(ips),
            ..
        }) => ips
            .iter()
            .map(|ip| (format!("{name}.{namespace}.svc"), ip.to_canonical()))
            .collect(),
        _ => Vec::new(),
    }
}

/// A or AAAA, by the address's family.
fn family_type(ip: IpAddr) -> RecordType {
    match ip.to_canonical() {
        IpAddr::V4(_) => RecordType::A,
        IpAddr::V6(_) => RecordType::AAAA,
    }
}

/// The address record for `ip` named `owner`.
fn address_record(owner: Name, ttl: u32, ip: IpAddr) -> Record {
    match ip.to_canonical() {
        IpAddr::V4(v4) => Record::from_rdata(owner, ttl, RData::A(A(v4))),
        IpAddr::V6(v6) => Record::from_rdata(owner, ttl, RData::AAAA(AAAA(v6))),
    }
}

/// A or AAAA records (CoreDNS's `A`/`AAAA`), following ExternalName CNAMEs inside the zone.
fn addresses(
    index: &Index,
    zone: &Zone,
    qname: &Name,
    base: &[&str],
    qtype: RecordType,
    depth: usize,
) -> Result<Found, NameError> {
    // The apex answers with the name server's addresses, as `ns.dns.<zone>` does.
    let hits = hits(
        index,
        zone,
        if base.is_empty() {
            &["ns", "dns"]
        } else {
            base
        },
        qtype,
    )?;
    let mut found = Found::default();
    let mut seen = HashSet::new();
    for hit in hits {
        match hit.host {
            Host::Ip(ip) => {
                if family_type(ip) == qtype && seen.insert(ip.to_canonical()) {
                    found
                        .answers
                        .push(address_record(qname.clone(), zone.ttl, ip));
                }
            }
            Host::Name(target) => {
                let Ok(target) = Name::from_ascii(format!("{}.", target.trim_end_matches('.')))
                else {
                    continue;
                };
                let target = target.to_lowercase();
                // A target at or below the name itself would be a loop.
                if qname.zone_of(&target) || depth >= MAX_CNAME_CHAIN {
                    continue;
                }
                let cname = Record::from_rdata(
                    qname.clone(),
                    zone.ttl,
                    RData::CNAME(CNAME(target.clone())),
                );
                if !zone.name.zone_of(&target) {
                    found.answers.push(cname);
                    found.chase = Some(target);
                    continue;
                }
                let labels = base_labels(zone, &target);
                let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
                // A target in the zone is followed; the CNAME is kept only if it led somewhere.
                if let Ok(next) = addresses(index, zone, &target, &labels, qtype, depth + 1)
                    && (!next.answers.is_empty() || next.chase.is_some())
                {
                    found.answers.push(cname);
                    found.answers.extend(next.answers);
                    found.chase = next.chase;
                }
            }
        }
    }
    Ok(found)
}

/// SRV records for every (target, port), with the targets' addresses as additional records.
fn srv(index: &Index, zone: &Zone, qname: &Name, base: &[&str]) -> Result<Found, NameError> {
    let hits = hits(index, zone, base, RecordType::SRV)?;
    // CoreDNS shares a weight of 100 per record among all it found at one priority.
    let share = 100.0 / (100.0 * hits.len() as f64) * 100.0;
    let weight = (share.floor() as u16).max(1);
    let mut found = Found::default();
    let mut seen_srv = HashSet::new();
    let mut seen_address = HashSet::new();
    for hit in &hits {
        let (Host::Ip(ip), Some(port)) = (&hit.host, hit.port) else {
            continue;
        };
        let Some(target) = zone.child(&hit.owner) else {
            continue;
        };
        if seen_srv.insert((target.clone(), port)) {
            let data = SRV::new(0, weight, port, target.clone());
            found.answers.push(Record::from_rdata(
                qname.clone(),
                zone.ttl,
                RData::SRV(data),
            ));
        }
        if seen_address.insert((target.clone(), *ip)) {
            found
                .additionals
                .push(address_record(target, zone.ttl, *ip));
        }
    }
    Ok(found)
}

/// TXT: only `dns-version.<zone>` has one; other names that have records are NODATA.
fn txt(index: &Index, qname: &Name, base: &[&str]) -> Result<Found, NameError> {
    if base == ["dns-version"] {
        let data = TXT::new(vec![SCHEMA_VERSION.to_owned()]);
        let record = Record::from_rdata(qname.clone(), SCHEMA_VERSION_TTL, RData::TXT(data));
        return Ok(Found {
            answers: vec![record],
            ..Found::default()
        });
    }
    // Unlike other types, a name without records of its own (`svc.<zone>`) is NXDOMAIN here
    // (as CoreDNS).
    match records(index, base) {
        Ok(hits) if !hits.is_empty() => Ok(Found::default()),
        _ => Err(NameError),
    }
}

/// CNAME: an ExternalName's target.
fn cname(index: &Index, zone: &Zone, qname: &Name, base: &[&str]) -> Result<Found, NameError> {
    let hits = hits(index, zone, base, RecordType::CNAME)?;
    let mut found = Found::default();
    if let Some(Hit {
        host: Host::Name(target),
        ..
    }) = hits.first()
        && let Ok(target) = Name::from_ascii(format!("{}.", target.trim_end_matches('.')))
    {
        found.answers.push(Record::from_rdata(
            qname.clone(),
            zone.ttl,
            RData::CNAME(CNAME(target)),
        ));
    }
    Ok(found)
}

/// NS at the apex: the name server's Service names, with their addresses.
fn ns(index: &Index, zone: &Zone, qname: &Name) -> Found {
    let mut found = Found::default();
    let mut seen = HashSet::new();
    for (owner, ip) in nameserver_addresses(index, zone) {
        let Some(host) = zone.child(&owner) else {
            continue;
        };
        if seen.insert(host.clone()) {
            let record = Record::from_rdata(qname.clone(), zone.ttl, RData::NS(NS(host.clone())));
            found.answers.push(record);
        }
        found.additionals.push(address_record(host, zone.ttl, ip));
    }
    found
}

/// The zone's SOA record, as CoreDNS makes it.
fn soa(index: &Index, zone: &Zone) -> Record {
    let mname = zone.child("ns.dns").unwrap_or_else(|| zone.name.clone());
    let rname = zone
        .child("hostmaster")
        .unwrap_or_else(|| zone.name.clone());
    let data = SOA::new(mname, rname, index.serial, 7200, 1800, 86400, zone.ttl);
    Record::from_rdata(zone.name.clone(), zone.ttl.min(300), RData::SOA(data))
}
