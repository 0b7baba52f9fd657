//! What a request asks for, read from its method, path and query as upstream's
//! `RequestInfoFactory` reads them.

use std::collections::HashMap;

use http::Method;

/// The parsed query string; later values of a repeated key win.
#[derive(Clone, Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses `a=b&c=d`, percent-decoding.
    pub fn parse(query: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The value of `key`, if given and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A boolean parameter that may be absent: `Err` carries the bad value.
    pub fn optional_bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(Some(true)),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(Some(false)),
            Some(other) => Err(other.to_owned()),
        }
    }

    /// A boolean parameter, read as Go's `strconv.ParseBool` reads it (clients send `true`,
    /// `True`, `1`…).
    pub fn flag(&self, key: &str) -> bool {
        matches!(
            self.get(key),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True")
        )
    }
}

/// What the request is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// Whether it addresses a resource (false for discovery, health, version, openapi).
    pub is_resource: bool,
    /// The API verb: get, list, watch, create, update, patch, delete, deletecollection (for
    /// non-resource requests, the lowercased method).
    pub verb: String,
    /// `api` or `apis` (empty for non-resource requests).
    pub prefix: String,
    /// The API group ("" for core).
    pub group: String,
    /// The API version.
    pub version: String,
    /// The namespace in the path.
    pub namespace: Option<String>,
    /// The resource (plural).
    pub resource: String,
    /// The object's name.
    pub name: Option<String>,
    /// The subresource (`status`, `scale`, …).
    pub subresource: Option<String>,
    /// Who is writing, for managedFields: `?fieldManager=`, else the user agent up to its
    /// first `/`, as upstream names unnamed managers.
    pub field_manager: String,
}

/// Namespace subresources: `/api/v1/namespaces/<ns>/status` addresses the namespace itself.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Reads the request info from the method, path and query.
pub fn parse(method: &Method, path: &str, query: &Query) -> RequestInfo {
    let mut info = RequestInfo {
        verb: method.as_str().to_ascii_lowercase(),
        ..Default::default()
    };
    let mut parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let (prefix, rest) = match parts.first() {
        Some(&"api") if parts.len() >= 2 => ("api", 1),
        Some(&"apis") if parts.len() >= 3 => ("apis", 1),
        _ => return info,
    };
    parts.drain(..rest);
    info.prefix = prefix.to_owned();
    if prefix == "apis" {
        info.group = parts.remove(0).to_owned();
    }
    info.version = parts.remove(0).to_owned();
    if parts.is_empty() {
        return info; // discovery of one group version
    }
    info.is_resource = true;
    // The deprecated /watch/ prefix.
    let mut watch_prefix = false;
    if parts[0] == "watch" {
        watch_prefix = true;
        parts.remove(0);
    }
    info.verb = match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
    .to_owned();
    if parts.first() == Some(&"namespaces") && parts.len() > 1 {
        info.namespace = Some(parts[1].to_owned());
        if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
            parts.drain(..2);
        }
    }
    if let Some(resource) = parts.first() {
        info.resource = (*resource).to_owned();
    }
    info.name = parts.get(1).map(|s| (*s).to_owned());
    if parts.len() >= 3 {
        info.subresource = Some(parts[2..].join("/"));
    }
    if info.name.is_none() {
        match info.verb.as_str() {
            "get" => info.verb = "list".to_owned(),
            "delete" => info.verb = "deletecollection".to_owned(),
            _ => {}
        }
    }
    if (watch_prefix || query.flag("watch")) && matches!(info.verb.as_str(), "get" | "list") {
        info.verb = "watch".to_owned();
    }
    info
}

/// The decode stage's result: a request's head with what it asks for read once, for every
/// later stage.
pub(crate) struct ApiRequest {
    /// The method, URI and headers as received.
    pub(crate) head: http::request::Parts,
    /// The query string.
    pub(crate) query: Query,
    /// What the request asks for, with its field manager.
    pub(crate) info: RequestInfo,
}

impl ApiRequest {
    /// Reads the request head. The field manager is the `fieldManager` parameter, else the
    /// user agent's program name, as upstream.
    pub(crate) fn decode(head: http::request::Parts) -> Self {
        let query = Query::parse(head.uri.query());
        let mut info = parse(&head.method, head.uri.path(), &query);
        info.field_manager = match query.get("fieldManager") {
            Some(manager) => manager.to_owned(),
            None => head
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .and_then(|ua| ua.split('/').next())
                .filter(|m| !m.is_empty())
                .unwrap_or("unknown")
                .to_owned(),
        };
        Self { head, query, info }
    }

    /// The request path.
    pub(crate) fn path(&self) -> &str {
        self.head.uri.path()
    }

    /// A header's value, when it is text.
    pub(crate) fn header(&self, name: http::header::HeaderName) -> Option<&str> {
        self.head.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the body is a server-side apply patch.
    pub(crate) fn is_apply(&self) -> bool {
        self.header(http::header::CONTENT_TYPE)
            .is_some_and(|t| t.starts_with("application/apply-patch"))
    }

    /// Whether the request asks for a dry run.
    pub(crate) fn is_dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|d| !d.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, path: &str, query: &str) -> RequestInfo {
        parse(&method, path, &Query::parse(Some(query)))
    }

    #[test]
    fn namespaced_and_cluster_paths_are_read_as_upstream() {
        let i = info(Method::GET, "/api/v1/namespaces/default/pods/web", "");
        assert_eq!(
            (
                i.verb.as_str(),
                i.namespace.as_deref(),
                i.resource.as_str(),
                i.name.as_deref()
            ),
            ("get", Some("default"), "pods", Some("web"))
        );
        let i = info(Method::GET, "/apis/apps/v1/deployments", "");
        assert_eq!(
            (i.verb.as_str(), i.group.as_str(), i.namespace),
            ("list", "apps", None)
        );
        let i = info(Method::GET, "/api/v1/namespaces/kube-system", "");
        assert_eq!(
            (
                i.resource.as_str(),
                i.name.as_deref(),
                i.namespace.as_deref()
            ),
            ("namespaces", Some("kube-system"), Some("kube-system"))
        );
        let i = info(Method::PUT, "/api/v1/namespaces/ns1/finalize", "");
        assert_eq!(
            (
                i.verb.as_str(),
                i.resource.as_str(),
                i.name.as_deref(),
                i.subresource.as_deref()
            ),
            ("update", "namespaces", Some("ns1"), Some("finalize"))
        );
        let i = info(
            Method::PUT,
            "/apis/apps/v1/namespaces/d/deployments/web/scale",
            "",
        );
        assert_eq!(i.subresource.as_deref(), Some("scale"));
    }

    #[test]
    fn verbs_follow_method_name_and_watch() {
        assert_eq!(
            info(Method::GET, "/api/v1/pods", "watch=true").verb,
            "watch"
        );
        assert_eq!(
            info(Method::GET, "/api/v1/watch/namespaces/a/pods", "").verb,
            "watch"
        );
        assert_eq!(
            info(Method::DELETE, "/api/v1/namespaces/a/pods", "").verb,
            "deletecollection"
        );
        assert_eq!(
            info(Method::POST, "/api/v1/namespaces/a/pods", "").verb,
            "create"
        );
        assert!(!info(Method::GET, "/api/v1", "").is_resource);
        assert!(!info(Method::GET, "/healthz", "").is_resource);
    }
}
