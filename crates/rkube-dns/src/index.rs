//! What the cluster's names are made of: the Services, the endpoints of their EndpointSlices
//! and the namespaces that exist, reduced to the few fields DNS reads. The watchers change it
//! one object at a time; lookups read it. Pure data, no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that names the Service an EndpointSlice belongs to.
pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service or EndpointSlice named by namespace and name.
pub(crate) type Key = (String, String);

/// A port as SRV names see it (`_<name>._<protocol>`). `port` is `None` for the stand-in a
/// Service or EndpointSlice without ports gets, so that its addresses still resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PortSpec {
    pub name: String,
    pub protocol: String,
    pub port: Option<u16>,
}

impl PortSpec {
    /// The stand-in for "no ports": matches a name without `_port._proto`, makes no SRV record.
    fn none() -> PortSpec {
        PortSpec {
            name: String::new(),
            protocol: String::new(),
            port: None,
        }
    }
}

/// How a Service's own name resolves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ServiceKind {
    /// The virtual IPs of `spec.clusterIPs`, one per family.
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the name resolves to the endpoints' addresses.
    Headless,
    /// `type: ExternalName`: a CNAME to `spec.externalName`.
    ExternalName(String),
}

/// The part of a Service that DNS answers from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServiceEntry {
    pub kind: ServiceKind,
    /// Never empty: a Service without ports has the stand-in port.
    pub ports: Vec<PortSpec>,
    /// `spec.publishNotReadyAddresses`: endpoints count whether ready or not.
    pub publish_not_ready: bool,
}

/// One endpoint of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EndpointEntry {
    pub addresses: Vec<IpAddr>,
    /// `hostname` (set by the EndpointSlice controller from a pod's hostname and subdomain).
    pub hostname: Option<String>,
    /// `conditions.ready`; unknown counts as ready, as the API asks consumers to read it.
    pub ready: bool,
}

impl EndpointEntry {
    /// The first label of the endpoint's own name: its hostname, or else its address with
    /// dashes (`10-42-0-5`, `fd00--5`), as CoreDNS names endpoints.
    pub(crate) fn label(&self, address: IpAddr) -> String {
        match &self.hostname {
            Some(hostname) if !hostname.is_empty() => hostname.clone(),
            _ => address.to_string().replace(['.', ':'], "-"),
        }
    }
}

/// The part of an EndpointSlice that DNS answers from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SliceEntry {
    /// The Service it belongs to (same namespace).
    pub service: String,
    pub endpoints: Vec<EndpointEntry>,
    /// Never empty: a slice without ports has the stand-in port.
    pub ports: Vec<PortSpec>,
}

/// The cluster's records, kept current by the watchers.
#[derive(Debug, Default)]
pub(crate) struct Index {
    namespaces: HashSet<String>,
    services: HashMap<Key, ServiceEntry>,
    slices: HashMap<Key, SliceEntry>,
    /// Service → the names of its EndpointSlices, in name order so answers are stable.
    slices_of_service: HashMap<Key, BTreeSet<String>>,
    /// Reverse lookups: cluster IP → Services, endpoint address → EndpointSlices.
    cluster_ips: HashMap<IpAddr, BTreeSet<Key>>,
    endpoint_ips: HashMap<IpAddr, BTreeSet<Key>>,
    /// Whether every watch has delivered its first complete list. Until then a name that is
    /// not found may exist, so it is answered SERVFAIL instead of NXDOMAIN (as CoreDNS does).
    pub synced: bool,
    /// The zone's SOA serial: when the records last changed, in seconds since the epoch.
    pub serial: u32,
}

impl Index {
    /// Whether the namespace exists.
    pub(crate) fn has_namespace(&self, name: &str) -> bool {
        self.namespaces.contains(name)
    }

    /// The Service `namespace/name`.
    pub(crate) fn service(&self, namespace: &str, name: &str) -> Option<&ServiceEntry> {
        self.services.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// The EndpointSlices of the Service `namespace/name`, in name order.
    pub(crate) fn slices_of(&self, namespace: &str, name: &str) -> Vec<&SliceEntry> {
        let key = (namespace.to_owned(), name.to_owned());
        let Some(names) = self.slices_of_service.get(&key) else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|slice| self.slices.get(&(namespace.to_owned(), slice.clone())))
            .collect()
    }

