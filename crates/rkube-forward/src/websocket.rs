//! The server side of WebSocket (RFC 6455) as Kubernetes streaming clients use it: the opening
//! handshake, and frames read into whole messages. Messages of the channel protocols
//! (`v5.channel.k8s.io`) and of the port-forward tunnel are binary; text is read but the
//! callers here treat it as a protocol error, as client-go does.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, header};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The GUID RFC 6455 §1.3 appends to the client's key.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The largest message accepted from a client. client-go writes stdin and tunnelled SPDY
/// frames in messages of at most its 32 KiB buffer; the margin is for other clients.
pub const MAX_MESSAGE: usize = 16 << 20;

/// Why a WebSocket connection failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection failed.
    #[error("websocket i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer broke the framing rules.
    #[error("websocket protocol: {0}")]
    Protocol(&'static str),
}

/// `Result` with this module's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The frame kinds of RFC 6455 §5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// The rest of a fragmented message.
    Continuation,
    /// A UTF-8 message.
    Text,
    /// A binary message.
    Binary,
    /// The closing handshake.
    Close,
    /// A heartbeat asking for a pong.
    Ping,
    /// The answer to a ping.
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0 => Self::Continuation,
            1 => Self::Text,
            2 => Self::Binary,
            8 => Self::Close,
            9 => Self::Ping,
            10 => Self::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0,
            Self::Text => 1,
            Self::Binary => 2,
            Self::Close => 8,
            Self::Ping => 9,
            Self::Pong => 10,
        }
    }

    fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// One frame, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Whether this frame ends its message.
    pub fin: bool,
    /// What the frame is.
    pub opcode: Opcode,
    /// Whether the sender masked it (clients must).
    pub masked: bool,
    /// The payload, unmasked.
    pub payload: Bytes,
}

/// Appends one frame. Servers send unmasked frames; clients (and tests playing one) pass a
/// masking key.
pub fn encode_frame(opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    frame_header(opcode, payload.len(), mask, out);
    match mask {
        Some(key) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4])),
        None => out.extend_from_slice(payload),
    }
}

/// Appends the header of a final frame with a payload of `len` bytes.
fn frame_header(opcode: Opcode, len: usize, mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    out.push(0x80 | opcode.bits());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match len {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// Takes one whole frame off the front of `buf`, or `None` when more bytes are needed.
pub fn decode_frame(buf: &mut BytesMut) -> Result<Option<Frame>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (first, second) = (buf[0], buf[1]);
    if first & 0x70 != 0 {
        // No extension is negotiated, so the reserved bits must be clear.
        return Err(Error::Protocol("reserved bits set"));
    }
    let opcode = Opcode::from_bits(first & 0x0f).ok_or(Error::Protocol("unknown opcode"))?;
    let fin = first & 0x80 != 0;
    let masked = second & 0x80 != 0;
    let (len, mut at) = match second & 0x7f {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(n), 10)
        }
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    if opcode.is_control() && (len > 125 || !fin) {
        return Err(Error::Protocol("control frames are short and unfragmented"));
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|n| *n <= MAX_MESSAGE)
        .ok_or(Error::Protocol("frame too large"))?;
    let key = if masked {
        if buf.len() < at + 4 {
            return Ok(None);
        }
        let key = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        Some(key)
    } else {
        None
    };
    if buf.len() < at + len {
        return Ok(None);
    }
    buf.advance(at);
    let mut payload = buf.split_to(len);
    if let Some(key) = key {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Ok(Some(Frame {
        fin,
        opcode,
        masked,
        payload: payload.freeze(),
    }))
}

/// What a peer sent: a whole data message or a control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A binary message.
    Binary(Bytes),
    /// A text message.
    Text(Bytes),
    /// A ping; answer with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// The peer starts closing, with its status code if it gave one.
    Close(Option<u16>),
}

/// Reads messages from a client, reassembling fragments. Control frames may arrive between
/// the fragments of a message and are returned as they come.
pub struct MessageReader<R> {
    io: R,
    buf: BytesMut,
    partial: Option<(Opcode, BytesMut)>,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// Reads from `io`, starting with `already` (bytes read past the handshake, if any).
    pub fn new(io: R, already: &[u8]) -> Self {
        Self {
            io,
            buf: BytesMut::from(already),
            partial: None,
        }
    }

