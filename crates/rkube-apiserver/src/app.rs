//! The API server's request handling, independent of how requests arrive (TLS socket or the
//! in-process transport): authentication, authorization, routing to discovery, health and the
//! REST verbs, and turning results and errors into responses.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use rkube_api::ApiError;
use rkube_api::registry::{self, ResourceType};
use serde_json::{Value, json};

use crate::auth::{Authorizer, Decision, TokenAuthenticator, UserInfo};
use crate::objects::Objects;
use crate::request::{self, Query, RequestInfo};

/// The body of every response.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// The largest request body accepted (upstream's limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Settings the handlers need.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// The address clients reach the server at (for discovery's serverAddressByClientCIDRs).
    pub advertise_address: String,
    /// The Service cluster IP range.
    pub service_cidr: crate::alloc::Ipv4Cidr,
    /// How the watch cache behaves.
    pub watch_cache: crate::cache::WatchCacheConfig,
    /// What `/metrics` serves: each source renders Prometheus text-format metrics.
    pub metrics: Vec<MetricsSource>,
    /// Admission plugins turned off, by upstream name.
    pub disable_admission_plugins: Vec<String>,
    /// How to reach kubelets (logs, exec, attach, port-forward, node proxy).
    pub kubelet_tls: Option<crate::nodeproxy::KubeletTls>,
    /// The cluster DNS Service's address, when the cluster has DNS (`kube-system/kube-dns`
    /// is created with it).
    pub cluster_dns: Option<std::net::Ipv4Addr>,
    /// The front-proxy identity: presented to extension API servers, and trusted (with the
    /// request-header headers) from callers its CA signed.
    pub front_proxy: Option<crate::requestheader::FrontProxy>,
}

/// Renders metrics in the Prometheus text format, for `/metrics`.
#[derive(Clone)]
pub struct MetricsSource(Arc<dyn Fn() -> String + Send + Sync>);

impl MetricsSource {
    /// A source rendering with `render`.
    pub fn new(render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        Self(Arc::new(render))
    }

    /// The metrics text now.
    pub fn render(&self) -> String {
        (self.0)()
    }
}

impl std::fmt::Debug for MetricsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsSource")
    }
}

/// The request handler.
pub struct App {
    pub(crate) objects: Objects,
    pub(crate) config: AppConfig,
    tokens: TokenAuthenticator,
    pub(crate) issuer: crate::satokens::TokenIssuer,
    authorizer: Arc<dyn Authorizer>,
    ready: AtomicBool,
    pub(crate) watch_lines: Arc<crate::watch::LineMemo>,
    pub(crate) cache: Arc<crate::cache::WatchCache>,
    pub(crate) definitions: crate::crd::Definitions,
    pub(crate) webhooks: crate::webhook::Configurations,
    pub(crate) remotes: crate::aggregator::remote::RemoteApis,
}

/// How the caller proved who it is, before the token is looked at.
#[derive(Clone, Debug)]
pub enum Caller {
    /// A verified client certificate's identity, if one was presented.
    Tls(Option<UserInfo>),
    /// A client certificate the request-header CA signed, by its common name: a front proxy,
    /// which names the user in the request-header headers.
    FrontProxy(String),
    /// A component inside this process.
    Loopback,
}

fn json_response(code: u16, value: &Value) -> Response<Body> {
    json_bytes_response(
        code,
        serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()),
    )
}