    /// The Services with `ip` among their cluster IPs, in (namespace, name) order.
    pub(crate) fn services_with_cluster_ip(&self, ip: IpAddr) -> impl Iterator<Item = &Key> {
        self.cluster_ips.get(&ip).into_iter().flatten()
    }

    /// The EndpointSlices with an endpoint at `ip`, as (namespace, slice) keys with the slice.
    pub(crate) fn slices_with_address(
        &self,
        ip: IpAddr,
    ) -> impl Iterator<Item = (&Key, &SliceEntry)> {
        self.endpoint_ips
            .get(&ip)
            .into_iter()
            .flatten()
            .filter_map(|key| self.slices.get(key).map(|slice| (key, slice)))
    }

    /// Adds or replaces a namespace.
    pub(crate) fn upsert_namespace(&mut self, name: &str) {
        self.namespaces.insert(name.to_owned());
    }

    /// Removes a namespace (its Services go with their own deletions).
    pub(crate) fn delete_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Replaces every namespace (a watch's complete list).
    pub(crate) fn replace_namespaces<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        self.namespaces = names.into_iter().map(str::to_owned).collect();
    }

    /// Adds or replaces a Service. One without a name or namespace is ignored.
    pub(crate) fn upsert_service(&mut self, service: &Service) {
        let (Some(namespace), Some(name)) = (&service.metadata.namespace, &service.metadata.name)
        else {
            return;
        };
        let key = (namespace.clone(), name.clone());
        self.delete_service(namespace, name);
        let entry = service_entry(service);
        if let ServiceKind::ClusterIp(ips) = &entry.kind {
            for ip in ips {
                self.cluster_ips.entry(*ip).or_default().insert(key.clone());
            }
        }
        self.services.insert(key, entry);
    }

    /// Removes a Service.
    pub(crate) fn delete_service(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(ServiceEntry {
            kind: ServiceKind::ClusterIp(ips),
            ..
        }) = self.services.remove(&key)
        {
            for ip in ips {
                remove_from(&mut self.cluster_ips, ip, &key);
            }
        }
    }

    /// Replaces every Service (a watch's complete list).
    pub(crate) fn replace_services<'a>(&mut self, services: impl IntoIterator<Item = &'a Service>) {
        self.services.clear();
        self.cluster_ips.clear();
        for service in services {
            self.upsert_service(service);
        }
    }

    /// Adds or replaces an EndpointSlice. One without the service-name label, a name or a
    /// namespace is ignored, as are FQDN slices.
    pub(crate) fn upsert_slice(&mut self, slice: &EndpointSlice) {
        let (Some(namespace), Some(name)) = (&slice.metadata.namespace, &slice.metadata.name)
        else {
            return;
        };
        self.delete_slice(namespace, name);
        let Some(entry) = slice_entry(slice) else {
            return;
        };
        let key = (namespace.clone(), name.clone());
        for endpoint in &entry.endpoints {
            for address in &endpoint.addresses {
                self.endpoint_ips
                    .entry(*address)
                    .or_default()
                    .insert(key.clone());
            }
        }
        self.slices_of_service
            .entry((namespace.clone(), entry.service.clone()))
            .or_default()
            .insert(name.clone());
        self.slices.insert(key, entry);
    }

    /// Removes an EndpointSlice.
    pub(crate) fn delete_slice(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        let Some(entry) = self.slices.remove(&key) else {
            return;
        };
        for endpoint in &entry.endpoints {
            for address in &endpoint.addresses {
                remove_from(&mut self.endpoint_ips, *address, &key);
            }
        }
        let service = (namespace.to_owned(), entry.service);
        if let Some(names) = self.slices_of_service.get_mut(&service) {
            names.remove(name);
            if names.is_empty() {
                self.slices_of_service.remove(&service);
            }
        }
    }

    /// Replaces every EndpointSlice (a watch's complete list).
    pub(crate) fn replace_slices<'a>(
        &mut self,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) {
        self.slices.clear();
        self.slices_of_service.clear();
        self.endpoint_ips.clear();
        for slice in slices {
            self.upsert_slice(slice);
        }
    }
}