    /// The next message, or `None` when the client closed the connection without a close
    /// frame.
    pub async fn next(&mut self) -> Result<Option<Message>> {
        loop {
            let Some(frame) = decode_frame(&mut self.buf)? else {
                if self.io.read_buf(&mut self.buf).await? == 0 {
                    return Ok(None);
                }
                continue;
            };
            if !frame.masked {
                // RFC 6455 §5.1: a server closes on an unmasked client frame.
                return Err(Error::Protocol("client frames must be masked"));
            }
            let message = match frame.opcode {
                Opcode::Ping => Message::Ping(frame.payload),
                Opcode::Pong => Message::Pong(frame.payload),
                Opcode::Close => Message::Close(
                    (frame.payload.len() >= 2)
                        .then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]])),
                ),
                Opcode::Text | Opcode::Binary => {
                    if self.partial.is_some() {
                        return Err(Error::Protocol("a new message inside a fragmented one"));
                    }
                    if !frame.fin {
                        self.partial = Some((frame.opcode, BytesMut::from(&frame.payload[..])));
                        continue;
                    }
                    data_message(frame.opcode, frame.payload)
                }
                Opcode::Continuation => {
                    let Some((opcode, mut data)) = self.partial.take() else {
                        return Err(Error::Protocol("a continuation without a message"));
                    };
                    if data.len() + frame.payload.len() > MAX_MESSAGE {
                        return Err(Error::Protocol("message too large"));
                    }
                    data.extend_from_slice(&frame.payload);
                    if !frame.fin {
                        self.partial = Some((opcode, data));
                        continue;
                    }
                    data_message(opcode, data.freeze())
                }
            };
            return Ok(Some(message));
        }
    }
}

fn data_message(opcode: Opcode, payload: Bytes) -> Message {
    if opcode == Opcode::Text {
        Message::Text(payload)
    } else {
        Message::Binary(payload)
    }
}

