//! Kubernetes' `ip` and `cidr` libraries (upstream library/ip.go and library/cidr.go).

use std::net::IpAddr;
use std::sync::Arc;

use cel::common::types::{DYN_TYPE, STRING_TYPE};
use cel::objects::Opaque;
use cel::{DeclarationError, Env, ExecutionError};

use super::{opaque_arg, overload, string_arg};
use crate::Value;

pub(super) const FUNCTIONS: &[&str] = &[
    "ip",
    "isIP",
    "ip.isCanonical",
    "family",
    "isUnspecified",
    "isLoopback",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "cidr",
    "isCIDR",
    "containsIP",
    "containsCIDR",
    "masked",
    "prefixLength",
];

/// An IP address value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ip(IpAddr);

impl Opaque for Ip {
    fn runtime_type_name(&self) -> &str {
        "net.IP"
    }
}

/// A CIDR value: an address and a prefix length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cidr {
    ip: IpAddr,
    prefix: u8,
}

impl Opaque for Cidr {
    fn runtime_type_name(&self) -> &str {
        "net.CIDR"
    }
}

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload("ip", "string_to_ip", vec![STRING_TYPE], to_ip)?;
    env.add_overload("isIP", "is_ip", vec![STRING_TYPE], is_ip)?;
    env.add_overload(
        "ip.isCanonical",
        "ip_is_canonical",
        vec![STRING_TYPE],
        is_canonical,
    )?;
    for (name, op) in [
        ("family", family as cel::common::functions::Function),
        ("isUnspecified", is_unspecified),
        ("isLoopback", is_loopback),
        ("isLinkLocalMulticast", is_link_local_multicast),
        ("isLinkLocalUnicast", is_link_local_unicast),
        ("isGlobalUnicast", is_global_unicast),
        ("ip", cidr_ip),
        ("masked", masked),
        ("prefixLength", prefix_length),
    ] {
        env.add_member_overload(name, &format!("net_{name}"), DYN_TYPE, vec![], op)?;
    }
    env.add_overload("cidr", "string_to_cidr", vec![STRING_TYPE], to_cidr)?;
    env.add_overload("isCIDR", "is_cidr", vec![STRING_TYPE], is_cidr)?;
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip",
        DYN_TYPE,
        vec![DYN_TYPE],
        contains_ip,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr",
        DYN_TYPE,
        vec![DYN_TYPE],
        contains_cidr,
    )
}

/// Parses an address as upstream does: no zones, no IPv4-mapped IPv6 addresses.
fn parse_ip(text: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = text
        .parse()
        .map_err(|_| format!("IP Address {text:?} parse error during conversion from string"))?;
    if let IpAddr::V6(v6) = ip
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(format!("IPv4-mapped IPv6 address {text:?} is not allowed"));
    }
    Ok(ip)
}

fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let invalid = || format!("network address {text:?} parse error during conversion from string");
    let (ip, prefix) = text.split_once('/').ok_or_else(invalid)?;
    let ip = parse_ip(ip).map_err(|_| invalid())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
    if prefix > max || prefix.to_string() != text.split_once('/').map_or("", |(_, p)| p) {
        return Err(invalid());
    }
    Ok(Cidr { ip, prefix })
}

fn bits(ip: &IpAddr) -> (u128, u32) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(*v4)), 32),
        IpAddr::V6(v6) => (u128::from(*v6), 128),
    }
}

fn mask(ip: &IpAddr, prefix: u8) -> IpAddr {
    let (value, width) = bits(ip);
    let keep = u32::from(prefix);
    let masked = if keep == 0 {
        0
    } else {
        value & (u128::MAX << (width - keep)) & (u128::MAX >> (128 - width))
    };
    match ip {
        IpAddr::V4(_) => IpAddr::V4((masked as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(masked.into()),
    }
}

fn contains(cidr: &Cidr, ip: &IpAddr) -> bool {
    cidr.ip.is_ipv4() == ip.is_ipv4() && mask(ip, cidr.prefix) == mask(&cidr.ip, cidr.prefix)
}

fn error(function: &str, message: String) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

fn ip_of<'a>(function: &str, args: &'a [Value]) -> Result<&'a IpAddr, ExecutionError> {
    opaque_arg::<Ip>(function, args, 0).map(|ip| &ip.0)
}

