//! Forwarding one HTTP request to a backend over a connection made for it alone, including
//! protocol upgrades (SPDY and WebSocket streams of exec, attach and port-forward): on a 101
//! answer the client's connection and the backend's are spliced together. A connection is
//! never reused, so a failed upgrade cannot leave a backend connection open for another
//! caller (the CVE-2018-1002105 class).

use http::{HeaderMap, Method, Request, Response, header};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProxyError(pub String);

/// Headers that describe the client's connection to us, not the request.
const HOP_BY_HOP: [&str; 6] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
];

/// Whether a request asks to switch protocols.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade"))
}

/// Sends `method path_and_query` with `headers` over `backend` and returns the answer. With
/// `on_upgrade` (the client's pending upgrade) a 101 answer splices the two connections in a
/// task of its own; the returned response then has an empty body.
pub async fn forward<S>(
    backend: S,
    method: &Method,
    path_and_query: &str,
    host: &str,
    headers: &HeaderMap,
    on_upgrade: Option<OnUpgrade>,
) -> Result<Response<Incoming>, ProxyError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(backend))
        .await
        .map_err(|e| ProxyError(format!("connecting to the backend: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut request = Request::builder()
        .method(method.clone())
        .uri(path_and_query);
    for (name, value) in headers {
        let lower = name.as_str();
        if HOP_BY_HOP.contains(&lower) || name == header::HOST || name == header::AUTHORIZATION {
            continue;
        }
        if on_upgrade.is_none() && (name == header::CONNECTION || name == header::UPGRADE) {
            continue;
        }
        request = request.header(name, value);
    }
    request = request.header(header::HOST, host);
    let request = request
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ProxyError(format!("building the request: {e}")))?;
    let mut response = sender
        .send_request(request)
        .await
        .map_err(|e| ProxyError(format!("error dialing backend: {e}")))?;
    if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        let Some(client) = on_upgrade else {
            return Err(ProxyError(
                "the backend switched protocols unasked".to_owned(),
            ));
        };
        let backend = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let (Ok(client), Ok(backend)) = (client.await, backend.await) else {
                return;
            };
            let (mut a, mut b) = (TokioIo::new(client), TokioIo::new(backend));
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        });
    }
    Ok(response)
}