/// Writes unmasked frames to a client.
pub struct MessageWriter<W> {
    io: W,
    scratch: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> MessageWriter<W> {
    /// Writes to `io`.
    pub fn new(io: W) -> Self {
        Self {
            io,
            scratch: Vec::new(),
        }
    }

    /// Sends one frame (a whole message) and flushes it.
    pub async fn send(&mut self, opcode: Opcode, payload: &[u8]) -> std::io::Result<()> {
        self.scratch.clear();
        encode_frame(opcode, payload, None, &mut self.scratch);
        self.io.write_all(&self.scratch).await?;
        self.io.flush().await
    }

    /// Sends a binary message made of `prefix` then `data`.
    pub async fn send_binary(&mut self, prefix: &[u8], data: &[u8]) -> std::io::Result<()> {
        self.scratch.clear();
        frame_header(
            Opcode::Binary,
            prefix.len() + data.len(),
            None,
            &mut self.scratch,
        );
        self.scratch.extend_from_slice(prefix);
        self.scratch.extend_from_slice(data);
        self.io.write_all(&self.scratch).await?;
        self.io.flush().await
    }

    /// Sends a close frame with `code` and shuts the connection's write side.
    pub async fn close(&mut self, code: u16) -> std::io::Result<()> {
        self.send(Opcode::Close, &code.to_be_bytes()).await?;
        self.io.shutdown().await
    }
}

/// The status codes of RFC 6455 §7.4.1 used here.
pub mod close_code {
    /// The purpose of the connection was fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// The server met a condition that kept it from finishing.
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// The subprotocols a WebSocket upgrade request offers, in the client's order, or `None`
/// when the request is not a WebSocket upgrade.
pub fn offered_protocols(headers: &HeaderMap) -> Option<Vec<String>> {
    let upgrade = headers.get(header::UPGRADE)?.to_str().ok()?;
    if !upgrade
        .split(',')
        .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
    {
        return None;
    }
    Some(
        headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
    )
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    use base64::Engine;
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{ACCEPT_GUID}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// The headers of a 101 answer accepting a WebSocket upgrade with `protocol`, or why the
/// request cannot be accepted.
pub fn accept_headers(request: &HeaderMap, protocol: &str) -> Result<HeaderMap, String> {
    if request
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return Err("unsupported websocket version: only 13 is spoken".to_owned());
    }
    let key = request
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or("the websocket request has no Sec-WebSocket-Key")?;
    let mut headers = HeaderMap::new();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept_key(key)).map_err(|e| e.to_string())?,
    );
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(protocol).map_err(|e| e.to_string())?,
    );
    Ok(headers)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Reads what a server sends, as a fake client in tests.
    pub(crate) struct ServerReader<R> {
        io: R,
        buf: BytesMut,
    }

    impl<R: AsyncRead + Unpin> ServerReader<R> {
        pub(crate) fn new(io: R) -> Self {
            Self {
                io,
                buf: BytesMut::new(),
            }
        }

        /// The next frame as a message (servers here never fragment), or `None` at the end.
        pub(crate) async fn next(&mut self) -> Option<Message> {
            loop {
                if let Some(frame) = decode_frame(&mut self.buf).expect("a valid frame") {
                    assert!(
                        !frame.masked && frame.fin,
                        "servers send whole unmasked frames"
                    );
                    let p = frame.payload;
                    return Some(match frame.opcode {
                        Opcode::Binary => Message::Binary(p),
                        Opcode::Text => Message::Text(p),
                        Opcode::Ping => Message::Ping(p),
                        Opcode::Pong => Message::Pong(p),
                        Opcode::Close => {
                            Message::Close((p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]])))
                        }
                        Opcode::Continuation => panic!("no fragments from servers"),
                    });
                }
                if self.io.read_buf(&mut self.buf).await.ok()? == 0 {
                    return None;
                }
            }
        }
    }

    #[test]
    fn the_accept_key_is_the_one_rfc_6455_gives() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frames_of_every_length_class_round_trip_masked_and_not() {
        for len in [0usize, 5, 125, 126, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut out = Vec::new();
                encode_frame(Opcode::Binary, &payload, mask, &mut out);
                let mut buf = BytesMut::from(&out[..]);
                let frame = decode_frame(&mut buf).unwrap().unwrap();
                assert_eq!(frame.payload, payload, "len {len} mask {mask:?}");
                assert_eq!(frame.masked, mask.is_some());
                assert!(frame.fin && buf.is_empty());
            }
        }
    }

    #[test]
    fn a_partial_frame_waits_for_more_bytes() {
        let mut out = Vec::new();
        encode_frame(Opcode::Binary, &[7; 300], Some([9, 9, 9, 9]), &mut out);
        for cut in [1, 2, 3, 5, 8, out.len() - 1] {
            let mut buf = BytesMut::from(&out[..cut]);
            assert_eq!(decode_frame(&mut buf).unwrap(), None, "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
    }

    #[test]
    fn long_or_fragmented_control_frames_are_refused() {
        let mut buf = BytesMut::from(&[0x89u8, 0xfe, 0, 200][..]);
        assert!(decode_frame(&mut buf).is_err());
        let mut buf = BytesMut::from(&[0x09u8, 0x80, 0, 0, 0, 0][..]);
        assert!(decode_frame(&mut buf).is_err());
    }

    #[tokio::test]
    async fn fragments_are_joined_around_a_ping_and_unmasked_frames_are_refused() {
        let mut wire = Vec::new();
        let key = Some([0xa, 0xb, 0xc, 0xd]);
        // A binary message in two fragments with a ping between them, then a close.
        wire.push(0x02);
        wire.push(0x80 | 3);
        wire.extend_from_slice(&[0xa, 0xb, 0xc, 0xd]);
        wire.extend([b'a' ^ 0xa, b'b' ^ 0xb, b'c' ^ 0xc]);
        encode_frame(Opcode::Ping, b"hb", key, &mut wire);
        let mut last = Vec::new();
        encode_frame(Opcode::Continuation, b"de", key, &mut last);
        last[0] = 0x80; // FIN on a continuation frame
        wire.extend_from_slice(&last);
        encode_frame(Opcode::Close, &1000u16.to_be_bytes(), key, &mut wire);
        let mut reader = MessageReader::new(&wire[..], &[]);
        assert_eq!(
            reader.next().await.unwrap(),
            Some(Message::Ping(Bytes::from_static(b"hb")))
        );
        assert_eq!(
            reader.next().await.unwrap(),
            Some(Message::Binary(Bytes::from_static(b"abcde")))
        );
        assert_eq!(
            reader.next().await.unwrap(),
            Some(Message::Close(Some(1000)))
        );
        assert_eq!(reader.next().await.unwrap(), None);

        let mut unmasked = Vec::new();
        encode_frame(Opcode::Binary, b"x", None, &mut unmasked);
        let mut reader = MessageReader::new(&unmasked[..], &[]);
        assert!(reader.next().await.is_err());
    }

    #[test]
    fn offered_protocols_are_read_from_every_header_value() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v5.channel.k8s.io, v4.channel.k8s.io"),
        );
        headers.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("base64.channel.k8s.io"),
        );
        assert_eq!(
            offered_protocols(&headers).unwrap(),
            [
                "v5.channel.k8s.io",
                "v4.channel.k8s.io",
                "base64.channel.k8s.io"
            ]
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert_eq!(offered_protocols(&headers), None);
    }
}