/// Removes `key` from the set under `ip`, and the set once it is empty.
fn remove_from(map: &mut HashMap<IpAddr, BTreeSet<Key>>, ip: IpAddr, key: &Key) {
    if let Some(keys) = map.get_mut(&ip) {
        keys.remove(key);
        if keys.is_empty() {
            map.remove(&ip);
        }
    }
}

/// What DNS needs of a Service.
fn service_entry(service: &Service) -> ServiceEntry {
    let spec = service.spec.clone().unwrap_or_default();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        ServiceKind::ExternalName(spec.external_name.clone().unwrap_or_default())
    } else if spec.cluster_ip.as_deref() == Some("None") {
        ServiceKind::Headless
    } else {
        // clusterIPs holds clusterIP first; older objects may only have clusterIP.
        let ips = match &spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips.clone(),
            _ => spec.cluster_ip.iter().cloned().collect(),
        };
        ServiceKind::ClusterIp(ips.iter().filter_map(|ip| ip.parse().ok()).collect())
    };
    let mut ports: Vec<PortSpec> = spec
        .ports
        .iter()
        .flatten()
        .map(|port| PortSpec {
            name: port.name.clone().unwrap_or_default(),
            protocol: port.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
            port: u16::try_from(port.port).ok(),
        })
        .collect();
    if ports.is_empty() {
        ports.push(PortSpec::none());
    }
    ServiceEntry {
        kind,
        ports,
        publish_not_ready: spec.publish_not_ready_addresses == Some(true),
    }
}

