use bytes::Bytes;
use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

use super::*;
use crate::spdy::tests::StoredHeaderReader;
use crate::websocket::tests::ServerReader;
use crate::websocket::{Message, encode_frame};

const EXIT_3: &str = r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;

/// A fake WebSocket client: masked frames out, the server's messages in.
struct Client {
    write: WriteHalf<DuplexStream>,
    read: ServerReader<ReadHalf<DuplexStream>>,
}

impl Client {
    fn new(io: DuplexStream) -> Self {
        let (read, write) = tokio::io::split(io);
        Self {
            write,
            read: ServerReader::new(read),
        }
    }

    async fn send(&mut self, opcode: Opcode, payload: &[u8]) {
        let mut wire = Vec::new();
        encode_frame(opcode, payload, Some([0x11, 0x22, 0x33, 0x44]), &mut wire);
        self.write.write_all(&wire).await.unwrap();
    }

    async fn channel(&mut self, channel: u8, data: &[u8]) {
        let mut payload = vec![channel];
        payload.extend_from_slice(data);
        self.send(Opcode::Binary, &payload).await;
    }

    async fn next(&mut self) -> Option<Message> {
        self.read.next().await
    }
}

/// A fake runtime streaming server on the other end of the SPDY connection.
struct Runtime {
    reader: FrameReader<ReadHalf<DuplexStream>>,
    writer: FrameWriter<WriteHalf<DuplexStream>>,
    headers: StoredHeaderReader,
}

impl Runtime {
    fn new(io: DuplexStream) -> Self {
        let (read, write) = tokio::io::split(io);
        Self {
            reader: FrameReader::new(read),
            writer: FrameWriter::new(write),
            headers: StoredHeaderReader::default(),
        }
    }

    /// Accepts the streams the client opens; returns (id, stream type) in order.
    async fn accept(&mut self, count: usize) -> Vec<(u32, String)> {
        let mut opened = Vec::new();
        for _ in 0..count {
            let Some(Frame::SynStream {
                stream_id,
                header_block,
                ..
            }) = self.reader.next().await.unwrap()
            else {
                panic!("a SYN_STREAM");
            };
            let headers = self.headers.read(&header_block);
            assert_eq!(headers.len(), 1);
            assert_eq!(headers[0].0, "streamtype");
            opened.push((stream_id, headers[0].1.clone()));
        }
        for (stream_id, _) in &opened {
            self.send(Frame::SynReply {
                stream_id: *stream_id,
                flags: 0,
                header_block: Bytes::new(),
            })
            .await;
        }
        opened
    }

    async fn send(&mut self, frame: Frame) {
        self.writer.send(&frame).await.unwrap();
    }

    async fn data(&mut self, stream_id: u32, data: &[u8]) {
        self.send(Frame::Data {
            stream_id,
            flags: 0,
            data: Bytes::copy_from_slice(data),
        })
        .await;
    }

    /// Reads the data of a stream until its FIN.
    async fn read_to_fin(&mut self, stream_id: u32) -> Vec<u8> {
        let mut got = Vec::new();
        loop {
            match self.reader.next().await.unwrap() {
                Some(Frame::Data {
                    stream_id: id,
                    flags,
                    data,
                }) if id == stream_id => {
                    got.extend_from_slice(&data);
                    if flags & FLAG_FIN != 0 {
                        return got;
                    }
                }
                Some(other) => panic!("unexpected {other:?}"),
                None => panic!("the connection ended before FIN"),
            }
        }
    }

    /// Ends the session as upstream's server does: resets, GOAWAY, close.
    async fn finish(mut self, streams: &[(u32, String)]) {
        for (stream_id, _) in streams {
            self.send(Frame::RstStream {
                stream_id: *stream_id,
                status: 5,
            })
            .await;
        }
        self.send(Frame::GoAway {
            last_good_stream_id: 0,
            status: 0,
        })
        .await;
        self.writer.shutdown().await.unwrap();
    }
}

fn pair() -> (Client, DuplexStream, Runtime, DuplexStream) {
    let (client, client_end) = tokio::io::duplex(1 << 16);
    let (runtime, runtime_end) = tokio::io::duplex(1 << 16);
    (
        Client::new(client),
        client_end,
        Runtime::new(runtime),
        runtime_end,
    )
}

fn id_of(streams: &[(u32, String)], kind: &str) -> u32 {
    streams.iter().find(|(_, k)| k == kind).unwrap().0
}

