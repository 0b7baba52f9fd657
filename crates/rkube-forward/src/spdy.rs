//! SPDY/3.1 framing (<https://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft3-1/>),
//! as much as a client of a Kubernetes streaming server needs: every frame type is read and
//! written, and the name/value header blocks of the frames sent are compressed.
//!
//! Header blocks are one zlib stream per connection and direction. The blocks written here
//! are made of stored (uncompressed) deflate blocks followed by a sync flush: a stored block
//! never refers back to the window, so the stream does not use the SPDY/3 dictionary and its
//! zlib header says so (no FDICT), which every inflater (Go's `compress/zlib` in the runtime's
//! streaming server among them) accepts. The header blocks received are kept compressed: a
//! remote-command client needs nothing from the server's replies but their stream ids.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;

/// Flag on DATA, SYN_STREAM, SYN_REPLY and HEADERS: the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;

/// How much is read from the connection at a time.
const READ_CHUNK: usize = 32 << 10;

/// The most data put in one DATA frame here (the length field allows 16 MiB).
pub const MAX_DATA: usize = 32 << 10;

/// Why a SPDY connection failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection failed.
    #[error("spdy i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer broke the framing rules.
    #[error("spdy protocol: {0}")]
    Protocol(&'static str),
}

/// `Result` with this module's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One SPDY/3.1 frame. Header blocks are zlib-compressed, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// The new stream (odd when the client opens it).
        stream_id: u32,
        /// The stream it is associated with, or 0.
        associated_to: u32,
        /// 0 (highest) to 7.
        priority: u8,
        /// `FLAG_FIN`, or 0x02 for unidirectional.
        flags: u8,
        /// The compressed name/value block.
        header_block: Bytes,
    },
    /// Accepts a stream.
    SynReply {
        /// The stream accepted.
        stream_id: u32,
        /// `FLAG_FIN` or 0.
        flags: u8,
        /// The compressed name/value block.
        header_block: Bytes,
    },
    /// Ends a stream abnormally.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why (1 PROTOCOL_ERROR … 11 FRAME_TOO_LARGE).
        status: u32,
    },
    /// Connection parameters.
    Settings {
        /// 0x01 clears persisted settings.
        flags: u8,
        /// (flags, id, value).
        entries: Vec<(u8, u32, u32)>,
    },
    /// A round trip: the receiver echoes the id of a ping the other side started.
    Ping {
        /// Odd from the client, even from the server.
        id: u32,
    },
    /// The sender accepts no new streams.
    GoAway {
        /// The last stream the sender acted on.
        last_good_stream_id: u32,
        /// 0 OK, 1 PROTOCOL_ERROR, 2 INTERNAL_ERROR.
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// `FLAG_FIN` or 0.
        flags: u8,
        /// The compressed name/value block.
        header_block: Bytes,
    },
    /// More room in a flow-control window.
    WindowUpdate {
        /// The stream, or 0 for the whole connection.
        stream_id: u32,
        /// Bytes added.
        delta: u32,
    },
    /// Bytes on a stream.
    Data {
        /// The stream.
        stream_id: u32,
        /// `FLAG_FIN` or 0.
        flags: u8,
        /// The bytes.
        data: Bytes,
    },
    /// A control frame of a type this version does not define; ignored as the spec says.
    Unknown {
        /// Its type.
        kind: u16,
    },
}

const STREAM_ID_MASK: u32 = 0x7fff_ffff;

fn control_header(out: &mut Vec<u8>, kind: u16, flags: u8, len: usize) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u8(flags);
    out.put_uint(len as u64, 3);
}

