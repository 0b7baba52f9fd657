//! Asking the upstream resolvers (the `nameserver`s of a resolv.conf, as CoreDNS's
//! `forward . /etc/resolv.conf`): over UDP, again over TCP when the answer comes back
//! truncated, and over TCP from the start for a client that asked over TCP. A resolver that
//! does not answer in time is passed over for the next one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// How long one resolver has to answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// The UDP payload size announced to resolvers.
const UPSTREAM_UDP_SIZE: u16 = 1232;
/// The port of a `nameserver` line.
const DNS_PORT: u16 = 53;

/// Why a question could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    #[error("no upstream resolvers")]
    NoResolvers,
    #[error("resolver {server} did not answer in time")]
    Timeout { server: SocketAddr },
    #[error("talking to resolver {server}")]
    Io {
        server: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding or decoding a message for resolver {server}")]
    Proto {
        server: SocketAddr,
        #[source]
        source: hickory_proto::ProtoError,
    },
}

/// The `nameserver` addresses of a resolv.conf, in order. Scoped IPv6 addresses
/// (`fe80::1%eth0`) and lines that do not parse are skipped.
pub(crate) fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let address: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(address, DNS_PORT))
        })
        .collect()
}

/// The resolvers to forward to.
#[derive(Debug)]
pub(crate) struct Upstreams {
    servers: Vec<SocketAddr>,
    /// Where the next question starts, so questions spread over the resolvers.
    next: AtomicUsize,
}

impl Upstreams {
    /// Forwards to `servers`, leaving out `listen` itself (and loopback resolvers on its port
    /// when it listens on every address) so that no question comes back to this server.
    pub(crate) fn new(servers: Vec<SocketAddr>, listen: SocketAddr) -> Upstreams {
        let servers = servers
            .into_iter()
            .filter(|server| {
                let ours = *server == listen
                    || (listen.ip().is_unspecified()
                        && server.port() == listen.port()
                        && server.ip().is_loopback());
                !ours
            })
            .collect();
        Upstreams {
            servers,
            next: AtomicUsize::new(0),
        }
    }

    /// The resolvers, in order.
    pub(crate) fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// Asks `query` of the resolvers in turn until one answers. `tcp` forwards over TCP.
    pub(crate) async fn ask(
        &self,
        query: &Query,
        request: &Message,
        tcp: bool,
    ) -> Result<Message, ForwardError> {
        if self.servers.is_empty() {
            return Err(ForwardError::NoResolvers);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = ForwardError::NoResolvers;
        for i in 0..self.servers.len() {
            let server = self.servers[(start + i) % self.servers.len()];
            match exchange(server, query, request, tcp).await {
                Ok(answer) => return Ok(answer),
                Err(error) => {
                    tracing::debug!(%server, %error, "resolver did not answer");
                    last = error;
                }
            }
        }
        Err(last)
    }
}

/// One question to one resolver.
async fn exchange(
    server: SocketAddr,
    query: &Query,
    request: &Message,
    tcp: bool,
) -> Result<Message, ForwardError> {
    // A fresh ID and source port for every question: answers cannot be guessed.
    let mut message = Message::query();
    message.metadata.recursion_desired = request.metadata.recursion_desired;
    message.metadata.checking_disabled = request.metadata.checking_disabled;
    message.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(UPSTREAM_UDP_SIZE);
    if let Some(asked) = &request.edns {
        edns.set_dnssec_ok(asked.flags().dnssec_ok);
    }
    message.set_edns(edns);
    let bytes = message
        .to_vec()
        .map_err(|source| ForwardError::Proto { server, source })?;
    let attempt = async {
        if !tcp {
            let answer = over_udp(server, &bytes, &message).await?;
            if !answer.metadata.truncation {
                return Ok(answer);
            }
        }
        over_tcp(server, &bytes, &message).await
    };
    timeout(ATTEMPT_TIMEOUT, attempt)
        .await
        .map_err(|_| ForwardError::Timeout { server })?
}

/// Whether `answer` is the answer to `asked` (same ID and question).
fn answers(answer: &Message, asked: &Message) -> bool {
    answer.metadata.message_type == MessageType::Response
        && answer.metadata.id == asked.metadata.id
        && answer.queries == asked.queries
}

async fn over_udp(
    server: SocketAddr,
    bytes: &[u8],
    asked: &Message,
) -> Result<Message, ForwardError> {
    let io = |source| ForwardError::Io { server, source };
    let local: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind((local, 0)).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    socket.send(bytes).await.map_err(io)?;
    let mut buffer = vec![0; 65535];
    loop {
        let len = socket.recv(&mut buffer).await.map_err(io)?;
        // Anything that is not the answer (a late answer, a forgery) is ignored.
        if let Ok(answer) = Message::from_vec(&buffer[..len])
            && answers(&answer, asked)
        {
            return Ok(answer);
        }
    }
}

async fn over_tcp(
    server: SocketAddr,
    bytes: &[u8],
    asked: &Message,
) -> Result<Message, ForwardError> {
    let io = |source| ForwardError::Io { server, source };
    let mut stream = TcpStream::connect(server).await.map_err(io)?;
    let len = u16::try_from(bytes.len()).map_err(|_| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "question too long",
        ))
    })?;
    let mut frame = Vec::with_capacity(bytes.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(bytes);
    stream.write_all(&frame).await.map_err(io)?;
    loop {
        let len = stream.read_u16().await.map_err(io)?;
        let mut buffer = vec![0; usize::from(len)];
        stream.read_exact(&mut buffer).await.map_err(io)?;
        let answer = Message::from_vec(&buffer).map_err(|e| ForwardError::Proto {
            server,
            source: e.into(),
        })?;
        if answers(&answer, asked) {
            return Ok(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_gives_its_nameservers_in_order() {
        let text = "# generated\nsearch example.com\nnameserver 192.0.2.53\n\
                    nameserver   2001:db8::53 # second\noptions ndots:5\nnameserver fe80::1%eth0\n";
        let servers = parse_resolv_conf(text);
        assert_eq!(
            servers,
            [
                "192.0.2.53:53".parse().unwrap(),
                "[2001:db8::53]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn the_server_itself_is_never_an_upstream() {
        let servers = vec![
            "127.0.0.1:53".parse().unwrap(),
            "10.43.0.10:53".parse().unwrap(),
            "192.0.2.53:53".parse().unwrap(),
        ];
        let upstreams = Upstreams::new(servers.clone(), "0.0.0.0:53".parse().unwrap());
        assert_eq!(upstreams.servers(), &servers[1..]);
        let upstreams = Upstreams::new(servers.clone(), "10.43.0.10:53".parse().unwrap());
        assert_eq!(upstreams.servers(), &[servers[0], servers[2]]);
    }
}