/// What DNS needs of an EndpointSlice; `None` for a slice it does not answer from.
fn slice_entry(slice: &EndpointSlice) -> Option<SliceEntry> {
    let labels: &BTreeMap<String, String> = slice.metadata.labels.as_ref()?;
    let service = labels.get(SERVICE_NAME_LABEL)?.clone();
    if slice.address_type != "IPv4" && slice.address_type != "IPv6" {
        return None;
    }
    let endpoints = slice
        .endpoints
        .iter()
        .map(|endpoint| EndpointEntry {
            addresses: endpoint
                .addresses
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect(),
            hostname: endpoint.hostname.clone(),
            ready: endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true),
        })
        .collect();
    let mut ports: Vec<PortSpec> = slice
        .ports
        .iter()
        .flatten()
        .map(|port| PortSpec {
            name: port.name.clone().unwrap_or_default(),
            protocol: port.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
            port: port.port.and_then(|p| u16::try_from(p).ok()),
        })
        .collect();
    if ports.is_empty() {
        ports.push(PortSpec::none());
    }
    Some(SliceEntry {
        service,
        endpoints,
        ports,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    /// A Service of `type_` with the given cluster IPs (or "None") and named TCP ports.
    pub(crate) fn service(
        namespace: &str,
        name: &str,
        cluster_ips: &[&str],
        ports: &[(&str, i32)],
    ) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                cluster_ip: cluster_ips.first().map(|ip| (*ip).to_owned()),
                cluster_ips: Some(cluster_ips.iter().map(|ip| (*ip).to_owned()).collect()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(name, port)| ServicePort {
                            name: (!name.is_empty()).then(|| (*name).to_owned()),
                            port: *port,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// An ExternalName Service.
    pub(crate) fn external(namespace: &str, name: &str, target: &str) -> Service {
        let mut service = service(namespace, name, &[], &[]);
        let spec = service.spec.as_mut().expect("spec");
        spec.type_ = Some("ExternalName".into());
        spec.external_name = Some(target.into());
        spec.cluster_ip = None;
        spec.cluster_ips = None;
        service
    }

    /// An EndpointSlice of `service` with (address, hostname, ready) endpoints and TCP ports.
    pub(crate) fn slice(
        namespace: &str,
        name: &str,
        service: &str,
        endpoints: &[(&str, Option<&str>, bool)],
        ports: &[(&str, i32)],
    ) -> EndpointSlice {
        let address_type = if endpoints.iter().any(|(a, _, _)| a.contains(':')) {
            "IPv6"
        } else {
            "IPv4"
        };
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                labels: Some([(SERVICE_NAME_LABEL.to_owned(), service.to_owned())].into()),
                ..Default::default()
            },
            address_type: address_type.into(),
            endpoints: endpoints
                .iter()
                .map(|(address, hostname, ready)| Endpoint {
                    addresses: vec![(*address).to_owned()],
                    hostname: hostname.map(str::to_owned),
                    conditions: Some(EndpointConditions {
                        ready: Some(*ready),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port)| EndpointPort {
                        name: Some((*name).to_owned()),
                        port: Some(*port),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn a_replaced_service_leaves_no_reverse_entry_for_its_old_ip() {
        let mut index = Index::default();
        index.upsert_service(&service("default", "web", &["10.43.0.5"], &[("http", 80)]));
        index.upsert_service(&service("default", "web", &["10.43.0.6"], &[("http", 80)]));
        let old: Vec<_> = index
            .services_with_cluster_ip("10.43.0.5".parse().unwrap())
            .collect();
        let new: Vec<_> = index
            .services_with_cluster_ip("10.43.0.6".parse().unwrap())
            .collect();
        assert!(old.is_empty());
        assert_eq!(new, vec![&("default".to_owned(), "web".to_owned())]);
    }

    #[test]
    fn a_deleted_slice_is_gone_from_its_service_and_the_reverse_map() {
        let mut index = Index::default();
        let ep = [("10.42.0.7", None, true)];
        index.upsert_slice(&slice("default", "web-abc", "web", &ep, &[("http", 8080)]));
        assert_eq!(index.slices_of("default", "web").len(), 1);
        index.delete_slice("default", "web-abc");
        assert!(index.slices_of("default", "web").is_empty());
        assert_eq!(
            index
                .slices_with_address("10.42.0.7".parse().unwrap())
                .count(),
            0
        );
    }

    #[test]
    fn slices_without_the_service_label_or_with_fqdn_addresses_are_ignored() {
        let mut index = Index::default();
        let mut unlabelled = slice("default", "x", "web", &[("10.42.0.7", None, true)], &[]);
        unlabelled.metadata.labels = None;
        index.upsert_slice(&unlabelled);
        let mut fqdn = slice("default", "y", "web", &[("10.42.0.8", None, true)], &[]);
        fqdn.address_type = "FQDN".into();
        index.upsert_slice(&fqdn);
        assert!(index.slices_of("default", "web").is_empty());
    }

    #[test]
    fn a_complete_list_replaces_what_was_there() {
        let mut index = Index::default();
        index.upsert_service(&service("default", "old", &["10.43.0.9"], &[]));
        let fresh = service("default", "new", &["10.43.0.10"], &[]);
        index.replace_services([&fresh]);
        assert!(index.service("default", "old").is_none());
        assert!(index.service("default", "new").is_some());
        assert_eq!(
            index
                .services_with_cluster_ip("10.43.0.9".parse().unwrap())
                .count(),
            0
        );
    }

    #[test]
    fn a_service_without_ports_gets_the_stand_in_port() {
        let mut index = Index::default();
        index.upsert_service(&service("default", "bare", &["10.43.0.11"], &[]));
        let entry = index.service("default", "bare").expect("service");
        assert_eq!(entry.ports, vec![PortSpec::none()]);
    }

    #[test]
    fn endpoints_without_hostname_are_named_by_their_address() {
        let endpoint = EndpointEntry {
            addresses: vec![],
            hostname: None,
            ready: true,
        };
        assert_eq!(endpoint.label("10.42.0.5".parse().unwrap()), "10-42-0-5");
        assert_eq!(endpoint.label("fd00::5".parse().unwrap()), "fd00--5");
    }
}
