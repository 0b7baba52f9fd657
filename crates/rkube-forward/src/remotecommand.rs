//! exec and attach for WebSocket clients speaking `v5.channel.k8s.io`, served by a runtime
//! streaming server that speaks SPDY `v4.channel.k8s.io` (upstream's StreamTranslator, here
//! in front of the runtime rather than in the API server).
//!
//! Both protocols carry the same streams: stdin, stdout, stderr, the error stream (a
//! `metav1.Status` in JSON, with the `ExitCode` cause for a non-zero exit) and the resize
//! stream (terminal sizes in JSON). On the WebSocket each binary message starts with its
//! channel (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); v5 adds channel 255, whose one
//! byte names a stream the client has finished writing. That is the one thing v4 over
//! WebSocket cannot say and SPDY can (a DATA frame with FLAG_FIN), so `kubectl cp` into a pod
//! and `echo hi | kubectl exec -i … cat` end instead of hanging. Bytes are relayed as they
//! are: the runtime's error stream is already what a v5 client expects.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Mutex, watch};

use crate::spdy::{self, FLAG_FIN, Frame, FrameReader, FrameWriter, HeaderCompressor};
use crate::websocket::{self, MessageReader, MessageWriter, Opcode, close_code};
use crate::{Body, SpdyUpgrade, passed_on, text_response};

/// The WebSocket protocol served.
pub const V5: &str = "v5.channel.k8s.io";

/// The SPDY protocol asked of the runtime.
pub const SPDY_V4: &str = "v4.channel.k8s.io";

/// WebSocket channels.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// How long the runtime has to accept the streams (client-go waits as long for each).
const STREAM_REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a client has to answer the closing handshake before the connection is dropped.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The streams of a session: what the runtime was asked for (stderr is off with a TTY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Streams {
    /// The client writes the command's stdin.
    pub stdin: bool,
    /// The command's stdout is sent.
    pub stdout: bool,
    /// The command's stderr is sent.
    pub stderr: bool,
    /// A terminal: the client sends sizes on the resize channel.
    pub tty: bool,
}

impl Streams {
    /// The SPDY streams to open, in client-go's order: (stream type, WebSocket channel).
    fn to_open(self) -> Vec<(&'static str, u8)> {
        let mut open = vec![("error", ERROR)];
        if self.stdin {
            open.push(("stdin", STDIN));
        }
        if self.stdout {
            open.push(("stdout", STDOUT));
        }
        if self.stderr && !self.tty {
            open.push(("stderr", STDERR));
        }
        if self.tty {
            open.push(("resize", RESIZE));
        }
        open
    }
}

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The runtime finished the session; the client was told and the connection closed.
    Finished,
    /// The client went away first.
    ClientGone,
    /// The runtime's session failed; the client got the reason on the error channel.
    RuntimeFailed(String),
}

/// Whether a WebSocket client offering `offered` is served by translation.
pub fn wants_v5(offered: &[String]) -> bool {
    offered.iter().any(|p| p == V5)
}

/// Serves an exec or attach WebSocket request: asks the runtime's streaming server at
/// `path_and_query` (over `backend`) for a SPDY session, and once it has one accepts the
/// client's WebSocket and relays between the two in a task of its own. A runtime that
/// refuses is answered to the client as it is.
pub async fn serve_websocket<S>(
    backend: S,
    path_and_query: &str,
    host: &str,
    request: &HeaderMap,
    client: OnUpgrade,
    streams: Streams,
) -> Response<Body>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let accept = match websocket::accept_headers(request, V5) {
        Ok(h) => h,
        Err(message) => return text_response(StatusCode::BAD_REQUEST, message),
    };
    let runtime = match crate::upgrade_to_spdy(backend, path_and_query, host, &[SPDY_V4]).await {
        Ok(SpdyUpgrade::Switched(io, protocol)) if protocol == SPDY_V4 => io,
        Ok(SpdyUpgrade::Switched(_, protocol)) => {
            return text_response(
                StatusCode::BAD_GATEWAY,
                format!("the runtime chose streaming protocol {protocol:?}, not {SPDY_V4}"),
            );
        }
        Ok(SpdyUpgrade::Refused(response)) => return passed_on(response),
        Err(e) => return text_response(StatusCode::BAD_GATEWAY, e.0),
    };
    tokio::spawn(async move {
        let Ok(client) = client.await else {
            return;
        };
        relay(TokioIo::new(client), TokioIo::new(runtime), streams).await;
    });
    crate::switching_protocols(accept)
}

