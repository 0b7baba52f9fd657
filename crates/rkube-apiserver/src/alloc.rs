//! Service ClusterIPs and NodePorts. Each allocated IP or port is a key in the store, claimed
//! with a create: two Services can never get the same one, even through several API servers.

use std::net::Ipv4Addr;
use std::str::FromStr;

use rkube_api::registry::ResourceType;
use rkube_api::{ApiError, FieldError};
use serde_json::{Value, json};

use crate::app::App;

/// The NodePort range (upstream's default).
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

const IP_PREFIX: &str = "/registry/rkube/serviceips/";
const PORT_PREFIX: &str = "/registry/rkube/nodeports/";

/// An IPv4 range such as `10.43.0.0/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    base: u32,
    bits: u8,
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ip, bits) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (want a.b.c.d/n)"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("{s:?}: bad address"))?;
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|b| (8..=30).contains(b))
            .ok_or_else(|| format!("{s:?}: prefix must be 8 to 30"))?;
        let mask = u32::MAX << (32 - bits);
        Ok(Self {
            base: u32::from(ip) & mask,
            bits,
        })
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.bits)
    }
}

impl Ipv4Cidr {
    /// Upstream rkube's default Service range, 10.43.0.0/16.
    pub fn default_services() -> Self {
        Self {
            base: u32::from(Ipv4Addr::new(10, 43, 0, 0)),
            bits: 16,
        }
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.bits)
    }

    /// The `n`th address of the range.
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + n)
    }

    /// Whether `ip` lies in the range, excluding its network and broadcast addresses.
    pub fn contains_host(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip > self.base && ip < self.base + self.size() - 1
    }

    /// How many host addresses it has.
    pub fn hosts(&self) -> u32 {
        self.size() - 2
    }
}

pub(crate) fn is_service(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.kind == "Service"
}

/// The ClusterIPs and NodePorts an update claimed, and those it gives back once written.
#[derive(Debug, Default)]
pub(crate) struct ServiceClaims {
    claimed: Claimed,
    freed: Vec<String>,
}

/// The keys a write claimed. A dry run claims nothing: it only looks for what is free, as
/// upstream's dry-run allocators pick an address or port without reserving it.
#[derive(Debug, Default)]
struct Claimed {
    keys: Vec<String>,
    dry: bool,
}