impl Frame {
    /// Appends the frame's wire form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                header_block,
            } => {
                control_header(out, 1, *flags, 10 + header_block.len());
                out.put_u32(stream_id & STREAM_ID_MASK);
                out.put_u32(associated_to & STREAM_ID_MASK);
                out.put_u8((priority & 0x07) << 5);
                out.put_u8(0); // slot
                out.extend_from_slice(header_block);
            }
            Self::SynReply {
                stream_id,
                flags,
                header_block,
            } => {
                control_header(out, 2, *flags, 4 + header_block.len());
                out.put_u32(stream_id & STREAM_ID_MASK);
                out.extend_from_slice(header_block);
            }
            Self::RstStream { stream_id, status } => {
                control_header(out, 3, 0, 8);
                out.put_u32(stream_id & STREAM_ID_MASK);
                out.put_u32(*status);
            }
            Self::Settings { flags, entries } => {
                control_header(out, 4, *flags, 4 + 8 * entries.len());
                out.put_u32(entries.len() as u32);
                for (flags, id, value) in entries {
                    out.put_u8(*flags);
                    out.put_uint(u64::from(*id), 3);
                    out.put_u32(*value);
                }
            }
            Self::Ping { id } => {
                control_header(out, 6, 0, 4);
                out.put_u32(*id);
            }
            Self::GoAway {
                last_good_stream_id,
                status,
            } => {
                control_header(out, 7, 0, 8);
                out.put_u32(last_good_stream_id & STREAM_ID_MASK);
                out.put_u32(*status);
            }
            Self::Headers {
                stream_id,
                flags,
                header_block,
            } => {
                control_header(out, 8, *flags, 4 + header_block.len());
                out.put_u32(stream_id & STREAM_ID_MASK);
                out.extend_from_slice(header_block);
            }
            Self::WindowUpdate { stream_id, delta } => {
                control_header(out, 9, 0, 8);
                out.put_u32(stream_id & STREAM_ID_MASK);
                out.put_u32(delta & STREAM_ID_MASK);
            }
            Self::Data {
                stream_id,
                flags,
                data,
            } => {
                out.put_u32(stream_id & STREAM_ID_MASK);
                out.put_u8(*flags);
                out.put_uint(data.len() as u64, 3);
                out.extend_from_slice(data);
            }
            Self::Unknown { kind } => control_header(out, *kind, 0, 0),
        }
    }

    /// Takes one whole frame off the front of `buf`, or `None` when more bytes are needed.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let flags = buf[4];
        let len = (usize::from(buf[5]) << 16) | (usize::from(buf[6]) << 8) | usize::from(buf[7]);
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let word = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        buf.advance(8);
        let mut body = buf.split_to(len).freeze();
        if word & 0x8000_0000 == 0 {
            return Ok(Some(Self::Data {
                stream_id: word & STREAM_ID_MASK,
                flags,
                data: body,
            }));
        }
        let version = ((word >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(Error::Protocol("unsupported version"));
        }
        let kind = (word & 0xffff) as u16;
        let need = |n: usize| {
            if body.len() < n {
                Err(Error::Protocol("control frame too short"))
            } else {
                Ok(())
            }
        };
        let frame = match kind {
            1 => {
                need(10)?;
                let stream_id = body.get_u32() & STREAM_ID_MASK;
                let associated_to = body.get_u32() & STREAM_ID_MASK;
                let priority = body.get_u8() >> 5;
                body.advance(1);
                Self::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    flags,
                    header_block: body,
                }
            }
            2 | 8 => {
                need(4)?;
                let stream_id = body.get_u32() & STREAM_ID_MASK;
                if kind == 2 {
                    Self::SynReply {
                        stream_id,
                        flags,
                        header_block: body,
                    }
                } else {
                    Self::Headers {
                        stream_id,
                        flags,
                        header_block: body,
                    }
                }
            }
            3 => {
                need(8)?;
                Self::RstStream {
                    stream_id: body.get_u32() & STREAM_ID_MASK,
                    status: body.get_u32(),
                }
            }
            4 => {
                need(4)?;
                let count = body.get_u32() as usize;
                if body.len() != count.saturating_mul(8) {
                    return Err(Error::Protocol("settings length does not match its count"));
                }
                let entries = (0..count)
                    .map(|_| (body.get_u8(), body.get_uint(3) as u32, body.get_u32()))
                    .collect();
                Self::Settings { flags, entries }
            }
            6 => {
                need(4)?;
                Self::Ping { id: body.get_u32() }
            }
            7 => {
                need(8)?;
                Self::GoAway {
                    last_good_stream_id: body.get_u32() & STREAM_ID_MASK,
                    status: body.get_u32(),
                }
            }
            9 => {
                need(8)?;
                Self::WindowUpdate {
                    stream_id: body.get_u32() & STREAM_ID_MASK,
                    delta: body.get_u32() & STREAM_ID_MASK,
                }
            }
            kind => Self::Unknown { kind },
        };
        Ok(Some(frame))
    }
}

/// Reads frames from a connection.
pub struct FrameReader<R> {
    io: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads from `io`.
    pub fn new(io: R) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
        }
    }

    /// The next frame, or `None` at a clean end of the connection.
    pub async fn next(&mut self) -> Result<Option<Frame>> {
        loop {
            if let Some(frame) = Frame::decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            self.buf.reserve(READ_CHUNK);
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(Error::Protocol("the connection ended inside a frame"))
                };
            }
        }
    }
}