/// A response carrying JSON already encoded.
pub(crate) fn json_bytes_response(code: u16, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The response for an error.
pub fn error_response(err: &ApiError) -> Response<Body> {
    let status = crate::status::status(err);
    let code = crate::status::code_and_reason(err).0;
    let mut response = json_response(code, &status);
    if let ApiError::TooManyRequests {
        retry_after_seconds: Some(s),
        ..
    } = err
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn text_response(code: u16, text: &'static str) -> Response<Body> {
    let mut response = Response::new(full(text));
    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// What the client accepts, from its Accept header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Accept {
    Json,
    Table,
    Protobuf,
    Yaml,
    /// `as=PartialObjectMetadata[List];g=meta.k8s.io`: metadata only.
    Metadata,
}

/// Whether the endpoint a request names can answer as a Table. Upstream offers Tables only
/// where the storage converts to them (`RequestScope.AllowsMediaTypeTransform`): every stored
/// resource and its status, but not the reviews, which are answered without being stored, nor
/// the token, binding and eviction subresources. Elsewhere a Table is skipped in the client's
/// list, and refused with 406 when nothing else is listed.
fn serves_tables(info: &RequestInfo) -> bool {
    if !info.is_resource {
        return true;
    }
    let Some(rt) = registry::all().by_path(&info.group, &info.version, &info.resource) else {
        return true;
    };
    rt.is_stored()
        && !matches!(
            info.subresource.as_deref(),
            Some("token" | "binding" | "eviction")
        )
}

/// The client's first acceptable format, in the order it lists them; a Table only where the
/// endpoint `tables` can give one.
fn negotiate(accept: Option<&str>, tables: bool) -> Result<Accept, ApiError> {
    let Some(accept) = accept else {
        return Ok(Accept::Json);
    };
    for part in accept.split(',') {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("");
        let params: Vec<&str> = params.collect();
        let as_ = params.iter().find_map(|p| p.strip_prefix("as="));
        match (media, as_) {
            ("application/json" | "*/*" | "application/*", Some("Table"))
                if tables && params.contains(&"g=meta.k8s.io") =>
            {
                return Ok(Accept::Table);
            }
            (
                "application/json" | "*/*" | "application/*",
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
            ) if params.contains(&"g=meta.k8s.io") => {
                return Ok(Accept::Metadata);
            }
            (rkube_proto::MEDIA_TYPE, None) => return Ok(Accept::Protobuf),
            ("application/yaml", None) => return Ok(Accept::Yaml),
            ("application/json" | "*/*" | "application/*", None) => return Ok(Accept::Json),
            _ => {}
        }
    }
    Err(ApiError::NotAcceptable(
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
            .into(),
    ))
}

/// An object in the negotiated format: protobuf when asked for and the kind has a message,
/// JSON otherwise (errors, and Tables, are always JSON).
pub(crate) fn object_response(accept: Accept, code: u16, value: &Value) -> Response<Body> {
    if accept == Accept::Protobuf
        && let Ok(bytes) = rkube_proto::encode(value)
    {
        let mut response = Response::new(full(bytes));
        *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(rkube_proto::MEDIA_TYPE),
        );
        return response;
    }
    if accept == Accept::Yaml
        && let Ok(text) = serde_norway::to_string(value)
    {
        let mut response = Response::new(full(text));
        *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        );
        return response;
    }
    json_response(code, value)
}

impl App {
    /// A handler over `objects`.
    pub fn new(
        objects: Objects,
        config: AppConfig,
        tokens: TokenAuthenticator,
        issuer: crate::satokens::TokenIssuer,
        authorizer: Arc<dyn Authorizer>,
    ) -> Self {
        let cache =
            crate::cache::WatchCache::new(objects.store().clone(), config.watch_cache.clone());
        Self {
            objects,
            cache,
            config,
            tokens,
            issuer,
            authorizer,
            ready: AtomicBool::new(false),
            watch_lines: Arc::default(),
            definitions: crate::crd::Definitions::default(),
            webhooks: crate::webhook::Configurations::default(),
            remotes: crate::aggregator::remote::RemoteApis::default(),
        }
    }

