//! Proxying requests for a remote group version to its extension API server, as upstream's
//! `proxyHandler` does: the caller is authenticated and authorized here, the request goes
//! over TLS (the backend verified against the APIService's `caBundle`) with the front-proxy
//! client certificate and the caller's identity in the request-header headers, and the
//! answer streams back as it comes (watches). Upgrade requests (exec-like subresources) are
//! spliced through on a connection of their own. Request bodies are read whole first (at most
//! the server's body limit), as every other request's.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rkube_api::ApiError;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::remote::Remote;
use crate::app::{App, MAX_BODY};
use crate::auth::UserInfo;
use crate::encode::{Body, error_response};
use crate::request::RequestInfo;

/// Headers about one hop of a connection, never passed on (either way).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Why the backend could not be reached.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The Service has no usable endpoint.
    Resolve(String),
    /// The TLS client could not be set up (a bad caBundle).
    Transport(String),
    /// Dialling or the TLS handshake failed.
    Dial(String),
}

/// A TLS connection to the extension API server behind `remote`: one ready endpoint of its
/// Service, the certificate checked for `<service>.<namespace>.svc`.
pub(crate) async fn connect(
    app: &App,
    remote: &Remote,
) -> Result<TlsStream<TcpStream>, ConnectError> {
    let tls = remote.tls.clone().map_err(ConnectError::Transport)?;
    let (host, port) = app
        .service_endpoint(&remote.namespace, &remote.service, remote.port)
        .await
        .map_err(ConnectError::Resolve)?;
    let server_name = rustls::pki_types::ServerName::try_from(remote.server_name())
        .map_err(|e| ConnectError::Transport(e.to_string()))?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| ConnectError::Dial(format!("dial tcp {host}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    tokio_rustls::TlsConnector::from(tls)
        .connect(server_name, tcp)
        .await
        .map_err(|e| ConnectError::Dial(format!("tls: {e}")))
}

/// The request headers for the backend: the client's, less its credentials, its own
/// `X-Remote-*` and hop-by-hop headers, plus the caller's identity.
fn backend_headers(incoming: &HeaderMap, user: &UserInfo, keep_upgrade: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in incoming {
        let hop = HOP_BY_HOP.contains(&name.as_str())
            || name == header::HOST
            || (!keep_upgrade && name == header::UPGRADE);
        if !hop {
            headers.append(name.clone(), value.clone());
        }
    }
    if keep_upgrade && let Some(connection) = incoming.get(header::CONNECTION) {
        headers.insert(header::CONNECTION, connection.clone());
    }
    crate::requestheader::strip(&mut headers);
    crate::requestheader::set(&mut headers, user);
    headers
}

/// Sends one request over `stream` and returns the answer, its body still streaming.
async fn send(
    stream: TlsStream<TcpStream>,
    request: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, String> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // The connection ends by itself once the answer's body is done or dropped.
    tokio::spawn(connection);
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}

/// The backend's answer for the client: hop-by-hop headers dropped (but for the
/// `Connection: Upgrade` of a switch, which clients check), the body streamed frame by frame
/// (an error from the backend ends the stream).
fn passed_back(response: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let switched = parts.status == http::StatusCode::SWITCHING_PROTOCOLS;
    for name in HOP_BY_HOP {
        if !(switched && name == "connection") {
            parts.headers.remove(name);
        }
    }
    let frames = futures::stream::unfold(body, |mut body| async move {
        match body.frame().await {
            Some(Ok(frame)) => Some((Ok::<_, Infallible>(frame), body)),
            _ => None,
        }
    });
    Response::from_parts(
        parts,
        BodyExt::boxed_unsync(http_body_util::StreamBody::new(frames)),
    )
}

fn unavailable(message: impl Into<String>) -> Response<Body> {
    error_response(&ApiError::Unavailable(message.into()))
}

/// Serves a request under a remote group version.
pub(crate) async fn handle<B>(
    app: Arc<App>,
    remote: Arc<Remote>,
    mut request: Request<B>,
    user: &UserInfo,
    info: &RequestInfo,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // What upstream's proxy refuses itself is counted as the aggregator's termination.
    let apply = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/apply-patch"));
    let request_path = request.uri().path().to_owned();
    let refused = |response: Response<Body>| {
        let code = response.status().as_u16();
        crate::request_metrics::record_termination(info, &request_path, apply, "aggregator", code);
        response
    };
    if !remote.available {
        return refused(unavailable("service unavailable"));
    }
    let stream = match connect(&app, &remote).await {
        Ok(stream) => stream,
        Err(ConnectError::Transport(message)) => {
            return refused(error_response(&ApiError::Internal(message)));
        }
        Err(ConnectError::Resolve(message)) => {
            tracing::warn!(apiservice = %remote.name, "{message}");
            return refused(unavailable("service unavailable"));
        }
        Err(ConnectError::Dial(message)) => {
            return unavailable(format!("error trying to reach service: {message}"));
        }
    };
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let authority = format!("{}:{}", remote.server_name(), remote.port);
    if rkube_forward::is_upgrade(request.headers()) {
        let headers = backend_headers(request.headers(), user, true);
        let upgrade = request
            .extensions_mut()
            .remove::<hyper::upgrade::OnUpgrade>();
        let method = request.method().clone();
        return match rkube_forward::forward(stream, &method, &path, &authority, &headers, upgrade)
            .await
        {
            Ok(response) => passed_back(response),
            Err(e) => unavailable(format!("error trying to reach service: {}", e.0)),
        };
    }
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return error_response(&ApiError::BadRequest(format!(
                "reading the request body: {e}"
            )));
        }
    };
    let mut builder = Request::builder().method(parts.method).uri(path);
    if let Some(headers) = builder.headers_mut() {
        *headers = backend_headers(&parts.headers, user, false);
        if let Ok(host) = http::HeaderValue::from_str(&authority) {
            headers.insert(header::HOST, host);
        }
    }
    let request = match builder.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => return error_response(&ApiError::BadRequest(e.to_string())),
    };
    match send(stream, request).await {
        Ok(response) => passed_back(response),
        Err(e) => unavailable(format!("error trying to reach service: {e}")),
    }
}

