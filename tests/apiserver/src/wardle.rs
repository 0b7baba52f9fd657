//! A small extension API server for aggregation tests, in the spirit of upstream's
//! sample-apiserver: group `wardle.example.com/v1alpha1` with namespaced `flunders` (get,
//! list, create), over HTTPS on loopback. It trusts callers as upstream's request-header
//! authenticator does: the client certificate must chain to the request-header CA and carry
//! an allowed name, and then `X-Remote-User` / `X-Remote-Group` say who is asking. It records
//! every request it serves, with the identity it saw. A list with `watch=true` streams an
//! ADDED event for every flunder there and then one for each created later, as it happens.
//! A request asking to upgrade to the `echo` protocol is switched, and echoes what it gets.
//! It publishes OpenAPI documents for flunders as upstream's generic API server does: a
//! Swagger 2.0 one at `/openapi/v2`, and at `/openapi/v3` a root listing its group version's
//! OpenAPI 3 document (`openapi` has them).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

pub mod openapi;

/// The group and version served.
pub const GROUP_VERSION: &str = "wardle.example.com/v1alpha1";

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The path, with the query.
    pub path: String,
    /// The front proxy's certificate name.
    pub proxy: String,
    /// `X-Remote-User` values.
    pub users: Vec<String>,
    /// `X-Remote-Group` values.
    pub groups: Vec<String>,
    /// `X-Remote-Uid` values.
    pub uids: Vec<String>,
}

/// What an extension API server reads from `kube-system/extension-apiserver-authentication`
/// to trust a front proxy.
#[derive(Clone, Debug)]
pub struct RequestHeaderTrust {
    /// `requestheader-client-ca-file`.
    pub client_ca: String,
    /// `requestheader-allowed-names`.
    pub allowed_names: Vec<String>,
}

impl RequestHeaderTrust {
    /// From the ConfigMap's `data`.
    pub fn from_config_map(data: &Value) -> Self {
        let allowed = data["requestheader-allowed-names"].as_str().unwrap();
        Self {
            client_ca: data["requestheader-client-ca-file"]
                .as_str()
                .unwrap()
                .to_owned(),
            allowed_names: serde_json::from_str(allowed).unwrap(),
        }
    }

    /// Read from the server.
    pub async fn read(client: &kube::Client) -> Self {
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client.clone(), "kube-system");
        let cm = api.get("extension-apiserver-authentication").await.unwrap();
        Self::from_config_map(&serde_json::to_value(cm.data.unwrap()).unwrap())
    }
}

type Flunders = Arc<Mutex<BTreeMap<(String, String), Value>>>;

/// The body of every answer.
type Body = BoxBody<Bytes, std::convert::Infallible>;

/// The flunders created, for watchers.
type Created = tokio::sync::broadcast::Sender<Value>;

/// A running server.
pub struct Wardle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The CA its serving certificate chains to, for the APIService's caBundle.
    pub ca_pem: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    flunders: Flunders,
    task: tokio::task::JoinHandle<()>,
}