    /// Loads the watch cache and keeps it fed; reads use it once it has loaded.
    pub fn start_watch_cache(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.cache.clone().run())
    }

    /// Whether the watch cache has loaded and serves reads.
    pub fn watch_cache_ready(&self) -> bool {
        self.cache.is_ready()
    }

    /// Marks the server ready (readyz answers 200 from now on).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub(crate) fn resource(
        &self,
        group: &str,
        kind: &str,
    ) -> Result<&'static ResourceType, ApiError> {
        registry::all().by_kind(group, kind).ok_or_else(|| {
            ApiError::Internal(format!("no resource for kind {kind} in group {group:?}"))
        })
    }

    pub(crate) async fn authenticate(
        &self,
        caller: &Caller,
        headers: &http::HeaderMap,
    ) -> Option<UserInfo> {
        // Upstream puts the request-header authenticator first.
        if let Caller::FrontProxy(name) = caller
            && let Some(proxy) = &self.config.front_proxy
            && proxy.allows(name)
            && let Some(user) = crate::requestheader::user_from_headers(headers)
        {
            return Some(user);
        }
        if let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            let token = token.trim();
            if let Some(user) = self.tokens.authenticate(token) {
                return Some(user);
            }
            return self.service_account_user(token).await;
        }
        match caller {
            Caller::Tls(user) => user.clone(),
            Caller::FrontProxy(_) => None,
            Caller::Loopback => Some(UserInfo::loopback()),
        }
    }

    /// Whether `user` may make the request `info` describes.
    pub(crate) fn authorize(&self, user: &UserInfo, info: &RequestInfo) -> Decision {
        self.authorizer.authorize(user, info)
    }

    /// `/metrics`: every registered source's text, for GET only (as upstream answers 405).
    fn metrics_response(&self, method: &http::Method) -> Response<Body> {
        if method != http::Method::GET {
            let mut response = Response::new(full("method not allowed"));
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            return response;
        }
        let mut text: String = self
            .config
            .metrics
            .iter()
            .map(MetricsSource::render)
            .collect();
        text.push_str(&crate::request_metrics::render());
        if let Some(counts) = self.cache.object_counts() {
            text.push_str(&crate::request_metrics::render_object_counts(&counts));
        }
        let mut response = Response::new(full(text));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }

    /// Handles one request whose body has been read, recording it in the request metrics.
    pub async fn handle(
        self: &Arc<Self>,
        parts: http::request::Parts,
        body: Bytes,
        caller: Caller,
    ) -> Response<Body> {
        let started = std::time::Instant::now();
        let query = Query::parse(parts.uri.query());
        let info = request::parse(&parts.method, parts.uri.path(), &query);
        let apply = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/apply-patch"));
        let dry_run = query.get("dryRun").is_some_and(|d| !d.is_empty());
        let response = self.handle_request(parts, body, caller).await;
        crate::request_metrics::record(
            &info,
            apply,
            dry_run,
            response.status().as_u16(),
            started.elapsed(),
        );
        if info.verb == "watch" && response.status() == StatusCode::OK {
            // Counted open for as long as its body streams.
            let open = crate::request_metrics::LongRunning::watch(&info);
            return response.map(|body| {
                body.map_frame(move |frame| {
                    let _ = &open;
                    frame
                })
                .boxed_unsync()
            });
        }
        response
    }

    async fn handle_request(
        self: &Arc<Self>,
        parts: http::request::Parts,
        body: Bytes,
        caller: Caller,
    ) -> Response<Body> {
        let query = Query::parse(parts.uri.query());
        let path = parts.uri.path().to_owned();
        // Health and version answer everyone, as upstream's default RBAC allows.
        match path.as_str() {
            "/healthz" | "/livez" => return text_response(200, "ok"),
            "/readyz" => {
                return if self.ready.load(Ordering::Acquire) {
                    text_response(200, "ok")
                } else {
                    text_response(503, "not ready")
                };
            }
            "/version" => return json_response(200, &crate::discovery::version()),
            _ => {}
        }
        let Some(user) = self.authenticate(&caller, &parts.headers).await else {
            return error_response(&ApiError::Unauthorized);
        };
        let mut info = request::parse(&parts.method, &path, &query);
        info.field_manager = match query.get("fieldManager") {
            Some(manager) => manager.to_owned(),
            None => parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .and_then(|ua| ua.split('/').next())
                .filter(|m| !m.is_empty())
                .unwrap_or("unknown")
                .to_owned(),
        };
        if let Decision::Deny(reason) = self.authorize(&user, &info) {
            return error_response(&ApiError::Forbidden(reason));
        }
        if path == "/metrics" {
            return self.metrics_response(&parts.method);
        }
        let accept_header = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        if path == "/openapi/v2" || path == "/swagger-2.0.0.pb-v1" {
            return crate::openapi_v2::response(&path, &parts.headers, &self.remotes.openapi);
        }
        if (path == "/api" || path == "/apis")
            && let Some(version) = crate::discovery::wants_aggregated(accept_header)
        {
            let remotes = self.remotes.all();
            let body = crate::discovery::aggregated(path == "/api", version, &remotes);
            let mut response = json_response(200, &body);
            let media = crate::discovery::AGGREGATED.replace("v=v2", &format!("v={version}"));
            if let Ok(v) = HeaderValue::from_str(&media) {
                response.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            return response;
        }
        let accept = match negotiate(
            parts
                .headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
            serves_tables(&info),
        ) {
            Ok(a) => a,
            Err(err) => return error_response(&err),
        };
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if path == "/openapi/v3" || path.starts_with("/openapi/v3/") {
            return match crate::openapi::serve(&path, &self.remotes.openapi.v3_documents()) {
                Ok(bytes) => {
                    let mut response = Response::new(full(bytes.as_ref().clone()));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    response
                }
                Err(err) => error_response(&err),
            };
        }
        let result = if info.is_resource {
            let serving = self.serve_resource(
                &info,
                &query,
                &parts.method,
                content_type.as_deref(),
                &body,
                accept,
                &user,
            );
            crate::webhook::as_user(user.clone(), serving).await
        } else {
            crate::discovery::serve(&path, &self.config, &self.remotes.all())
                .map(|v| json_response(200, &v))
        };
        match result {
            Ok(response) => response,
            Err(err) => {
                if matches!(err, ApiError::Internal(_)) {
                    tracing::error!(error = %err, path, "request failed");
                }
                error_response(&err)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn serve_resource(
        self: &Arc<Self>,
        info: &RequestInfo,
        query: &Query,
        method: &Method,
        content_type: Option<&str>,
        body: &[u8],
        accept: Accept,
        user: &UserInfo,
    ) -> Result<Response<Body>, ApiError> {
        let rt = registry::all()
            .by_path(&info.group, &info.version, &info.resource)
            .ok_or(ApiError::NoSuchPath)?;
        if let Some(warning) = rt.custom.as_ref().and_then(|c| c.warning.clone()) {
            crate::warnings::warn(warning);
        }
        if rt.namespaced
            && info.namespace.is_none()
            && matches!(info.verb.as_str(), "create" | "update" | "patch" | "delete")
            && rt.is_stored()
        {
            return Err(ApiError::NoSuchPath);
        }
        if let Some(sub) = &info.subresource
            && !rt.has_subresource(sub)
        {
            return Err(ApiError::NoSuchPath);
        }
        if !rt.supports(&info.verb) && info.subresource.is_none() {
            return Err(ApiError::MethodNotAllowed(format!(
                "the server does not allow this method on the requested resource ({} {})",
                method,
                rt.qualified_plural()
            )));
        }
        if rt.custom.is_some() {
            let request = crate::crd_conversion::CustomRequest {
                rt,
                info,
                query,
                content_type,
                body,
                accept,
            };
            return self.serve_custom(request).await;
        }
        if let Some(conversion) = rt.conversion {
            let request = crate::served::ServedRequest {
                served: rt,
                conversion,
                info,
                query,
                content_type,
                body,
                accept,
            };
            return self.serve_converted(request).await;
        }
        let name = info.name.as_deref();
        let table = |v: Value| crate::tables::respond(accept, rt, v, query);
        if rt.group.is_empty() && rt.kind == "ComponentStatus" {
            return crate::componentstatus::serve(info, name).map(table);
        }
        match (info.verb.as_str(), name, info.subresource.as_deref()) {
            // POST bindings: pods/binding for the pod the Binding names.
            ("create", None, None) if rt.group.is_empty() && rt.kind == "Binding" => {
                let binding = crate::subresources::Binding::decode(content_type, body)?;
                let pod = binding.name().unwrap_or_default().to_owned();
                let pods = registry::all()
                    .by_kind("", "Pod")
                    .ok_or(ApiError::NoSuchPath)?;
                let (code, status) = self.bind(pods, info, &pod, binding).await?;
                Ok(object_response(accept, code, &status))
            }
            ("create", None, None) if !rt.is_stored() => {
                let object = crate::decode::decode_body(content_type, body)?;
                let reviewed = crate::reviews::review(rt, object, user)?;
                Ok(object_response(accept, 201, &reviewed))
            }
            ("create", None, None) => {
                let mut object = crate::decode::decode_incoming(rt, content_type, body)?;
                crate::csr::set_requestor(rt, &mut object, user);
                Ok(self.create(rt, info, query, object).await?.response(accept))
            }
            (
                "get",
                Some(name),
                None | Some("status" | "approval" | "ephemeralcontainers" | "resize"),
            ) => Ok(table(self.get_for_client(rt, info, query, name).await?)),
            ("list", None, None) => self.list_response(rt, info, query, accept).await,
            ("watch", _, None) => crate::watch::serve(self.clone(), rt, info, query, accept).await,
            (
                "update",
                Some(name),
                None | Some("status" | "approval" | "ephemeralcontainers" | "resize"),
            ) => {
                let object = crate::decode::decode_incoming(rt, content_type, body)?;
                let (code, updated) = self.update(rt, info, query, name, object).await?;
                Ok(object_response(accept, code, &updated))
            }
            (
                "patch",
                Some(name),
                None | Some("status" | "approval" | "ephemeralcontainers" | "resize"),
            ) => {
                let patch = crate::decode::decode_body(content_type, body)?;
                let (code, patched) = self
                    .patch(rt, info, query, name, content_type, patch, body)
                    .await?;
                Ok(object_response(accept, code, &patched))
            }
            ("delete", Some(name), None) => {
                let options = if body.is_empty() {
                    json!({})
                } else {
                    crate::decode::decode_body(content_type, body)?
                };
                let (code, deleted) = self.delete(rt, info, query, name, options).await?;
                Ok(object_response(accept, code, &deleted))
            }
            ("deletecollection", None, None) => {
                let options = if body.is_empty() {
                    json!({})
                } else {
                    crate::decode::decode_body(content_type, body)?
                };
                Ok(object_response(
                    accept,
                    200,
                    &self.delete_collection(rt, info, query, options).await?,
                ))
            }
            ("create", Some(name), Some("token")) => {
                let body = crate::decode::decode_body(content_type, body)?;
                let ns = info.namespace.as_deref();
                Ok(object_response(
                    accept,
                    201,
                    &self.request_token(rt, ns, name, body).await?,
                ))
            }
            ("create", Some(name), Some("binding")) => {
                let body = crate::subresources::Binding::decode(content_type, body)?;
                let (code, status) = self.bind(rt, info, name, body).await?;
                Ok(object_response(accept, code, &status))
            }
            ("create", Some(name), Some("eviction")) => {
                let body = crate::decode::decode_body(content_type, body)?;
                let (code, status) = self.evict(rt, info, query, name, body).await?;
                Ok(object_response(accept, code, &status))
            }
            ("update", Some(name), Some("finalize")) => {
                let body = crate::decode::decode_body(content_type, body)?;
                let (code, namespace) = self.finalize_namespace(rt, name, body).await?;
                Ok(object_response(accept, code, &namespace))
            }
            ("get", Some(name), Some("scale")) => Ok(object_response(
                accept,
                200,
                &self.get_scale(rt, info, name).await?,
            )),
            ("update", Some(name), Some("scale")) => {
                let body = crate::decode::decode_body(content_type, body)?;
                let change = crate::scale::ScaleChange::Replace(body);
                Ok(object_response(
                    accept,
                    200,
                    &self.change_scale(rt, info, query, name, change).await?,
                ))
            }
            ("patch", Some(name), Some("scale")) => {
                let body = crate::decode::decode_body(content_type, body)?;
                let media = content_type
                    .unwrap_or("")
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim();
                let change = crate::scale::ScaleChange::Patch(media, body);
                Ok(object_response(
                    accept,
                    200,
                    &self.change_scale(rt, info, query, name, change).await?,
                ))
            }
            (verb, _, Some(sub)) => Err(ApiError::MethodNotAllowed(format!(
                "the server does not allow this method on the requested resource ({verb} {}/{sub})",
                rt.qualified_plural()
            ))),
            (verb, _, None) => Err(ApiError::MethodNotAllowed(format!(
                "the server does not allow this method on the requested resource ({verb} {})",
                rt.qualified_plural()
            ))),
        }
    }

    /// Defaulting then validation: what admission does to every object before it is stored
    /// (`scheme_defaulted`: the scheme's defaults were applied already).
    pub(crate) fn admit(
        &self,
        rt: &ResourceType,
        object: &mut Value,
        old: Option<&Value>,
        scheme_defaulted: bool,
    ) -> Result<(), ApiError> {
        crate::admission::admit(rt, object, old, scheme_defaulted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_headers_pick_table_or_json() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl), true).unwrap(), Accept::Table);
        assert_eq!(
            negotiate(Some("application/json"), true).unwrap(),
            Accept::Json
        );
        assert_eq!(negotiate(None, true).unwrap(), Accept::Json);
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf, */*"), true).unwrap(),
            Accept::Protobuf
        );
        assert_eq!(
            negotiate(
                Some("application/json, application/vnd.kubernetes.protobuf"),
                true
            )
            .unwrap(),
            Accept::Json
        );
        assert!(matches!(
            negotiate(Some("text/html"), true),
            Err(ApiError::NotAcceptable(_))
        ));
    }

    #[test]
    fn a_table_is_skipped_where_the_endpoint_has_none() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl), false).unwrap(), Accept::Json);
        assert!(matches!(
            negotiate(Some("application/json;as=Table;v=v1;g=meta.k8s.io"), false),
            Err(ApiError::NotAcceptable(_))
        ));
        let info =
            |path: &str, method: &http::Method| request::parse(method, path, &Query::parse(None));
        let post = http::Method::POST;
        let get = http::Method::GET;
        assert!(!serves_tables(&info(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            &post
        )));
        assert!(!serves_tables(&info(
            "/api/v1/namespaces/default/serviceaccounts/default/token",
            &post
        )));
        assert!(serves_tables(&info(
            "/api/v1/namespaces/default/pods",
            &get
        )));
        assert!(serves_tables(&info(
            "/apis/apps/v1/namespaces/default/deployments/web/status",
            &get
        )));
    }
}