/// GETs `path` from the backend as `user` (the availability check), within `timeout`:
/// the status and body, or why there is none.
pub(crate) async fn get(
    app: &App,
    remote: &Remote,
    path: &str,
    user: &UserInfo,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    get_limited(app, remote, path, user, timeout, MAX_BODY).await
}

/// [`get`] with a body of at most `limit` bytes.
pub(crate) async fn get_limited(
    app: &App,
    remote: &Remote,
    path: &str,
    user: &UserInfo,
    timeout: Duration,
    limit: usize,
) -> Result<(u16, Bytes), String> {
    let exchange = async {
        let stream = connect(app, remote).await.map_err(|e| match e {
            ConnectError::Resolve(m) | ConnectError::Transport(m) | ConnectError::Dial(m) => m,
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        let mut builder = Request::get(path);
        if let Some(h) = builder.headers_mut() {
            *h = backend_headers(&headers, user, false);
            if let Ok(host) =
                http::HeaderValue::from_str(&format!("{}:{}", remote.server_name(), remote.port))
            {
                h.insert(header::HOST, host);
            }
        }
        let request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = send(stream, request).await?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers)".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_sees_the_callers_identity_and_not_the_clients_claims() {
        let mut incoming = HeaderMap::new();
        incoming.insert("x-remote-user", "mallory".parse().unwrap());
        incoming.insert("x-remote-group", "system:masters".parse().unwrap());
        incoming.insert(header::AUTHORIZATION, "Bearer secret".parse().unwrap());
        incoming.insert(header::CONNECTION, "keep-alive".parse().unwrap());
        incoming.insert(header::ACCEPT, "application/json".parse().unwrap());
        let user = UserInfo::new("jane", "", vec!["devs".to_owned()]);
        let headers = backend_headers(&incoming, &user, false);
        assert_eq!(headers["x-remote-user"], "jane");
        let groups: Vec<_> = headers.get_all("x-remote-group").iter().collect();
        assert_eq!(groups, ["devs", "system:authenticated"]);
        assert!(headers.get(header::AUTHORIZATION).is_none());
        assert!(headers.get(header::CONNECTION).is_none());
        assert_eq!(headers[header::ACCEPT], "application/json");
    }
}
