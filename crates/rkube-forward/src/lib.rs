//! Forwarding one HTTP request to a backend over a connection made for it alone, including
//! protocol upgrades (SPDY and WebSocket streams of exec, attach and port-forward): on a 101
//! answer the client's connection and the backend's are spliced together. A connection is
//! never reused, so a failed upgrade cannot leave a backend connection open for another
//! caller (the CVE-2018-1002105 class).
//!
//! Clients that speak WebSocket to a backend that speaks SPDY (kubectl 1.30+ against a
//! container runtime's streaming server) are served by translation: `remotecommand` for
//! exec and attach (`v5.channel.k8s.io`), `tunnel` for port-forward
//! (`SPDY/3.1+portforward.k8s.io`), on the framings of `websocket` and `spdy`.

pub mod remotecommand;
pub mod spdy;
pub mod tunnel;
pub mod websocket;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// The body of the answers made here.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// `X-Stream-Protocol-Version`: the streaming protocols a SPDY client offers and the one the
/// server chose.
pub const STREAM_PROTOCOL_VERSION: &str = "x-stream-protocol-version";

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

/// What a backend answered a request to switch to SPDY/3.1.
pub enum SpdyUpgrade {
    /// It switched, choosing this streaming protocol (empty if it named none).
    Switched(hyper::upgrade::Upgraded, String),
    /// It answered otherwise; the answer is for the client.
    Refused(Response<Incoming>),
}

/// Asks the backend to switch `path_and_query` to SPDY/3.1 with one of `protocols`, as
/// client-go's SPDY round tripper does.
pub async fn upgrade_to_spdy<S>(
    backend: S,
    path_and_query: &str,
    host: &str,
    protocols: &[&str],
) -> Result<SpdyUpgrade, ProxyError>
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
        .method(Method::POST)
        .uri(path_and_query)
        .header(header::HOST, host)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1");
    for protocol in protocols {
        request = request.header(STREAM_PROTOCOL_VERSION, *protocol);
    }
    let request = request
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| ProxyError(format!("building the request: {e}")))?;
    let mut response = sender
        .send_request(request)
        .await
        .map_err(|e| ProxyError(format!("error dialing backend: {e}")))?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(SpdyUpgrade::Refused(response));
    }
    let protocol = response
        .headers()
        .get(STREAM_PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_owned();
    let io = hyper::upgrade::on(&mut response)
        .await
        .map_err(|e| ProxyError(format!("switching to SPDY: {e}")))?;
    Ok(SpdyUpgrade::Switched(io, protocol))
}

/// A plain-text answer.
pub fn text_response(code: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(
        http_body_util::Full::new(Bytes::from(text.into()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A backend's answer, passed on.
pub fn passed_on(response: Response<Incoming>) -> Response<Body> {
    response.map(|b| b.map_err(std::io::Error::other).boxed_unsync())
}

/// The 101 answer accepting a WebSocket upgrade with `headers` (from
/// `websocket::accept_headers`).
fn switching_protocols(headers: HeaderMap) -> Response<Body> {
    let mut response = Response::new(
        http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A backend that reads one request head, answers `answer` and returns the head.
    async fn backend(
        answer: &'static str,
    ) -> (tokio::io::DuplexStream, tokio::task::JoinHandle<String>) {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let head = tokio::spawn(async move {
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                if theirs.read(&mut byte).await.unwrap() == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            theirs.write_all(answer.as_bytes()).await.unwrap();
            // Bytes after a 101 belong to the new protocol.
            theirs.write_all(b"spdy").await.unwrap();
            String::from_utf8(head).unwrap().to_ascii_lowercase()
        });
        (ours, head)
    }

    #[tokio::test]
    async fn a_spdy_upgrade_offers_the_protocols_and_returns_the_switched_connection() {
        let (io, head) = backend(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
        )
        .await;
        let answer = upgrade_to_spdy(io, "/exec/tok", "127.0.0.1:1", &["v4.channel.k8s.io"])
            .await
            .unwrap();
        let SpdyUpgrade::Switched(upgraded, protocol) = answer else {
            panic!("switched");
        };
        assert_eq!(protocol, "v4.channel.k8s.io");
        let mut rest = [0u8; 4];
        TokioIo::new(upgraded).read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"spdy");
        let head = head.await.unwrap();
        assert!(head.starts_with("post /exec/tok http/1.1\r\n"), "{head}");
        assert!(head.contains("upgrade: spdy/3.1\r\n"), "{head}");
        assert!(
            head.contains("x-stream-protocol-version: v4.channel.k8s.io\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn a_refused_spdy_upgrade_is_returned_for_the_client() {
        let (io, _head) =
            backend("HTTP/1.1 403 Forbidden\r\nContent-Length: 20\r\n\r\nunknown protocol: v9")
                .await;
        let answer = upgrade_to_spdy(io, "/exec/tok", "127.0.0.1:1", &["v9.channel.k8s.io"])
            .await
            .unwrap();
        let SpdyUpgrade::Refused(response) = answer else {
            panic!("refused");
        };
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body = passed_on(response).collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"unknown protocol: v9");
    }
}