/// Relays one session between a WebSocket client (`client`, past its handshake) and a
/// runtime's SPDY session (`runtime`, past its upgrade) until either ends.
pub async fn relay<C, R>(client: C, runtime: R, streams: Streams) -> Outcome
where
    C: AsyncRead + AsyncWrite + Send + Unpin,
    R: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (client_read, client_write) = tokio::io::split(client);
    let (runtime_read, runtime_write) = tokio::io::split(runtime);
    let to_client = Mutex::new(MessageWriter::new(client_write));
    let to_runtime = Mutex::new(FrameWriter::new(runtime_write));
    let mut from_client = MessageReader::new(client_read, &[]);

    // Stream ids are odd from the client, in the order client-go opens them.
    let open = streams.to_open();
    let mut channels: HashMap<u32, u8> = HashMap::new();
    let mut compressor = HeaderCompressor::new();
    for (n, (kind, channel)) in open.iter().enumerate() {
        let stream_id = 2 * n as u32 + 1;
        channels.insert(stream_id, *channel);
        let frame = Frame::SynStream {
            stream_id,
            associated_to: 0,
            priority: 0,
            flags: 0,
            header_block: compressor.compress(&[("streamtype", kind)]),
        };
        if let Err(e) = to_runtime.lock().await.send(&frame).await {
            return fail(&to_client, format!("opening the {kind} stream: {e}")).await;
        }
    }
    let stream_of = |wanted: u8| {
        channels
            .iter()
            .find(|(_, c)| **c == wanted)
            .map(|(id, _)| *id)
    };
    let (stdin, resize) = (stream_of(STDIN), stream_of(RESIZE));
    // The runtime drops data on a stream it has not accepted yet, so the client's bytes wait
    // for every reply.
    let (accepted_tx, accepted_rx) = watch::channel(false);

    let runtime_side = async {
        let mut from_runtime = FrameReader::new(runtime_read);
        let mut waiting: Vec<u32> = channels.keys().copied().collect();
        let deadline = tokio::time::Instant::now() + STREAM_REPLY_TIMEOUT;
        loop {
            let frame = if waiting.is_empty() {
                from_runtime.next().await
            } else {
                match tokio::time::timeout_at(deadline, from_runtime.next()).await {
                    Ok(frame) => frame,
                    Err(_) => return Err("the runtime did not accept the streams".to_owned()),
                }
            };
            match frame {
                Ok(Some(Frame::SynReply { stream_id, .. })) => {
                    waiting.retain(|id| *id != stream_id);
                    if waiting.is_empty() {
                        let _ = accepted_tx.send(true);
                    }
                }
                Ok(Some(Frame::Data {
                    stream_id, data, ..
                })) => {
                    let Some(channel) = channels.get(&stream_id).copied() else {
                        continue;
                    };
                    if data.is_empty() || !matches!(channel, STDOUT | STDERR | ERROR) {
                        continue;
                    }
                    if to_client
                        .lock()
                        .await
                        .send_binary(&[channel], &data)
                        .await
                        .is_err()
                    {
                        return Ok(false);
                    }
                }
                Ok(Some(Frame::RstStream { stream_id, status })) => {
                    if waiting.contains(&stream_id) {
                        return Err(format!(
                            "the runtime refused stream {stream_id} (status {status})"
                        ));
                    }
                }
                Ok(Some(Frame::Ping { id })) => {
                    // Even ids are the server's own pings, which the client echoes.
                    if id % 2 == 0
                        && to_runtime
                            .lock()
                            .await
                            .send(&Frame::Ping { id })
                            .await
                            .is_err()
                    {
                        return Err("answering the runtime's ping".to_owned());
                    }
                }
                // The runtime ends a session by resetting its streams, GOAWAY and closing.
                Ok(Some(Frame::GoAway { .. })) | Ok(None) if !waiting.is_empty() => {
                    return Err("the runtime ended the session before accepting it".to_owned());
                }
                Ok(Some(Frame::GoAway { .. })) | Ok(None) => return Ok(true),
                Ok(Some(_)) => {}
                Err(spdy::Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(true);
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    };

    let client_side = async {
        let mut accepted = accepted_rx.clone();
        let mut stdin_open = stdin.is_some();
        loop {
            let message = match from_client.next().await {
                Ok(Some(m)) => m,
                Ok(None) | Err(_) => return,
            };
            match message {
                websocket::Message::Binary(data) if !data.is_empty() => {
                    let (channel, body) = (data[0], data.slice(1..));
                    let (target, flags, payload) = match (channel, stdin, resize) {
                        (STDIN, Some(id), _) if stdin_open => (id, 0, body),
                        (RESIZE, _, Some(id)) => (id, 0, body),
                        (CLOSE, Some(id), _) if stdin_open && body.first() == Some(&STDIN) => {
                            stdin_open = false;
                            (id, FLAG_FIN, Bytes::new())
                        }
                        _ => continue,
                    };
                    if payload.is_empty() && flags == 0 {
                        continue;
                    }
                    if accepted.wait_for(|a| *a).await.is_err() {
                        return;
                    }
                    if to_runtime
                        .lock()
                        .await
                        .send_data(target, &payload, flags)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                websocket::Message::Binary(_) | websocket::Message::Pong(_) => {}
                websocket::Message::Ping(payload) => {
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
                websocket::Message::Text(_) => {
                    let _ = to_client
                        .lock()
                        .await
                        .close(close_code::PROTOCOL_ERROR)
                        .await;
                    return;
                }
                websocket::Message::Close(_) => {
                    let _ = to_client.lock().await.close(close_code::NORMAL).await;
                    return;
                }
            }
        }
    };

    let ended = tokio::select! {
        ended = runtime_side => Some(ended),
        () = client_side => None,
    };
    let outcome = match ended {
        None => return Outcome::ClientGone,
        Some(Ok(false)) => return Outcome::ClientGone,
        Some(Ok(true)) => {
            let _ = to_client.lock().await.close(close_code::NORMAL).await;
            Outcome::Finished
        }
        Some(Err(message)) => fail(&to_client, message).await,
    };
    let _ = to_runtime.lock().await.shutdown().await;
    // Let the client read the close before the connection goes: closing a socket with unread
    // input resets it, which can discard what the client has not read yet.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Ok(Some(message)) = from_client.next().await {
            if matches!(message, websocket::Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    outcome
}

/// Tells the client the session failed (an InternalError status on the error channel, as
/// upstream's translator does) and closes.
async fn fail<W: AsyncWrite + Unpin>(
    to_client: &Mutex<MessageWriter<W>>,
    message: String,
) -> Outcome {
    let status = internal_error(&message);
    let mut writer = to_client.lock().await;
    let _ = writer.send_binary(&[ERROR], status.as_bytes()).await;
    let _ = writer.close(close_code::NORMAL).await;
    Outcome::RuntimeFailed(message)
}

/// A `metav1.Status` for an internal error, as `apierrors.NewInternalError` makes it.
fn internal_error(message: &str) -> String {
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
    .to_string()
}

#[cfg(test)]
mod tests;
