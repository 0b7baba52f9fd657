//! The `nft -f` scripts for a policy [`Ruleset`]: the whole table, or the changes from one
//! applied rule set to the next. Pure: no I/O.
//!
//! A whole rewrite of a large table costs the kernel far more than a change (100 policies over
//! 100 pods: about 100 ms against a few), so only the first sync, the one after a failure and
//! those that create or remove the table write it whole.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::netpol_rules::{EGRESS_PODS, INGRESS_PODS, Ruleset};

const ADDRESS_SET: &str = "type ipv4_addr ; flags interval ;";
const PORT_SET: &str = "type ipv4_addr . inet_proto . inet_service ;";

fn add_elements<'a>(s: &mut String, t: &str, name: &str, elements: impl Iterator<Item = &'a str>) {
    let elements: Vec<&str> = elements.collect();
    // A bounded number per command keeps lines short for big clusters.
    for chunk in elements.chunks(500) {
        let _ = writeln!(s, "add element {t} {name} {{ {} }}", chunk.join(", "));
    }
}

fn delete_elements<'a>(
    s: &mut String,
    t: &str,
    name: &str,
    elements: impl Iterator<Item = &'a str>,
) {
    let elements: Vec<&str> = elements.collect();
    for chunk in elements.chunks(500) {
        let _ = writeln!(s, "delete element {t} {name} {{ {} }}", chunk.join(", "));
    }
}

fn pod_elements(pods: &BTreeMap<Ipv4Addr, String>) -> BTreeMap<String, String> {
    pods.iter()
        .map(|(ip, chain)| (ip.to_string(), format!("{ip} : jump {chain}")))
        .collect()
}

/// A script that replaces the table with `rs`, atomically (one `nft -f` transaction); with
/// nothing to police, one that removes the table.
pub fn full_script(table: &str, rs: &Ruleset) -> String {
    let t = format!("ip {table}");
    let mut s = String::new();
    let _ = writeln!(s, "add table {t}");
    let _ = writeln!(s, "delete table {t}");
    if rs.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "add table {t} {{ comment \"rkube network policies\" ; }}"
    );
    for (sets, kind) in [(&rs.address_sets, ADDRESS_SET), (&rs.port_sets, PORT_SET)] {
        for (name, elements) in sets {
            let _ = writeln!(s, "add set {t} {name} {{ {kind} }}");
            add_elements(&mut s, &t, name, elements.iter().map(String::as_str));
        }
    }
    for (name, rules) in &rs.chains {
        let _ = writeln!(s, "add chain {t} {name}");
        for rule in rules {
            let _ = writeln!(s, "add rule {t} {name} {rule}");
        }
    }
    for (map, pods) in [(INGRESS_PODS, &rs.ingress), (EGRESS_PODS, &rs.egress)] {
        let _ = writeln!(s, "add map {t} {map} {{ type ipv4_addr : verdict ; }}");
        add_elements(
            &mut s,
            &t,
            map,
            pod_elements(pods).values().map(String::as_str),
        );
    }
    // The base chain last: it takes traffic only once everything it refers to is there.
    let _ = writeln!(
        s,
        "add chain {t} forward {{ type filter hook forward priority filter ; policy accept ; }}"
    );
    for rule in [
        "ct state established,related accept".to_owned(),
        format!("ip saddr vmap @{EGRESS_PODS}"),
        format!("ip daddr vmap @{INGRESS_PODS}"),
    ] {
        let _ = writeln!(s, "add rule {t} forward {rule}");
    }
    s
}

/// A script that changes the applied `old` into `new`, touching only what differs; `None`
/// when nothing does. When either is empty (no table), the whole table is written or removed.
pub fn diff_script(table: &str, old: &Ruleset, new: &Ruleset) -> Option<String> {
    if old == new {
        return None;
    }
    if old.is_empty() || new.is_empty() {
        return Some(full_script(table, new));
    }
    let t = format!("ip {table}");
    let mut s = String::new();
    // Sets first, so that new and changed chains find them; elements as differences (the
    // elements of an interval set are disjoint ranges, deleted exactly as they were added).
    for (old_sets, new_sets, kind) in [
        (&old.address_sets, &new.address_sets, ADDRESS_SET),
        (&old.port_sets, &new.port_sets, PORT_SET),
    ] {
        for (name, elements) in new_sets {
            let Some(before) = old_sets.get(name) else {
                let _ = writeln!(s, "add set {t} {name} {{ {kind} }}");
                add_elements(&mut s, &t, name, elements.iter().map(String::as_str));
                continue;
            };
            if before == elements {
                continue;
            }
            let gone = before.difference(elements).map(String::as_str);
            delete_elements(&mut s, &t, name, gone);
            let added = elements.difference(before).map(String::as_str);
            add_elements(&mut s, &t, name, added);
        }
    }
    for name in new.chains.keys() {
        if !old.chains.contains_key(name) {
            let _ = writeln!(s, "add chain {t} {name}");
        }
    }
    for (name, rules) in &new.chains {
        match old.chains.get(name) {
            Some(before) if before == rules => continue,
            Some(_) => {
                let _ = writeln!(s, "flush chain {t} {name}");
            }
            None => {}
        }
        for rule in rules {
            let _ = writeln!(s, "add rule {t} {name} {rule}");
        }
    }
    for (map, before, after) in [
        (INGRESS_PODS, &old.ingress, &new.ingress),
        (EGRESS_PODS, &old.egress, &new.egress),
    ] {
        let (before, after) = (pod_elements(before), pod_elements(after));
        let gone = before
            .iter()
            .filter(|(ip, element)| after.get(*ip) != Some(element))
            .map(|(ip, _)| ip.as_str());
        delete_elements(&mut s, &t, map, gone);
        let added = after
            .iter()
            .filter(|(ip, element)| before.get(*ip) != Some(element))
            .map(|(_, element)| element.as_str());
        add_elements(&mut s, &t, map, added);
    }
    // What went, once nothing refers to it: chains (no longer in a map; emptied, then
    // deleted), then the sets their rules used.
    let removed: Vec<&String> = old
        .chains
        .keys()
        .filter(|n| !new.chains.contains_key(*n))
        .collect();
    for name in &removed {
        let _ = writeln!(s, "flush chain {t} {name}");
    }
    for name in &removed {
        let _ = writeln!(s, "delete chain {t} {name}");
    }
    for (old_sets, new_sets) in [
        (&old.address_sets, &new.address_sets),
        (&old.port_sets, &new.port_sets),
    ] {
        for name in old_sets.keys().filter(|n| !new_sets.contains_key(*n)) {
            let _ = writeln!(s, "delete set {t} {name}");
        }
    }
    Some(s)
}