/// A Service's type (ClusterIP when unset, as defaulting makes it).
fn service_type(service: &Value) -> &str {
    service["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

fn needs_node_ports(service_type: &str) -> bool {
    matches!(service_type, "NodePort" | "LoadBalancer")
}

/// Whether ports without a NodePort get one: a LoadBalancer may decline
/// (`allocateLoadBalancerNodePorts: false`), as upstream's `shouldAllocateNodePorts`.
fn allocates_node_ports(service: &Value) -> bool {
    service_type(service) != "LoadBalancer"
        || service["spec"]["allocateLoadBalancerNodePorts"].as_bool() != Some(false)
}

/// Whether the Service gets a health check node port: a LoadBalancer keeping external
/// traffic on the node it arrives at (upstream's `needsHCNodePort`).
fn needs_health_check_port(service: &Value) -> bool {
    service_type(service) == "LoadBalancer"
        && service["spec"]["externalTrafficPolicy"].as_str() == Some("Local")
}

fn health_check_port(service: &Value) -> Option<u64> {
    service["spec"]["healthCheckNodePort"]
        .as_u64()
        .filter(|p| *p > 0)
}

/// The NodePorts a Service's ports hold.
fn node_ports(service: &Value) -> Vec<u64> {
    service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|port| port["nodePort"].as_u64().filter(|p| *p > 0))
        .collect()
}

/// Whom a claimed IP or port belongs to, as recorded in its store key.
fn owner_of(service: &Value) -> Value {
    json!({"namespace": service["metadata"]["namespace"], "name": service["metadata"]["name"]})
}

/// 422 for the Service with `cause`.
fn invalid(service: &Value, cause: FieldError) -> ApiError {
    ApiError::Invalid {
        kind: "Service".into(),
        name: service["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        causes: vec![cause],
    }
}

impl App {
    /// Claims a store key for an IP or port; false if taken.
    async fn claim(&self, key: &str, owner: &Value) -> Result<bool, ApiError> {
        match self
            .objects
            .store()
            .create(key, owner.to_string().into_bytes(), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(rkube_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(err) => Err(ApiError::Internal(format!("allocating {key}: {err}"))),
        }
    }

    /// Claims `key` for a write (or, in a dry run, checks that it is free); false if taken.
    async fn take(
        &self,
        key: String,
        owner: &Value,
        claimed: &mut Claimed,
    ) -> Result<bool, ApiError> {
        if claimed.dry {
            return match self.objects.store().get(&key, None).await {
                Ok(None) => Ok(true),
                Ok(Some(_)) => Ok(false),
                Err(err) => Err(ApiError::Internal(format!("allocating {key}: {err}"))),
            };
        }
        let free = self.claim(&key, owner).await?;
        if free {
            claimed.keys.push(key);
        }
        Ok(free)
    }

    async fn unclaim(&self, key: &str) {
        let _ = self.objects.store().delete(key, None).await;
    }

    /// Gives a new Service its ClusterIP and NodePorts; a dry run fills in free ones without
    /// claiming them.
    pub(crate) async fn allocate(
        &self,
        rt: &ResourceType,
        service: &mut Value,
        dry: bool,
    ) -> Result<(), ApiError> {
        if !is_service(rt) {
            return Ok(());
        }
        let mut claimed = Claimed {
            keys: Vec::new(),
            dry,
        };
        let result = self.allocate_service(service, &mut claimed).await;
        if result.is_err() {
            for key in claimed.keys {
                self.unclaim(&key).await;
            }
        }
        result
    }

    async fn allocate_service(
        &self,
        service: &mut Value,
        claimed: &mut Claimed,
    ) -> Result<(), ApiError> {
        let kind = service_type(service).to_owned();
        if kind != "ExternalName" {
            self.allocate_cluster_ip(service, claimed).await?;
        }
        if needs_node_ports(&kind) {
            let auto = allocates_node_ports(service);
            let ports = service["spec"]["ports"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut out = Vec::new();
            for (i, mut port) in ports.into_iter().enumerate() {
                let requested = port["nodePort"].as_u64().filter(|p| *p > 0);
                if requested.is_some() || auto {
                    let p = self
                        .claim_node_port(
                            service,
                            &format!("spec.ports[{i}].nodePort"),
                            requested,
                            claimed,
                        )
                        .await?;
                    port["nodePort"] = json!(p);
                }
                out.push(port);
            }
            service["spec"]["ports"] = json!(out);
        }
        if needs_health_check_port(service) {
            let requested = health_check_port(service);
            let p = self
                .claim_node_port(service, "spec.healthCheckNodePort", requested, claimed)
                .await?;
            service["spec"]["healthCheckNodePort"] = json!(p);
        }
        Ok(())
    }

    /// Claims the Service's ClusterIP: the one it asks for, or a free one; none for a
    /// headless Service.
    async fn allocate_cluster_ip(
        &self,
        service: &mut Value,
        claimed: &mut Claimed,
    ) -> Result<(), ApiError> {
        let owner = owner_of(service);
        let wanted = service["spec"]["clusterIP"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let ip = match wanted.as_str() {
            "None" => "None".to_owned(),
            "" => {
                let cidr = self.config.service_cidr;
                let start = rand::random::<u32>() % cidr.hosts();
                let mut found = None;
                for i in 0..cidr.hosts() {
                    // Host 1 is the kubernetes Service's; everything else is handed out.
                    let n = 2 + (start + i) % (cidr.hosts() - 1);
                    let ip = cidr.nth(n).to_string();
                    if self
                        .take(format!("{IP_PREFIX}{ip}"), &owner, claimed)
                        .await?
                    {
                        found = Some(ip);
                        break;
                    }
                }
                found.ok_or_else(|| {
                    ApiError::Internal("no ClusterIP left in the service CIDR".into())
                })?
            }
            ip => {
                let parsed: Ipv4Addr = ip.parse().map_err(|_| {
                    invalid(
                        service,
                        FieldError::invalid(
                            "spec.clusterIPs[0]",
                            ip,
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                        ),
                    )
                })?;
                if !self.config.service_cidr.contains_host(parsed) {
                    return Err(invalid(
                        service,
                        FieldError::invalid(
                            "spec.clusterIPs",
                            json!([ip]),
                            &format!(
                                "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range"
                            ),
                        ),
                    ));
                }
                if !self
                    .take(format!("{IP_PREFIX}{ip}"), &owner, claimed)
                    .await?
                {
                    return Err(invalid(
                        service,
                        FieldError::invalid(
                            "spec.clusterIPs",
                            json!([ip]),
                            &format!(
                                "failed to allocate IP {ip}: provided IP is already allocated"
                            ),
                        ),
                    ));
                }
                ip.to_owned()
            }
        };
        service["spec"]["clusterIP"] = json!(ip);
        service["spec"]["clusterIPs"] = json!([ip]);
        if ip != "None" || service["spec"].get("ipFamilies").is_none() {
            service["spec"]["ipFamilies"] = json!(["IPv4"]);
        }
        if service["spec"].get("ipFamilyPolicy").is_none() {
            service["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        }
        Ok(())
    }

    /// Claims port `i`'s NodePort: `requested`, or a free one.
    async fn claim_node_port(
        &self,
        service: &Value,
        field: &str,
        requested: Option<u64>,
        claimed: &mut Claimed,
    ) -> Result<u64, ApiError> {
        let owner = owner_of(service);
        if let Some(p) = requested {
            let in_range = u16::try_from(p).is_ok_and(|p| NODE_PORTS.contains(&p));
            if !in_range {
                return Err(invalid(
                    service,
                    FieldError::invalid(
                        field,
                        p,
                        "provided port is not in the valid range. The range of valid ports is 30000-32767",
                    ),
                ));
            }
            if !self
                .take(format!("{PORT_PREFIX}{p}"), &owner, claimed)
                .await?
            {
                return Err(invalid(
                    service,
                    FieldError::invalid(field, p, "provided port is already allocated"),
                ));
            }
            return Ok(p);
        }
        let span = u32::from(*NODE_PORTS.end() - *NODE_PORTS.start()) + 1;
        let start = rand::random::<u32>() % span;
        for j in 0..span {
            let p = u64::from(*NODE_PORTS.start()) + u64::from((start + j) % span);
            if self
                .take(format!("{PORT_PREFIX}{p}"), &owner, claimed)
                .await?
            {
                return Ok(p);
            }
        }
        Err(ApiError::Internal("no NodePort left".into()))
    }

    /// What an update of a Service (`new`, replacing `old`) claims and frees, as upstream's
    /// `allocateUpdate`: a Service leaving ExternalName gets a ClusterIP as on create, one
    /// becoming ExternalName gives its address back; a NodePort or LoadBalancer Service gets
    /// the NodePorts it lacks (or asks for anew) and gives back those it no longer has, and
    /// one becoming ClusterIP or ExternalName gives back all of them. New claims are made
    /// now (and put back by [`App::abandon_update`] if the write fails); what is freed is
    /// freed once the write succeeds ([`App::finish_update`]).
    pub(crate) async fn allocate_update(
        &self,
        rt: &ResourceType,
        new: &mut Value,
        old: &Value,
        dry: bool,
    ) -> Result<ServiceClaims, ApiError> {
        let mut claims = ServiceClaims::default();
        claims.claimed.dry = dry;
        if !is_service(rt) {
            return Ok(claims);
        }
        let result = self.allocate_service_update(new, old, &mut claims).await;
        if let Err(err) = result {
            self.abandon_update(claims).await;
            return Err(err);
        }
        Ok(claims)
    }

    async fn allocate_service_update(
        &self,
        new: &mut Value,
        old: &Value,
        claims: &mut ServiceClaims,
    ) -> Result<(), ApiError> {
        let (old_type, new_type) = (service_type(old), service_type(new).to_owned());
        if old_type == "ExternalName" && new_type != "ExternalName" {
            self.allocate_cluster_ip(new, &mut claims.claimed).await?;
        } else if old_type != "ExternalName"
            && new_type == "ExternalName"
            && let Some(ip) = old["spec"]["clusterIP"]
                .as_str()
                .filter(|ip| *ip != "None" && !ip.is_empty())
        {
            claims.freed.push(format!("{IP_PREFIX}{ip}"));
        }
        let old_ports = node_ports(old);
        if needs_node_ports(old_type) && matches!(new_type.as_str(), "ClusterIP" | "ExternalName") {
            claims
                .freed
                .extend(old_ports.iter().map(|p| format!("{PORT_PREFIX}{p}")));
        }
        if needs_node_ports(&new_type) {
            let auto = allocates_node_ports(new);
            let mut ports = new["spec"]["ports"].as_array().cloned().unwrap_or_default();
            let mut taken = Vec::new();
            for (i, port) in ports.iter_mut().enumerate() {
                match port["nodePort"].as_u64().filter(|p| *p > 0) {
                    // A port the Service held already, or claimed for an earlier port, stays.
                    Some(p) if old_ports.contains(&p) || taken.contains(&p) => {}
                    Some(p) => {
                        self.claim_node_port(
                            new,
                            &format!("spec.ports[{i}].nodePort"),
                            Some(p),
                            &mut claims.claimed,
                        )
                        .await?;
                        taken.push(p);
                    }
                    None if auto => {
                        let p = self
                            .claim_node_port(
                                new,
                                &format!("spec.ports[{i}].nodePort"),
                                None,
                                &mut claims.claimed,
                            )
                            .await?;
                        port["nodePort"] = json!(p);
                    }
                    None => {}
                }
            }
            new["spec"]["ports"] = json!(ports);
            let kept = node_ports(new);
            claims.freed.extend(
                old_ports
                    .iter()
                    .filter(|p| !kept.contains(p))
                    .map(|p| format!("{PORT_PREFIX}{p}")),
            );
        }
        let old_check = health_check_port(old);
        if needs_health_check_port(new) {
            match health_check_port(new) {
                Some(p) if Some(p) == old_check => {}
                requested => {
                    let p = self
                        .claim_node_port(
                            new,
                            "spec.healthCheckNodePort",
                            requested,
                            &mut claims.claimed,
                        )
                        .await?;
                    new["spec"]["healthCheckNodePort"] = json!(p);
                    claims
                        .freed
                        .extend(old_check.map(|p| format!("{PORT_PREFIX}{p}")));
                }
            }
        } else if let Some(p) = old_check {
            claims.freed.push(format!("{PORT_PREFIX}{p}"));
        }
        claims.freed.sort();
        claims.freed.dedup();
        Ok(())
    }

    /// Puts back what an update that was not written claimed.
    pub(crate) async fn abandon_update(&self, claims: ServiceClaims) {
        for key in claims.claimed.keys {
            self.unclaim(&key).await;
        }
    }

    /// Frees what a written update gave up.
    pub(crate) async fn finish_update(&self, claims: ServiceClaims) {
        if claims.claimed.dry {
            return;
        }
        for key in claims.freed {
            self.unclaim(&key).await;
        }
    }

    /// Frees what a deleted Service held.
    pub(crate) async fn release(&self, rt: &ResourceType, service: &Value) {
        if !is_service(rt) {
            return;
        }
        if let Some(ip) = service["spec"]["clusterIP"]
            .as_str()
            .filter(|ip| *ip != "None" && !ip.is_empty())
        {
            self.unclaim(&format!("{IP_PREFIX}{ip}")).await;
        }
        for port in service["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(p) = port["nodePort"].as_u64() {
                self.unclaim(&format!("{PORT_PREFIX}{p}")).await;
            }
        }
        if let Some(p) = health_check_port(service) {
            self.unclaim(&format!("{PORT_PREFIX}{p}")).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_bound_their_hosts() {
        let c: Ipv4Cidr = "10.43.0.0/16".parse().unwrap();
        assert_eq!(c.nth(1), Ipv4Addr::new(10, 43, 0, 1));
        assert_eq!(c.hosts(), 65534);
        assert!(c.contains_host(Ipv4Addr::new(10, 43, 2, 3)));
        assert!(!c.contains_host(Ipv4Addr::new(10, 43, 0, 0)));
        assert!(!c.contains_host(Ipv4Addr::new(10, 44, 0, 1)));
        assert!("10.43.0.0".parse::<Ipv4Cidr>().is_err());
        assert!("10.43.0.0/31".parse::<Ipv4Cidr>().is_err());
    }
}
