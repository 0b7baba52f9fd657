//! EndpointSlices: `ValidateEndpointSlice`, in part (address types, addresses, ports).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use super::field::{self, Path, get, int_at, list_at, str_at};
use super::names::{is_dns1123_label, is_dns1123_subdomain, is_qualified_name};
use super::pod::PROTOCOLS;
use crate::error::FieldError;

/// Sorted, as upstream lists them.
const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];

/// `ValidateEndpointSlice` on create and update; on update the address type is fixed.
pub(super) fn endpoint_slice(object: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let address_type = str_at(object, "addressType");
    if !ADDRESS_TYPES.contains(&address_type) {
        errs.push(FieldError::not_supported(
            Path::new("addressType"),
            address_type,
            ADDRESS_TYPES,
        ));
    }
    let endpoints = Path::new("endpoints");
    for (i, endpoint) in list_at(object, "endpoints").iter().enumerate() {
        let p = endpoints.index(i);
        let addresses = list_at(endpoint, "addresses");
        if addresses.is_empty() {
            errs.push(FieldError::required(
                p.child("addresses"),
                "must contain at least 1 address",
            ));
        }
        for (j, address) in addresses.iter().enumerate() {
            let address = address.as_str().unwrap_or("");
            let addresses_path = p.child("addresses");
            let ap = addresses_path.index(j);
            match address_type {
                "IPv4" if address.parse::<Ipv4Addr>().is_err() => errs.push(FieldError::invalid(
                    ap,
                    address,
                    "must be a valid IPv4 address",
                )),
                "IPv6" if address.parse::<Ipv6Addr>().is_err() => errs.push(FieldError::invalid(
                    ap,
                    address,
                    "must be a valid IPv6 address",
                )),
                "FQDN" => {
                    for msg in is_dns1123_subdomain(address) {
                        errs.push(FieldError::invalid(&ap, address, &msg));
                    }
                }
                _ => {}
            }
        }
        for (key, check) in [
            ("nodeName", is_dns1123_subdomain as fn(&str) -> Vec<String>),
            ("hostname", is_dns1123_label),
        ] {
            let value = str_at(endpoint, key);
            if !value.is_empty() {
                for msg in check(value) {
                    errs.push(FieldError::invalid(p.child(key), value, &msg));
                }
            }
        }
    }
    let ports = Path::new("ports");
    let mut names = BTreeSet::new();
    for (i, port) in list_at(object, "ports").iter().enumerate() {
        let p = ports.index(i);
        let name = str_at(port, "name");
        if !name.is_empty() {
            for msg in is_dns1123_label(name) {
                errs.push(FieldError::invalid(p.child("name"), name, &msg));
            }
        }
        if !names.insert(name) {
            errs.push(FieldError::duplicate(p.child("name"), name));
        }
        let protocol = str_at(port, "protocol");
        if !PROTOCOLS.contains(&protocol) {
            errs.push(FieldError::not_supported(
                p.child("protocol"),
                protocol,
                PROTOCOLS,
            ));
        }
        if let Some(number) = int_at(port, "port") {
            field::port_number(number, &p.child("port"), errs);
        }
        if let Some(app) = get(port, "appProtocol").and_then(Value::as_str) {
            for msg in is_qualified_name(app) {
                errs.push(FieldError::invalid(p.child("appProtocol"), app, &msg));
            }
        }
    }
    if let Some(old) = old {
        field::immutable(
            get(object, "addressType"),
            get(old, "addressType"),
            &Path::new("addressType"),
            errs,
        );
    }
}
