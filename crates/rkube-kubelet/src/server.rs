//! The kubelet API on :10250 (TLS; callers must present a client certificate signed by the
//! cluster CA, as the API server does): container logs, exec, attach and port-forward (handed
//! to the runtime's streaming server), health, running pods, and resource stats.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::cri::v1;
use crate::kubelet::{Shared, runtime_pod};
use crate::observed::State;

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

fn full(code: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(text.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = code;
    r
}

/// TLS material for the kubelet API.
pub struct ServingConfig {
    /// Where to listen.
    pub address: SocketAddr,
    /// The serving certificate and key (PEM).
    pub cert: String,
    /// Its key.
    pub key: String,
    /// The CA client certificates must chain to (PEM).
    pub client_ca: String,
}

/// A self-signed serving certificate for the node (the API server does not verify kubelet
/// serving certificates unless told to, as upstream's default).
pub fn self_signed(node: &str, ip: &str) -> anyhow::Result<(String, String)> {
    let mut sans = vec![node.to_owned()];
    sans.push(ip.to_owned());
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = sans
        .iter()
        .filter_map(|s| match s.parse::<std::net::IpAddr>() {
            Ok(ip) => Some(rcgen::SanType::IpAddress(ip)),
            Err(_) => s.clone().try_into().ok().map(rcgen::SanType::DnsName),
        })
        .collect();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{node}@rkube"));
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn pem_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

fn tls_config(config: &ServingConfig) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_certs(&config.client_ca) {
        roots.add(cert)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(config.key.as_bytes())?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(pem_certs(&config.cert), key)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// Serves the kubelet API until the task is aborted.
pub async fn serve(shared: Arc<Shared>, config: ServingConfig) -> anyhow::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(&config)?));
    let listener = tokio::net::TcpListener::bind(config.address).await?;
    tracing::info!(address = %config.address, "kubelet API listening");
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, shared) = (acceptor.clone(), shared.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, request).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await;
        });
    }
}

fn query_pairs(uri: &http::Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn flag(q: &[(String, String)], name: &str) -> bool {
    q.iter()
        .any(|(k, v)| k == name && (v == "1" || v.eq_ignore_ascii_case("true")))
}

fn value<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["healthz"] | ["healthz", ..] => full(StatusCode::OK, "ok"),
        ["containerLogs", ns, pod, container] => {
            container_logs(&shared, ns, pod, container, request.uri()).await
        }
        ["exec" | "attach", ns, pod, container] | ["exec" | "attach", ns, pod, _, container] => {
            let (verb, ns, pod, container) = (
                parts[0],
                ns.to_string(),
                pod.to_string(),
                container.to_string(),
            );
            stream(&shared, verb, &ns, &pod, Some(&container), request).await
        }
        ["portForward", ns, pod] | ["portForward", ns, pod, _] => {
            let (ns, pod) = (ns.to_string(), pod.to_string());
            stream(&shared, "portForward", &ns, &pod, None, request).await
        }
        ["pods"] => pods(&shared).await,
        ["stats", "summary"] => crate::stats::summary(&shared).await,
        ["metrics", "resource"] => crate::stats::resource_metrics(&shared).await,
        ["metrics"] => full(StatusCode::OK, crate::stats::metrics(&shared).await),
        _ => full(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

async fn pods(shared: &Shared) -> Response<Body> {
    let entries: Vec<_> = shared.pods.lock().await.values().cloned().collect();
    let mut items = Vec::new();
    for e in entries {
        items.push(e.pod.lock().await.clone());
    }
    let list =
        serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items});
    let mut r = full(StatusCode::OK, list.to_string());
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// The uid of a pod this node runs.
async fn pod_uid(shared: &Shared, ns: &str, name: &str) -> Option<String> {
    for (uid, entry) in shared.pods.lock().await.iter() {
        let pod = entry.pod.lock().await;
        if pod.metadata.namespace.as_deref() == Some(ns)
            && pod.metadata.name.as_deref() == Some(name)
        {
            return Some(uid.clone());
        }
    }
    None
}

async fn container_logs(
    shared: &Arc<Shared>,
    ns: &str,
    pod: &str,
    container: &str,
    uri: &http::Uri,
) -> Response<Body> {
    let q = query_pairs(uri);
    let Some(uid) = pod_uid(shared, ns, pod).await else {
        return full(
            StatusCode::NOT_FOUND,
            format!("pod \"{pod}\" in namespace \"{ns}\" is not running on this node"),
        );
    };
    let Ok(runtime) = runtime_pod(shared, &uid).await else {
        return full(
            StatusCode::SERVICE_UNAVAILABLE,
            "the container runtime is not answering",
        );
    };
    let previous = flag(&q, "previous");
    let mut instances = runtime.instances(container);
    let chosen = if previous {
        instances.nth(1)
    } else {
        instances.next()
    };
    let Some(chosen) = chosen.cloned() else {
        let message = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            )
        };
        return full(StatusCode::BAD_REQUEST, message);
    };
    let Some(entry) = shared.pods.lock().await.get(&uid).cloned() else {
        return full(StatusCode::NOT_FOUND, "pod gone");
    };
    let pod_obj = entry.pod.lock().await.clone();
    let file = crate::podconfig::log_directory(&shared.settings, &pod_obj)
        .join(container)
        .join(format!("{}.log", chosen.attempt));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let since_ns = value(&q, "sinceSeconds")
        .and_then(|s| s.parse::<i64>().ok())
        .map(|s| now - s * 1_000_000_000)
        .or_else(|| {
            value(&q, "sinceTime")
                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                .map(|t| t.as_nanosecond() as i64)
        });
    let options = crate::logs::Options {
        tail: value(&q, "tailLines")
            .and_then(|s| s.parse::<i64>().ok())
            .map(|n| n.max(0) as usize),
        since_ns,
        timestamps: flag(&q, "timestamps"),
        limit_bytes: value(&q, "limitBytes").and_then(|s| s.parse().ok()),
    };
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let first = crate::logs::render(&text, &options);
    let follow = flag(&q, "follow") && !previous && chosen.state == State::Running;
    if !follow {
        let mut r = full(StatusCode::OK, first);
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        return r;
    }
    // Follow: what is there, then whatever the container writes until it stops.
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(16);
    let shared = shared.clone();
    let id = chosen.id.clone();
    let timestamps = options.timestamps;
    tokio::spawn(async move {
        if tx
            .send(Ok(hyper::body::Frame::data(Bytes::from(first))))
            .await
            .is_err()
        {
            return;
        }
        let mut offset = text.len();
        let mut pending = String::new();
        let mut idle = 0u32;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = std::fs::read(&file).unwrap_or_default();
            if now.len() > offset {
                idle = 0;
                pending.push_str(&String::from_utf8_lossy(&now[offset..]));
                offset = now.len();
                // Only whole records; a record still being written waits.
                let cut = pending.rfind('\n').map_or(0, |i| i + 1);
                let ready: String = pending.drain(..cut).collect();
                let out = crate::logs::render(
                    &ready,
                    &crate::logs::Options {
                        timestamps,
                        ..Default::default()
                    },
                );
                if !out.is_empty()
                    && tx
                        .send(Ok(hyper::body::Frame::data(Bytes::from(out))))
                        .await
                        .is_err()
                {
                    return;
                }
            } else {
                idle += 1;
                if idle.is_multiple_of(10) {
                    let running = shared
                        .runtime
                        .container_status(&id)
                        .await
                        .is_ok_and(|s| s.state == v1::ContainerState::ContainerRunning as i32);
                    if !running {
                        return;
                    }
                }
            }
        }
    });
    let body = http_body_util::StreamBody::new(tokio_stream_from(rx));
    let mut r = Response::new(BodyExt::boxed_unsync(body));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// exec, attach and portForward: the runtime's streaming server serves the session; the