/// Writes frames to a connection.
pub struct FrameWriter<W> {
    io: W,
    scratch: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Writes to `io`.
    pub fn new(io: W) -> Self {
        Self {
            io,
            scratch: Vec::new(),
        }
    }

    /// Sends one frame and flushes it.
    pub async fn send(&mut self, frame: &Frame) -> std::io::Result<()> {
        self.scratch.clear();
        frame.encode(&mut self.scratch);
        self.io.write_all(&self.scratch).await?;
        self.io.flush().await
    }

    /// Sends `data` on a stream in frames of at most `MAX_DATA` bytes, the last one carrying
    /// `flags`.
    pub async fn send_data(
        &mut self,
        stream_id: u32,
        data: &Bytes,
        flags: u8,
    ) -> std::io::Result<()> {
        let mut rest = data.clone();
        loop {
            let chunk = rest.split_to(rest.len().min(MAX_DATA));
            let last = rest.is_empty();
            self.send(&Frame::Data {
                stream_id,
                flags: if last { flags } else { 0 },
                data: chunk,
            })
            .await?;
            if last {
                return Ok(());
            }
        }
    }

    /// Shuts the connection's write side.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.io.shutdown().await
    }
}

/// Compresses the name/value header blocks one side of a connection sends.
#[derive(Debug, Default)]
pub struct HeaderCompressor {
    started: bool,
}

impl HeaderCompressor {
    /// A compressor for a new connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// The compressed block for `headers`. Names must be lowercase (SPDY/3 §2.6.10); a name
    /// given twice is sent once with its values joined by NUL, as the spec requires.
    pub fn compress(&mut self, headers: &[(&str, &str)]) -> Bytes {
        let mut names: Vec<&str> = Vec::new();
        for (name, _) in headers {
            if !names.contains(name) {
                names.push(name);
            }
        }
        let mut plain = Vec::new();
        plain.put_u32(names.len() as u32);
        for name in names {
            let value = headers
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .collect::<Vec<_>>()
                .join("\0");
            plain.put_u32(name.len() as u32);
            plain.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
            plain.put_u32(value.len() as u32);
            plain.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(plain.len() + 16);
        if !self.started {
            // CMF: deflate with a 32 KiB window; FLG: no dictionary, and 0x78_01 is a multiple
            // of 31 as RFC 1950 asks.
            out.extend_from_slice(&[0x78, 0x01]);
            self.started = true;
        }
        for chunk in plain.chunks(usize::from(u16::MAX)) {
            stored_block(&mut out, chunk);
        }
        // The sync flush: an empty stored block.
        stored_block(&mut out, &[]);
        Bytes::from(out)
    }
}

/// A non-final stored deflate block (RFC 1951 §3.2.4), starting on a byte boundary.
fn stored_block(out: &mut Vec<u8>, data: &[u8]) {
    let len = data.len() as u16;
    out.push(0x00); // BFINAL 0, BTYPE 00
    out.put_u16_le(len);
    out.put_u16_le(!len);
    out.extend_from_slice(data);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Reads header blocks made of stored deflate blocks, as a fake server in tests.
    #[derive(Default)]
    pub(crate) struct StoredHeaderReader {
        started: bool,
    }

    impl StoredHeaderReader {
        pub(crate) fn read(&mut self, block: &[u8]) -> Vec<(String, String)> {
            let mut block = block;
            if !self.started {
                assert_eq!(&block[..2], &[0x78, 0x01], "zlib header without FDICT");
                block = &block[2..];
                self.started = true;
            }
            let mut plain = Vec::new();
            while !block.is_empty() {
                assert_eq!(block[0], 0, "a stored, non-final block");
                let len = usize::from(u16::from_le_bytes([block[1], block[2]]));
                let nlen = u16::from_le_bytes([block[3], block[4]]);
                assert_eq!(nlen, !(len as u16));
                plain.extend_from_slice(&block[5..5 + len]);
                block = &block[5 + len..];
            }
            let mut plain = &plain[..];
            let count = plain.get_u32();
            (0..count)
                .map(|_| {
                    let n = plain.get_u32() as usize;
                    let name = String::from_utf8(plain[..n].to_vec()).unwrap();
                    plain.advance(n);
                    let n = plain.get_u32() as usize;
                    let value = String::from_utf8(plain[..n].to_vec()).unwrap();
                    plain.advance(n);
                    (name, value)
                })
                .collect()
        }
    }

    fn round_trip(frame: Frame) {
        let mut out = Vec::new();
        frame.encode(&mut out);
        let mut buf = BytesMut::from(&out[..]);
        assert_eq!(Frame::decode(&mut buf).unwrap(), Some(frame));
        assert!(buf.is_empty());
    }

    #[test]
    fn every_frame_type_round_trips() {
        let block = Bytes::from_static(b"\x78\x01\x00\x00\x00\xff\xff");
        round_trip(Frame::SynStream {
            stream_id: 5,
            associated_to: 0,
            priority: 3,
            flags: FLAG_FIN,
            header_block: block.clone(),
        });
        round_trip(Frame::SynReply {
            stream_id: 5,
            flags: 0,
            header_block: block.clone(),
        });
        round_trip(Frame::RstStream {
            stream_id: 7,
            status: 5,
        });
        round_trip(Frame::Settings {
            flags: 1,
            entries: vec![(0, 4, 100), (1, 7, 65536)],
        });
        round_trip(Frame::Ping { id: 2 });
        round_trip(Frame::GoAway {
            last_good_stream_id: 9,
            status: 0,
        });
        round_trip(Frame::Headers {
            stream_id: 3,
            flags: FLAG_FIN,
            header_block: block,
        });
        round_trip(Frame::WindowUpdate {
            stream_id: 0,
            delta: 1 << 20,
        });
        round_trip(Frame::Data {
            stream_id: 3,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"hello"),
        });
        round_trip(Frame::Data {
            stream_id: 1,
            flags: 0,
            data: Bytes::new(),
        });
    }