overload!(to_ip, |args| {
    let ip = parse_ip(string_arg("ip", args, 0)?).map_err(|e| error("ip", e))?;
    Ok(Value::Opaque(Arc::new(Ip(ip))))
});

overload!(is_ip, |args| Ok(Value::Bool(
    parse_ip(string_arg("isIP", args, 0)?).is_ok()
)));

overload!(is_canonical, |args| {
    let text = string_arg("ip.isCanonical", args, 0)?;
    let ip = parse_ip(text).map_err(|e| error("ip.isCanonical", e))?;
    Ok(Value::Bool(ip.to_string() == text))
});

overload!(family, |args| Ok(Value::Int(
    if ip_of("family", args)?.is_ipv4() {
        4
    } else {
        6
    }
)));

overload!(is_unspecified, |args| Ok(Value::Bool(
    ip_of("isUnspecified", args)?.is_unspecified()
)));

overload!(is_loopback, |args| Ok(Value::Bool(
    ip_of("isLoopback", args)?.is_loopback()
)));

overload!(is_link_local_multicast, |args| {
    let local = match ip_of("isLinkLocalMulticast", args)? {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.octets()[0] == 0xff && v6.octets()[1] & 0x0f == 0x02,
    };
    Ok(Value::Bool(local))
});

fn link_local_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

overload!(is_link_local_unicast, |args| Ok(Value::Bool(
    link_local_unicast(ip_of("isLinkLocalUnicast", args)?)
)));

overload!(is_global_unicast, |args| {
    let ip = ip_of("isGlobalUnicast", args)?;
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    Ok(Value::Bool(
        !(ip.is_unspecified()
            || ip.is_loopback()
            || ip.is_multicast()
            || link_local_unicast(ip)
            || broadcast),
    ))
});

overload!(to_cidr, |args| {
    let cidr = parse_cidr(string_arg("cidr", args, 0)?).map_err(|e| error("cidr", e))?;
    Ok(Value::Opaque(Arc::new(cidr)))
});

overload!(is_cidr, |args| Ok(Value::Bool(
    parse_cidr(string_arg("isCIDR", args, 0)?).is_ok()
)));

overload!(cidr_ip, |args| Ok(Value::Opaque(Arc::new(Ip(
    opaque_arg::<Cidr>("ip", args, 0)?.ip
)))));

overload!(masked, |args| {
    let cidr = opaque_arg::<Cidr>("masked", args, 0)?;
    Ok(Value::Opaque(Arc::new(Cidr {
        ip: mask(&cidr.ip, cidr.prefix),
        prefix: cidr.prefix,
    })))
});

overload!(prefix_length, |args| Ok(Value::Int(i64::from(
    opaque_arg::<Cidr>("prefixLength", args, 0)?.prefix
))));

overload!(contains_ip, |args| {
    let cidr = opaque_arg::<Cidr>("containsIP", args, 0)?;
    let ip = match args.get(1) {
        Some(Value::String(s)) => parse_ip(s).map_err(|e| error("containsIP", e))?,
        _ => opaque_arg::<Ip>("containsIP", args, 1)?.0,
    };
    Ok(Value::Bool(contains(cidr, &ip)))
});

overload!(contains_cidr, |args| {
    let cidr = opaque_arg::<Cidr>("containsCIDR", args, 0)?;
    let other = match args.get(1) {
        Some(Value::String(s)) => parse_cidr(s).map_err(|e| error("containsCIDR", e))?,
        _ => opaque_arg::<Cidr>("containsCIDR", args, 1)?.clone(),
    };
    Ok(Value::Bool(
        other.prefix >= cidr.prefix && contains(cidr, &other.ip),
    ))
});