/// request is forwarded to it over a new connection. WebSocket clients it cannot serve
/// (`v5.channel.k8s.io`, and the SPDY tunnel of port-forward) are served by translation to
/// the SPDY it speaks (`rkube_forward::remotecommand`, `rkube_forward::tunnel`).
async fn stream(
    shared: &Arc<Shared>,
    verb: &str,
    ns: &str,
    pod: &str,
    container: Option<&str>,
    mut request: Request<Incoming>,
) -> Response<Body> {
    let q = query_pairs(request.uri());
    let Some(uid) = pod_uid(shared, ns, pod).await else {
        return full(
            StatusCode::NOT_FOUND,
            format!("pod \"{pod}\" in namespace \"{ns}\" is not running on this node"),
        );
    };
    let Ok(runtime) = runtime_pod(shared, &uid).await else {
        return full(
            StatusCode::SERVICE_UNAVAILABLE,
            "the container runtime is not answering",
        );
    };
    let (stdin, stdout, stderr, tty) = (
        flag(&q, "stdin"),
        flag(&q, "stdout"),
        flag(&q, "stderr"),
        flag(&q, "tty"),
    );
    let url = match (verb, container) {
        ("portForward", _) => {
            let Some(sandbox) = runtime.sandbox().filter(|s| s.ready) else {
                return full(StatusCode::BAD_REQUEST, "the pod's sandbox is not running");
            };
            let ports = q
                .iter()
                .filter(|(k, _)| k == "port")
                .filter_map(|(_, v)| v.parse().ok())
                .collect();
            shared.runtime.port_forward(&sandbox.id, ports).await
        }
        (_, Some(name)) => {
            let Some(c) = runtime.current(name).filter(|c| c.state == State::Running) else {
                return full(
                    StatusCode::BAD_REQUEST,
                    format!("container {name} is not valid for pod {pod}"),
                );
            };
            if verb == "exec" {
                let cmd: Vec<String> = q
                    .iter()
                    .filter(|(k, _)| k == "command")
                    .map(|(_, v)| v.clone())
                    .collect();
                shared
                    .runtime
                    .exec(v1::ExecRequest {
                        container_id: c.id.clone(),
                        cmd,
                        tty,
                        stdin,
                        stdout,
                        stderr: stderr && !tty,
                    })
                    .await
            } else {
                shared
                    .runtime
                    .attach(v1::AttachRequest {
                        container_id: c.id.clone(),
                        stdin,
                        tty,
                        stdout,
                        stderr: stderr && !tty,
                    })
                    .await
            }
        }
        _ => return full(StatusCode::BAD_REQUEST, "no container"),
    };
    let url = match url {
        Ok(u) => u,
        Err(e) => return full(StatusCode::INTERNAL_SERVER_ERROR, e.message),
    };
    let Ok(target) = url.parse::<http::Uri>() else {
        return full(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the runtime answered an unusable URL {url:?}"),
        );
    };
    let authority = target
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let Ok(tcp) = tokio::net::TcpStream::connect(&authority).await else {
        return full(
            StatusCode::BAD_GATEWAY,
            "the runtime's streaming server does not answer",
        );
    };
    let path = target
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let offered = rkube_forward::websocket::offered_protocols(request.headers());
    match session(verb, offered.as_deref()) {
        Session::Forward => {}
        Session::RemoteCommand => {
            tracing::info!(
                pod = %format!("{ns}/{pod}"), verb, protocol = rkube_forward::remotecommand::V5,
                "streaming over WebSocket, translated to SPDY for the runtime"
            );
            let client = hyper::upgrade::on(&mut request);
            let streams = rkube_forward::remotecommand::Streams {
                stdin,
                stdout,
                stderr: stderr && !tty,
                tty,
            };
            return rkube_forward::remotecommand::serve_websocket(
                tcp,
                &path,
                &authority,
                request.headers(),
                client,
                streams,
            )
            .await;
        }
        Session::Tunnel(protocols) => {
            tracing::info!(
                pod = %format!("{ns}/{pod}"), verb, protocol = %format!("{}{}", rkube_forward::tunnel::PREFIX, protocols.join(",")),
                "streaming over WebSocket, tunnelling SPDY to the runtime"
            );
            let client = hyper::upgrade::on(&mut request);
            return rkube_forward::tunnel::serve_websocket(
                tcp,
                &path,
                &authority,
                request.headers(),
                client,
                &protocols,
            )
            .await;
        }
    }
    let upgrade =
        rkube_forward::is_upgrade(request.headers()).then(|| hyper::upgrade::on(&mut request));
    match rkube_forward::forward(
        tcp,
        request.method(),
        &path,
        &authority,
        request.headers(),
        upgrade,
    )
    .await
    {
        Ok(response) => rkube_forward::passed_on(response),
        Err(e) => full(StatusCode::BAD_GATEWAY, e.0),
    }
}

