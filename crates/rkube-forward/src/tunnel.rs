//! port-forward for WebSocket clients that tunnel SPDY (`SPDY/3.1+portforward.k8s.io`,
//! kubectl 1.31+): the client's SPDY session travels in the payloads of binary WebSocket
//! messages, so it is relayed byte for byte to the runtime's streaming server once that has
//! switched to SPDY with the protocol the client named after the prefix (upstream's
//! TunnelingHandler).

use http::{HeaderMap, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

use crate::websocket::{self, MessageReader, MessageWriter, Opcode, close_code};
use crate::{Body, SpdyUpgrade, passed_on, text_response};

/// What tunnelling subprotocols start with.
pub const PREFIX: &str = "SPDY/3.1+";

/// How much of the runtime's output goes in one message.
const CHUNK: usize = 32 << 10;

/// The SPDY protocols a WebSocket client offers to tunnel: its `SPDY/3.1+*.k8s.io`
/// subprotocols without the prefix.
pub fn tunneled_protocols(offered: &[String]) -> Vec<String> {
    offered
        .iter()
        .filter_map(|p| p.strip_prefix(PREFIX))
        .filter(|p| p.ends_with(".k8s.io"))
        .map(str::to_owned)
        .collect()
}

/// Serves a port-forward WebSocket request offering `protocols` (from
/// `tunneled_protocols`): asks the runtime's streaming server for SPDY with them, then accepts
/// the WebSocket with the one it chose and relays in a task of its own. A runtime that
/// refuses is answered to the client as it is.
pub async fn serve_websocket<S>(
    backend: S,
    path_and_query: &str,
    host: &str,
    request: &HeaderMap,
    client: OnUpgrade,
    protocols: &[String],
) -> Response<Body>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // Checked before the runtime is asked, so a bad handshake opens no session there.
    if let Err(message) = websocket::accept_headers(request, PREFIX) {
        return text_response(StatusCode::BAD_REQUEST, message);
    }
    let offered: Vec<&str> = protocols.iter().map(String::as_str).collect();
    let (runtime, protocol) =
        match crate::upgrade_to_spdy(backend, path_and_query, host, &offered).await {
            Ok(SpdyUpgrade::Switched(io, protocol)) if offered.contains(&protocol.as_str()) => {
                (io, protocol)
            }
            Ok(SpdyUpgrade::Switched(_, protocol)) => {
                return text_response(
                    StatusCode::BAD_GATEWAY,
                    format!("the runtime chose streaming protocol {protocol:?}, not one offered"),
                );
            }
            Ok(SpdyUpgrade::Refused(response)) => return passed_on(response),
            Err(e) => return text_response(StatusCode::BAD_GATEWAY, e.0),
        };
    let accept = match websocket::accept_headers(request, &format!("{PREFIX}{protocol}")) {
        Ok(h) => h,
        Err(message) => return text_response(StatusCode::BAD_REQUEST, message),
    };
    tokio::spawn(async move {
        let Ok(client) = client.await else {
            return;
        };
        relay(TokioIo::new(client), TokioIo::new(runtime)).await;
    });
    crate::switching_protocols(accept)
}

/// Relays between a WebSocket client (past its handshake) and a runtime connection (past
/// its upgrade) until either ends.
pub async fn relay<C, R>(client: C, runtime: R)
where
    C: AsyncRead + AsyncWrite + Send + Unpin,
    R: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (client_read, client_write) = tokio::io::split(client);
    let (mut runtime_read, mut runtime_write) = tokio::io::split(runtime);
    let to_client = Mutex::new(MessageWriter::new(client_write));
    let mut from_client = MessageReader::new(client_read, &[]);

    let client_side = async {
        loop {
            match from_client.next().await {
                Ok(Some(websocket::Message::Binary(data))) => {
                    if runtime_write.write_all(&data).await.is_err()
                        || runtime_write.flush().await.is_err()
                    {
                        return;
                    }
                }
                Ok(Some(websocket::Message::Ping(payload))) => {
                    if to_client
                        .lock()
                        .await
                        .send(Opcode::Pong, &payload)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(Some(websocket::Message::Pong(_))) => {}
                Ok(Some(websocket::Message::Text(_))) => {
                    // client-go's tunnel refuses anything but binary messages; so does this.
                    let _ = to_client
                        .lock()
                        .await
                        .close(close_code::PROTOCOL_ERROR)
                        .await;
                    return;
                }
                Ok(Some(websocket::Message::Close(_))) => {
                    let _ = to_client.lock().await.close(close_code::NORMAL).await;
                    return;
                }
                Ok(None) | Err(_) => return,
            }
        }
    };
    let runtime_side = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match runtime_read.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => {
                    if to_client
                        .lock()
                        .await
                        .send(Opcode::Binary, &buf[..n])
                        .await
                        .is_err()
                    {
                        return false;
                    }
                }
            }
        }
    };
    let runtime_ended = tokio::select! {
        ended = runtime_side => ended,
        () = client_side => false,
    };
    if runtime_ended {
        let _ = to_client.lock().await.close(close_code::NORMAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::{Message, encode_frame};

    #[test]
    fn only_kubernetes_protocols_behind_the_prefix_are_tunnelled() {
        let offered = vec![
            "SPDY/3.1+portforward.k8s.io".to_owned(),
            "portforward.k8s.io".to_owned(),
            "SPDY/3.1+other.example.com".to_owned(),
        ];
        assert_eq!(tunneled_protocols(&offered), ["portforward.k8s.io"]);
    }

    #[tokio::test]
    async fn bytes_cross_in_both_directions_and_pings_are_answered() {
        let (client, client_peer) = tokio::io::duplex(1 << 16);
        let (runtime, mut runtime_peer) = tokio::io::duplex(1 << 16);
        let relay = tokio::spawn(relay(client, runtime));
        let (peer_read, mut peer_write) = tokio::io::split(client_peer);
        let mut from_server = websocket::tests::ServerReader::new(peer_read);

        let mut wire = Vec::new();
        encode_frame(
            Opcode::Binary,
            b"\x80\x03\x00\x01",
            Some([1, 2, 3, 4]),
            &mut wire,
        );
        encode_frame(Opcode::Ping, b"hb", Some([5, 6, 7, 8]), &mut wire);
        peer_write.write_all(&wire).await.unwrap();
        let mut got = [0u8; 4];
        runtime_peer.read_exact(&mut got).await.unwrap();
        assert_eq!(
            got, *b"\x80\x03\x00\x01",
            "the client's bytes reach the runtime"
        );
        assert_eq!(
            from_server.next().await,
            Some(Message::Pong(bytes::Bytes::from_static(b"hb")))
        );

        runtime_peer.write_all(b"spdy reply").await.unwrap();
        assert_eq!(
            from_server.next().await,
            Some(Message::Binary(bytes::Bytes::from_static(b"spdy reply")))
        );
        drop(runtime_peer);
        assert_eq!(from_server.next().await, Some(Message::Close(Some(1000))));
        relay.await.unwrap();
    }
}
