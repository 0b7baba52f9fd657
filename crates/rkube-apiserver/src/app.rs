//! The API server's request pipeline, independent of how requests arrive (TLS socket or the
//! in-process transport). Every request passes the same stages in one order, each a module
//! with one entry point taking what the stage before produced:
//!
//! 1. decode the head ([`crate::request`]): what the request asks for;
//! 2. authenticate ([`crate::authn`]): who asks;
//! 3. authorize ([`Authorizer`]): whether they may;
//! 4. route: to a kubelet ([`crate::nodeproxy`]), to an extension API server
//!    ([`crate::aggregator::proxy`]), to a non-resource endpoint ([`crate::endpoints`]), or to
//!    the resource's handler, which decodes the body ([`crate::decode`]), admits it
//!    ([`crate::admission`]: built-in plugins, webhooks and policies alike) and stores it
//!    ([`crate::rest`] over [`Objects`]);
//! 5. encode the result or error ([`crate::encode`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Response, header};
use http_body_util::{BodyExt, Limited};
use rkube_api::ApiError;
use rkube_api::registry::{self, ResourceType};
use serde_json::{Value, json};

use crate::auth::{Authorizer, Decision, TokenAuthenticator, UserInfo};
use crate::authn::{Authentication, Caller};
use crate::encode::{Accept, Body, error_response, object_response};
use crate::objects::Objects;
use crate::request::ApiRequest;

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

/// The request handler: the stages' parts, assembled once.
pub struct App {
    pub(crate) objects: Objects,
    pub(crate) config: AppConfig,
    authentication: Authentication,
    pub(crate) issuer: Arc<crate::satokens::TokenIssuer>,
    authorizer: Arc<dyn Authorizer>,
    ready: AtomicBool,
    pub(crate) watch_lines: Arc<crate::watch::LineMemo>,
    pub(crate) cache: Arc<crate::cache::WatchCache>,
    pub(crate) definitions: crate::crd::Definitions,
    pub(crate) webhooks: crate::webhook::Configurations,
    pub(crate) remotes: crate::aggregator::remote::RemoteApis,
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
        let issuer = Arc::new(issuer);
        let authentication = Authentication::new(
            config.front_proxy.clone(),
            tokens,
            issuer.clone(),
            objects.clone(),
        );
        Self {
            objects,
            cache,
            config,
            authentication,
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

    /// Whether the server is ready.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
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

    /// Serves one request through every stage, recording it in the request metrics.
    pub(crate) async fn serve<B>(
        self: Arc<Self>,
        request: http::Request<B>,
        caller: Caller,
    ) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = std::time::Instant::now();
        let (head, body) = request.into_parts();
        let request = ApiRequest::decode(head);
        let (info, apply, dry_run) = (
            request.info.clone(),
            request.is_apply(),
            request.is_dry_run(),
        );
        // As upstream, what the aggregator proxies is the extension server's to count (what
        // the proxy itself refuses is counted as a termination).
        let proxied = self.remotes.route(request.path()).is_some();
        let response = self.serve_decoded(request, body, caller).await;
        if proxied {
            return response;
        }
        crate::request_metrics::record(
            &info,
            apply,
            dry_run,
            response.status().as_u16(),
            started.elapsed(),
        );
        if info.verb == "watch" && response.status() == http::StatusCode::OK {
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

    /// The stages after decoding.
    async fn serve_decoded<B>(
        self: Arc<Self>,
        request: ApiRequest,
        body: B,
        caller: Caller,
    ) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // Health and version answer everyone, as upstream's default RBAC allows.
        if let Some(response) = crate::endpoints::public(request.path(), self.is_ready()) {
            return response;
        }
        let Some(user) = self
            .authentication
            .authenticate(&caller, &request.head.headers)
            .await
        else {
            return error_response(&ApiError::Unauthorized);
        };
        if let Decision::Deny(reason) = self.authorizer.authorize(&user, &request.info) {
            return error_response(&ApiError::Forbidden(reason));
        }
        if let Some(target) = crate::nodeproxy::target(request.path()) {
            let query = request.head.uri.query();
            let admitted = self.admit_connect(&target, query);
            if let Err(err) = crate::webhook::as_user(user.clone(), admitted).await {
                return error_response(&err);
            }
            let request = http::Request::from_parts(request.head, body);
            return crate::nodeproxy::handle(self, target, request).await;
        }
        if let Some(remote) = self.remotes.route(request.path()) {
            let ApiRequest { head, info, .. } = request;
            let request = http::Request::from_parts(head, body);
            return crate::aggregator::proxy::handle(self, remote, request, &user, &info).await;
        }
        let body = match read_body(body).await {
            Ok(body) => body,
            Err(err) => return error_response(&err),
        };
        // Boxed where it is made: the handler's future is kilobytes, and every future wrapping
        // it (here, the warnings' scope, the connection's or client's layers) would hold and
        // move a copy of it otherwise.
        crate::warnings::collect(Box::pin(self.serve_local(request, body, user))).await
    }

    /// A request this server answers itself: a non-resource endpoint, or a resource's handler
    /// (as the caller, whom webhooks are told about).
    async fn serve_local(
        self: Arc<Self>,
        request: ApiRequest,
        body: Bytes,
        user: UserInfo,
    ) -> Response<Body> {
        if !request.info.is_resource {
            return crate::endpoints::serve(&self, &request);
        }
        let accept = match crate::encode::negotiate(
            request.header(header::ACCEPT),
            crate::encode::serves_tables(&request.info),
        ) {
            Ok(accept) => accept,
            Err(err) => return error_response(&err),
        };
        let serving = self.serve_resource(&request, &body, accept, &user);
        match crate::webhook::as_user(user.clone(), serving).await {
            Ok(response) => response,
            Err(err) => {
                if matches!(err, ApiError::Internal(_)) {
                    tracing::error!(error = %err, path = request.path(), "request failed");
                }
                error_response(&err)
            }
        }
    }

    /// The handler of the resource the request names, by verb and subresource.
    async fn serve_resource(
        self: &Arc<Self>,
        request: &ApiRequest,
        body: &[u8],
        accept: Accept,
        user: &UserInfo,
    ) -> Result<Response<Body>, ApiError> {
        let (info, query, method) = (&request.info, &request.query, &request.head.method);
        let content_type = request.header(header::CONTENT_TYPE);
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
}

/// Reads a request body whole, up to the limit (upstream's 413 beyond it).
async fn read_body<B>(body: B) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::RequestEntityTooLarge(format!(
                "the request body is larger than {MAX_BODY} bytes"
            )))
        }
        Err(e) => Err(ApiError::BadRequest(format!(
            "reading the request body: {e}"
        ))),
    }
}