/// How a streaming request is served.
#[derive(Debug, PartialEq, Eq)]
enum Session {
    /// Forwarded to the runtime as it is: SPDY, and the WebSocket protocols the runtime
    /// speaks itself (`channel.k8s.io` … `v4.channel.k8s.io`, `base64.channel.k8s.io`).
    Forward,
    /// exec or attach over WebSocket `v5.channel.k8s.io`.
    RemoteCommand,
    /// port-forward over WebSocket, tunnelling SPDY with these protocols.
    Tunnel(Vec<String>),
}

/// Picks the way to serve `verb` for a request offering WebSocket `offered` (`None`: not a
/// WebSocket request).
fn session(verb: &str, offered: Option<&[String]>) -> Session {
    let Some(offered) = offered else {
        return Session::Forward;
    };
    if verb == "portForward" {
        let protocols = rkube_forward::tunnel::tunneled_protocols(offered);
        if protocols.is_empty() {
            Session::Forward
        } else {
            Session::Tunnel(protocols)
        }
    } else if rkube_forward::remotecommand::wants_v5(offered) {
        Session::RemoteCommand
    } else {
        Session::Forward
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(protocols: &[&str]) -> Vec<String> {
        protocols.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn websocket_v5_and_the_port_forward_tunnel_are_translated_and_the_rest_forwarded() {
        let v5 = offered(&["v5.channel.k8s.io"]);
        assert_eq!(session("exec", Some(&v5)), Session::RemoteCommand);
        assert_eq!(session("attach", Some(&v5)), Session::RemoteCommand);
        let v4 = offered(&["v4.channel.k8s.io", "base64.channel.k8s.io"]);
        assert_eq!(session("exec", Some(&v4)), Session::Forward);
        assert_eq!(session("exec", None), Session::Forward);
        let tunnel = offered(&["SPDY/3.1+portforward.k8s.io"]);
        assert_eq!(
            session("portForward", Some(&tunnel)),
            Session::Tunnel(vec!["portforward.k8s.io".to_owned()])
        );
        assert_eq!(session("portForward", Some(&v4)), Session::Forward);
        assert_eq!(session("portForward", None), Session::Forward);
        assert_eq!(session("exec", Some(&tunnel)), Session::Forward);
    }
}