#[tokio::test]
async fn stdin_closed_with_the_v5_signal_reaches_the_runtime_and_the_exit_status_comes_back() {
    let (mut client, client_end, mut runtime, runtime_end) = pair();
    let streams = Streams {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let relay = tokio::spawn(relay(client_end, runtime_end, streams));
    let opened = runtime.accept(4).await;
    let kinds: Vec<&str> = opened.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(kinds, ["error", "stdin", "stdout", "stderr"]);
    assert_eq!(
        opened.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [1, 3, 5, 7]
    );

    client.channel(STDIN, b"hello ").await;
    client.channel(STDIN, b"world").await;
    client.send(Opcode::Binary, &[CLOSE, STDIN]).await;
    let stdin = runtime.read_to_fin(id_of(&opened, "stdin")).await;
    assert_eq!(stdin, b"hello world");

    runtime.data(id_of(&opened, "stdout"), b"HELLO WORLD").await;
    runtime.data(id_of(&opened, "stderr"), b"warning").await;
    runtime
        .data(id_of(&opened, "error"), EXIT_3.as_bytes())
        .await;
    runtime.finish(&opened).await;

    let mut got = Vec::new();
    while let Some(message) = client.next().await {
        let done = matches!(message, Message::Close(_));
        got.push(message);
        if done {
            break;
        }
    }
    let binary = |channel: u8, data: &[u8]| {
        let mut payload = vec![channel];
        payload.extend_from_slice(data);
        Message::Binary(Bytes::from(payload))
    };
    assert_eq!(
        got,
        [
            binary(STDOUT, b"HELLO WORLD"),
            binary(STDERR, b"warning"),
            binary(ERROR, EXIT_3.as_bytes()),
            Message::Close(Some(close_code::NORMAL)),
        ]
    );
    client.send(Opcode::Close, &1000u16.to_be_bytes()).await;
    assert_eq!(relay.await.unwrap(), Outcome::Finished);
}

#[tokio::test]
async fn a_tty_session_has_no_stderr_and_carries_resizes_and_pings() {
    let (mut client, client_end, mut runtime, runtime_end) = pair();
    let streams = Streams {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: true,
    };
    let relay = tokio::spawn(relay(client_end, runtime_end, streams));
    let opened = runtime.accept(4).await;
    let kinds: Vec<&str> = opened.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(kinds, ["error", "stdin", "stdout", "resize"]);

    let size = br#"{"Width":80,"Height":24}"#;
    client.channel(RESIZE, size).await;
    let Some(Frame::Data {
        stream_id, data, ..
    }) = runtime.reader.next().await.unwrap()
    else {
        panic!("a data frame");
    };
    assert_eq!(
        (stream_id, &data[..]),
        (id_of(&opened, "resize"), &size[..])
    );

    client.send(Opcode::Ping, b"beat").await;
    assert_eq!(
        client.next().await,
        Some(Message::Pong(Bytes::from_static(b"beat")))
    );
    runtime.send(Frame::Ping { id: 2 }).await;
    assert_eq!(
        runtime.reader.next().await.unwrap(),
        Some(Frame::Ping { id: 2 }),
        "the runtime's ping is echoed"
    );

    // The client leaves: the runtime's connection is closed.
    client.send(Opcode::Close, &1000u16.to_be_bytes()).await;
    assert_eq!(client.next().await, Some(Message::Close(Some(1000))));
    assert_eq!(relay.await.unwrap(), Outcome::ClientGone);
    assert_eq!(runtime.reader.next().await.unwrap(), None);
}

#[tokio::test]
async fn a_runtime_that_goes_away_before_accepting_is_an_internal_error() {
    let (mut client, client_end, mut runtime, runtime_end) = pair();
    let relay = tokio::spawn(relay(
        client_end,
        runtime_end,
        Streams {
            stdout: true,
            ..Streams::default()
        },
    ));
    let _ = runtime.reader.next().await.unwrap();
    runtime.writer.shutdown().await.unwrap();
    let Some(Message::Binary(status)) = client.next().await else {
        panic!("a status");
    };
    assert_eq!(status[0], ERROR);
    let status: serde_json::Value = serde_json::from_slice(&status[1..]).unwrap();
    assert_eq!(status["reason"], "InternalError");
    assert_eq!(status["code"], 500);
    assert_eq!(client.next().await, Some(Message::Close(Some(1000))));
    drop(client);
    assert!(matches!(
        relay.await.unwrap(),
        Outcome::RuntimeFailed(m) if m.contains("before accepting")
    ));
}