impl Wardle {
    /// Serves on a free loopback port, with a certificate for `names` (e.g.
    /// `api.default.svc`), trusting front proxies as `trust` says.
    pub async fn start(trust: RequestHeaderTrust, names: &[&str]) -> Self {
        let (acceptor, ca_pem) =
            crate::tls_acceptor_requiring_clients("wardle-ca", names, &trust.client_ca);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let flunders: Flunders = Arc::default();
        let created: Created = tokio::sync::broadcast::channel(16).0;
        let trust = Arc::new(trust);
        let (seen2, flunders2) = (seen.clone(), flunders.clone());
        let task = tokio::spawn(async move {
            // Dropped with this task: stopping the server ends its connections too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, trust) = (acceptor.clone(), trust.clone());
                let (seen, flunders, created) = (seen2.clone(), flunders2.clone(), created.clone());
                connections.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let proxy = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| common_name(c))
                        .unwrap_or_default();
                    let service = hyper::service::service_fn(move |request| {
                        let (trust, seen, proxy) = (trust.clone(), seen.clone(), proxy.clone());
                        let (flunders, created) = (flunders.clone(), created.clone());
                        async move {
                            let store = Store { flunders, created };
                            Ok::<_, hyper::Error>(
                                serve(request, &trust, &proxy, &seen, &store).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self {
            addr,
            ca_pem,
            seen,
            flunders,
            task,
        }
    }

    /// The requests served so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests served so far under the group version (the OpenAPI downloads, which
    /// come whenever the aggregator refreshes them, left out).
    pub fn seen_api(&self) -> Vec<Seen> {
        let mut seen = self.seen();
        seen.retain(|s| !s.path.starts_with("/openapi/"));
        seen
    }

    /// Stores a flunder as if it had been created.
    pub fn insert(&self, namespace: &str, name: &str) {
        self.flunders.lock().unwrap().insert(
            (namespace.to_owned(), name.to_owned()),
            flunder(namespace, name, "test"),
        );
    }

    /// Stops listening and ends every connection.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Wardle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    Some(cn.as_str().ok()?.to_owned())
}

fn flunder(namespace: &str, name: &str, creator: &str) -> Value {
    json!({
        "apiVersion": GROUP_VERSION,
        "kind": "Flunder",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {"wardle.example.com/created-by": creator},
        },
        "spec": {},
    })
}

/// The flunders and the channel their creations are announced on.
struct Store {
    flunders: Flunders,
    created: Created,
}

fn respond(code: u16, body: &Value, headers: &[(&'static str, String)]) -> hyper::Response<Body> {
    let full = Full::new(Bytes::from(body.to_string())).map_err(|never| match never {});
    let mut response = hyper::Response::new(BodyExt::boxed(full));
    *response.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(*name, hyper::header::HeaderValue::from_str(value).unwrap());
    }
    response
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn table(items: &[Value]) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|f| {
            json!({
                "cells": [f["metadata"]["name"], f["metadata"]["annotations"]["wardle.example.com/created-by"]],
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": f["metadata"]},
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0},
            {"name": "Created By", "type": "string", "format": "", "description": "", "priority": 0},
        ],
        "rows": rows,
    })
}

/// Switches to the `echo` protocol: every byte read is written back.
fn switch_to_echo(request: &mut hyper::Request<hyper::body::Incoming>) -> hyper::Response<Body> {
    let upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
        let _ = tokio::io::copy(&mut reader, &mut writer).await;
    });
    let empty = http_body_util::Empty::<Bytes>::new().map_err(|never| match never {});
    let mut response = hyper::Response::new(BodyExt::boxed(empty));
    *response.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("echo"),
    );
    headers.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    response
}

async fn serve(
    mut request: hyper::Request<hyper::body::Incoming>,
    trust: &RequestHeaderTrust,
    proxy: &str,
    seen: &Mutex<Vec<Seen>>,
    store: &Store,
) -> hyper::Response<Body> {
    let flunders = &store.flunders;
    let all = |name: &str| -> Vec<String> {
        request
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    let (users, groups) = (all("x-remote-user"), all("x-remote-group"));
    let uids = all("x-remote-uid");
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        proxy: proxy.to_owned(),
        users: users.clone(),
        groups: groups.clone(),
        uids,
    });
    let echo = [
        ("x-wardle-user", users.join(",")),
        ("x-wardle-groups", groups.join(",")),
    ];
    if !trust.allowed_names.iter().any(|n| n == proxy) || users.len() != 1 {
        return respond(401, &status(401, "Unauthorized", "Unauthorized"), &echo);
    }
    let user = users[0].clone();
    if request
        .headers()
        .get(hyper::header::UPGRADE)
        .is_some_and(|u| u == "echo")
    {
        return switch_to_echo(&mut request);
    }
    let wants_table = request
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    let watching = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let route = request.uri().path().trim_matches('/').to_owned();
    match (method.as_str(), route.as_str()) {
        ("GET", "openapi/v2") => return respond(200, &openapi::v2(), &echo),
        ("GET", "openapi/v3") => return respond(200, &openapi::v3_root(), &echo),
        ("GET", "openapi/v3/apis/wardle.example.com/v1alpha1") => {
            return respond(200, &openapi::v3(), &echo);
        }
        _ => {}
    }
    let parts: Vec<&str> = route.split('/').collect();
    let Some(under) = parts.strip_prefix(&["apis", "wardle.example.com", "v1alpha1"][..]) else {
        let message = "the server could not find the requested resource";
        return respond(404, &status(404, "NotFound", message), &echo);
    };
    match (method.as_str(), under) {
        ("GET", []) => respond(
            200,
            &json!({
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": GROUP_VERSION,
                "resources": [{
                    "name": "flunders",
                    "singularName": "flunder",
                    "namespaced": true,
                    "kind": "Flunder",
                    "verbs": ["create", "get", "list"],
                    "shortNames": ["fl"],
                }],
            }),
            &echo,
        ),
        ("GET", ["namespaces", ns, "flunders"]) if watching => {
            let ns = (*ns).to_owned();
            let existing: Vec<Value> = flunders
                .lock()
                .unwrap()
                .iter()
                .filter(|((n, _), _)| *n == ns)
                .map(|(_, f)| f.clone())
                .collect();
            let later = store.created.subscribe();
            let line = |f: Value| {
                let mut line = json!({"type": "ADDED", "object": f}).to_string();
                line.push('\n');
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from(line)))
            };
            let first = futures::stream::iter(existing.into_iter().map(line));
            let rest = futures::stream::unfold((later, ns), move |(mut later, ns)| async move {
                loop {
                    match later.recv().await {
                        Ok(f) if f["metadata"]["namespace"] == ns.as_str() => {
                            return Some((line(f), (later, ns)));
                        }
                        Ok(_) => {}
                        Err(_) => return None,
                    }
                }
            });
            let body = StreamBody::new(futures::StreamExt::chain(first, rest));
            let mut response = hyper::Response::new(BodyExt::boxed(body));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            response
        }
        ("GET", ["namespaces", ns, "flunders"]) => {
            let items: Vec<Value> = flunders
                .lock()
                .unwrap()
                .iter()
                .filter(|((n, _), _)| n == ns)
                .map(|(_, f)| f.clone())
                .collect();
            let body = if wants_table {
                table(&items)
            } else {
                json!({"kind": "FlunderList", "apiVersion": GROUP_VERSION,
                       "metadata": {"resourceVersion": "1"}, "items": items})
            };
            respond(200, &body, &echo)
        }
        ("GET", ["namespaces", ns, "flunders", name]) => {
            let found = flunders
                .lock()
                .unwrap()
                .get(&((*ns).to_owned(), (*name).to_owned()))
                .cloned();
            match found {
                Some(f) if wants_table => respond(200, &table(&[f]), &echo),
                Some(f) => respond(200, &f, &echo),
                None => respond(
                    404,
                    &status(
                        404,
                        "NotFound",
                        &format!("flunders.wardle.example.com \"{name}\" not found"),
                    ),
                    &echo,
                ),
            }
        }
        ("POST", ["namespaces", ns, "flunders"]) => {
            let ns = (*ns).to_owned();
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let Ok(object) = serde_json::from_slice::<Value>(&body) else {
                return respond(400, &status(400, "BadRequest", "not JSON"), &echo);
            };
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            let created = flunder(&ns, name, &user);
            let mut stored = flunders.lock().unwrap();
            if stored.contains_key(&(ns.clone(), name.to_owned())) {
                let message = format!("flunders.wardle.example.com \"{name}\" already exists");
                return respond(409, &status(409, "AlreadyExists", &message), &echo);
            }
            stored.insert((ns, name.to_owned()), created.clone());
            let _ = store.created.send(created.clone());
            respond(201, &created, &echo)
        }
        _ => respond(
            404,
            &status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
            &echo,
        ),
    }
}