    #[test]
    fn control_frames_have_the_spec_layout() {
        let mut out = Vec::new();
        Frame::Ping { id: 1 }.encode(&mut out);
        assert_eq!(
            out,
            [0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1]
        );
        out.clear();
        Frame::Data {
            stream_id: 3,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"ab"),
        }
        .encode(&mut out);
        assert_eq!(out, [0, 0, 0, 3, 1, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn partial_frames_wait_and_other_versions_are_refused() {
        let mut out = Vec::new();
        Frame::GoAway {
            last_good_stream_id: 1,
            status: 0,
        }
        .encode(&mut out);
        let mut buf = BytesMut::from(&out[..out.len() - 1]);
        assert_eq!(Frame::decode(&mut buf).unwrap(), None);
        out[1] = 2; // SPDY/2
        let mut buf = BytesMut::from(&out[..]);
        assert!(Frame::decode(&mut buf).is_err());
    }

    #[test]
    fn header_blocks_form_one_zlib_stream_with_lowercase_names() {
        let mut compressor = HeaderCompressor::new();
        let mut reader = StoredHeaderReader::default();
        let first = compressor.compress(&[("streamType", "error")]);
        assert_eq!(
            reader.read(&first),
            [("streamtype".to_owned(), "error".to_owned())]
        );
        let second = compressor.compress(&[("port", "80"), ("port", "81"), ("requestid", "0")]);
        assert_ne!(&second[..2], &[0x78, 0x01], "the zlib header comes once");
        assert_eq!(
            reader.read(&second),
            [
                ("port".to_owned(), "80\u{0}81".to_owned()),
                ("requestid".to_owned(), "0".to_owned())
            ]
        );
        assert!(second.ends_with(&[0, 0, 0, 0xff, 0xff]), "sync flushed");
        assert_eq!(u16::from_be_bytes([first[0], first[1]]) % 31, 0, "FCHECK");
    }

    #[tokio::test]
    async fn the_reader_returns_frames_split_across_reads_and_ends_cleanly() {
        let mut wire = Vec::new();
        Frame::Ping { id: 1 }.encode(&mut wire);
        Frame::Data {
            stream_id: 1,
            flags: 0,
            data: Bytes::from(vec![1; 100_000]),
        }
        .encode(&mut wire);
        let (mut tx, rx) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for chunk in wire.chunks(777) {
                tx.write_all(chunk).await.unwrap();
            }
        });
        let mut reader = FrameReader::new(rx);
        assert_eq!(reader.next().await.unwrap(), Some(Frame::Ping { id: 1 }));
        let Some(Frame::Data { data, .. }) = reader.next().await.unwrap() else {
            panic!("a data frame");
        };
        assert_eq!(data.len(), 100_000);
        assert_eq!(reader.next().await.unwrap(), None);
    }
}
