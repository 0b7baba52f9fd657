//! Reverse names: the address a name under `in-addr.arpa.` or `ip6.arpa.` stands for, and
//! the names an address has in the cluster.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;

use super::Zone;
use crate::index::Index;

/// The address a full reverse name stands for (`4.3.2.1.in-addr.arpa.`, 32 nibbles under
/// `ip6.arpa.`); `None` for anything else.
pub(super) fn reverse_address(name: &Name) -> Option<IpAddr> {
    let labels: Vec<String> = name
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    match labels.as_slice() {
        [d, c, b, a, "in-addr", "arpa"] => {
            let octet = |s: &str| -> Option<u8> {
                (s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
            };
            Some(IpAddr::V4(Ipv4Addr::new(
                octet(a)?,
                octet(b)?,
                octet(c)?,
                octet(d)?,
            )))
        }
        [nibbles @ .., "ip6", "arpa"] if nibbles.len() == 32 => {
            let mut value: u128 = 0;
            for nibble in nibbles.iter().rev() {
                let digit = match nibble.as_bytes() {
                    [c] => char::from(*c).to_digit(16)?,
                    _ => return None,
                };
                value = (value << 4) | u128::from(digit);
            }
            Some(IpAddr::V6(Ipv6Addr::from(value)))
        }
        _ => None,
    }
}

/// The names an address has in the cluster: the first Service with it as a cluster IP, or
/// else every endpoint that has it.
pub(super) fn ptr_targets(index: &Index, zone: &Zone, ip: IpAddr) -> Vec<Name> {
    if let Some((namespace, name)) = index.services_with_cluster_ip(ip).next() {
        return zone
            .child(&format!("{name}.{namespace}.svc"))
            .into_iter()
            .collect();
    }
    let mut targets = Vec::new();
    for ((namespace, _), slice) in index.slices_with_address(ip) {
        let publish_not_ready = index
            .service(namespace, &slice.service)
            .is_some_and(|s| s.publish_not_ready);
        for endpoint in &slice.endpoints {
            if !(endpoint.ready || publish_not_ready) || !endpoint.addresses.contains(&ip) {
                continue;
            }
            let owner = format!("{}.{}.{namespace}.svc", endpoint.label(ip), slice.service);
            if let Some(target) = zone.child(&owner)
                && !targets.contains(&target)
            {
                targets.push(target);
            }
        }
    }
    targets
}
