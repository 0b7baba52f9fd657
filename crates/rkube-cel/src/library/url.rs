//! Kubernetes' URL library (upstream library/urls.go): `url`, `isURL` and the getters.
//! URLs are parsed as Go's `url.ParseRequestURI` does: an absolute URL or an absolute path.

use std::collections::HashMap;
use std::sync::Arc;

use cel::common::types::{DYN_TYPE, STRING_TYPE};
use cel::objects::{Key, Opaque};
use cel::{DeclarationError, Env, ExecutionError};

use super::{opaque_arg, overload, string_arg};
use crate::Value;

pub(super) const FUNCTIONS: &[&str] = &[
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
];

/// A parsed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    scheme: String,
    host: String,
    path: String,
    query: String,
}

impl Opaque for Url {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.URL"
    }
}

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload("url", "string_to_url", vec![STRING_TYPE], to_url)?;
    env.add_overload("isURL", "is_url_string", vec![STRING_TYPE], is_url)?;
    for (name, op) in [
        ("getScheme", get_scheme as cel::common::functions::Function),
        ("getHost", get_host),
        ("getHostname", get_hostname),
        ("getPort", get_port),
        ("getEscapedPath", get_escaped_path),
        ("getQuery", get_query),
    ] {
        env.add_member_overload(name, &format!("url_{name}"), DYN_TYPE, vec![], op)?;
    }
    Ok(())
}

fn parse(text: &str) -> Option<Url> {
    if text.is_empty() || text.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    let (rest, query) = text.split_once('?').unwrap_or((text, ""));
    if rest.starts_with('/') {
        return Some(Url {
            scheme: String::new(),
            host: String::new(),
            path: rest.to_owned(),
            query: query.to_owned(),
        });
    }
    let (scheme, rest) = rest.split_once(':')?;
    let mut chars = scheme.chars();
    if !chars.next()?.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let (host, path) = match rest.strip_prefix("//") {
        Some(authority) => {
            let (authority, path) = match authority.find('/') {
                Some(i) => authority.split_at(i),
                None => (authority, ""),
            };
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            (host.to_owned(), path.to_owned())
        }
        None if rest.starts_with('/') => (String::new(), rest.to_owned()),
        None => return None,
    };
    Some(Url {
        scheme: scheme.to_owned(),
        host,
        path,
        query: query.to_owned(),
    })
}

fn string(s: &str) -> Value {
    Value::String(Arc::new(s.to_owned()))
}

fn url_of<'a>(function: &str, args: &'a [Value]) -> Result<&'a Url, ExecutionError> {
    opaque_arg::<Url>(function, args, 0)
}

/// The host without its port; an IPv6 literal without its brackets.
fn hostname(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    host.split_once(':').map_or(host, |(h, _)| h)
}

fn port(host: &str) -> &str {
    let after = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(_, p)| p),
        None => host.find(':').map_or("", |i| &host[i..]),
    };
    after.strip_prefix(':').unwrap_or("")
}

overload!(to_url, |args| {
    let text = string_arg("url", args, 0)?;
    let url = parse(text).ok_or_else(|| {
        ExecutionError::function_error("url", format!("URL parse error during conversion from string: parse {text:?}: invalid URI for request"))
    })?;
    Ok(Value::Opaque(Arc::new(url)))
});

overload!(is_url, |args| Ok(Value::Bool(
    parse(string_arg("isURL", args, 0)?).is_some()
)));

overload!(get_scheme, |args| Ok(string(
    &url_of("getScheme", args)?.scheme
)));
overload!(get_host, |args| Ok(string(&url_of("getHost", args)?.host)));
overload!(get_hostname, |args| Ok(string(hostname(
    &url_of("getHostname", args)?.host
))));
overload!(get_port, |args| Ok(string(port(
    &url_of("getPort", args)?.host
))));
overload!(get_escaped_path, |args| Ok(string(
    &url_of("getEscapedPath", args)?.path
)));

overload!(get_query, |args| {
    let url = url_of("getQuery", args)?;
    let mut query: HashMap<String, Vec<Value>> = HashMap::new();
    for pair in url.query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.entry(k.to_owned()).or_default().push(string(v));
    }
    let map: HashMap<Key, Value> = query
        .into_iter()
        .map(|(k, v)| (Key::String(Arc::new(k)), Value::List(Arc::new(v))))
        .collect();
    Ok(Value::Map(map.into()))
});
