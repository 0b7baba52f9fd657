//! The server: UDP and TCP listeners on one address, each query read, resolved from the
//! index (or forwarded, through the cache) and answered within the client's size limit.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hickory_proto::op::{Message, Query, ResponseCode};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

use crate::DnsConfig;
use crate::cache::Cache;
use crate::forward::{Upstreams, parse_resolv_conf};
use crate::index::Index;
use crate::lookup::{self, Answer, Question, Resolution, Zone};
use crate::metrics::Metrics;
use crate::wire::{self, Incoming};

/// How long a TCP connection may sit idle between queries.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// UDP queries answered at once; more are dropped (clients ask again).
const MAX_UDP_IN_FLIGHT: usize = 1024;
/// TCP connections served at once; more wait to be accepted.
const MAX_TCP_CONNECTIONS: usize = 256;

/// The cluster DNS server, bound to its address.
///
/// ```no_run
/// # async fn example(client: kube::Client) -> anyhow::Result<()> {
/// let dns = rkube_dns::Dns::bind(rkube_dns::DnsConfig::default()).await?;
/// let metrics = dns.metrics(); // metrics.render() is the text for /metrics
/// dns.run(client, std::future::pending()).await
/// # }
/// ```
pub struct Dns {
    shared: Arc<Shared>,
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
}

/// What every query reads.
struct Shared {
    zone: Zone,
    index: RwLock<Index>,
    upstreams: Upstreams,
    cache: Mutex<Cache>,
    metrics: Metrics,
}

impl Dns {
    /// Reads the resolv.conf (unless `config.upstreams` is set) and binds UDP and TCP on
    /// `config.listen`. Port 0 picks a free port, the same for both.
    pub async fn bind(config: DnsConfig) -> anyhow::Result<Dns> {
        let zone = Zone::new(
            &config.cluster_domain,
            config.ttl,
            config.nameserver_service,
        )
        .map_err(|_| anyhow::anyhow!("invalid cluster domain {:?}", config.cluster_domain))?;
        let servers = if config.upstreams.is_empty() {
            let text = std::fs::read_to_string(&config.resolv_conf)
                .with_context(|| format!("reading {}", config.resolv_conf.display()))?;
            parse_resolv_conf(&text)
        } else {
            config.upstreams.clone()
        };
        let (udp, tcp) = bind_both(config.listen).await?;
        let upstreams = Upstreams::new(servers, udp.local_addr()?);
        if upstreams.servers().is_empty() {
            tracing::warn!(
                path = %config.resolv_conf.display(),
                "no nameservers to forward to; names outside the cluster will fail"
            );
        }
        let shared = Arc::new(Shared {
            zone,
            index: RwLock::new(Index::default()),
            upstreams,
            cache: Mutex::new(Cache::default()),
            metrics: Metrics::default(),
        });
        Ok(Dns {
            shared,
            udp: Arc::new(udp),
            tcp,
        })
    }

    /// The address it listens on (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.tcp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Its counters; `Metrics::render` gives them as Prometheus text.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics.clone()
    }

    /// A handle to change the objects it answers from directly, for [`Dns::serve`].
    pub fn records(&self) -> Records {
        Records {
            shared: self.shared.clone(),
        }
    }

    /// Whether it has the cluster's objects: after [`Dns::run`]'s watches have each listed
    /// theirs (until then a name not found is answered SERVFAIL, not NXDOMAIN), or at once
    /// under [`Dns::serve`].
    pub fn is_ready(&self) -> bool {
        self.shared.read().synced
    }

    /// Watches Services, EndpointSlices and Namespaces of all namespaces with `client` and
    /// answers queries until `stop` completes. Watch failures are retried with backoff;
    /// it returns an error only if a listener fails.
    pub async fn run(
        self,
        client: kube::Client,
        stop: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let watches = crate::watch::watch(client, self.records());
        tokio::select! {
            result = serve_sockets(self.shared.clone(), self.udp, self.tcp) => result,
            () = watches => Ok(()),
            () = stop => Ok(()),
        }
    }

    /// Answers queries from the objects given through [`Dns::records`] (no watches) until
    /// `stop` completes.
    pub async fn serve(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        self.shared.write().synced = true;
        tokio::select! {
            result = serve_sockets(self.shared.clone(), self.udp, self.tcp) => result,
            () = stop => Ok(()),
        }
    }
}

/// Binds UDP on `listen` and TCP on the same address and port.
async fn bind_both(listen: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    // With port 0 the port UDP got may be taken for TCP (by any socket on the host, e.g. an
    // outgoing connection); try others. Sockets whose port failed stay open until the end, so
    // that the kernel does not hand the same port back.
    let attempts = if listen.port() == 0 { 50 } else { 1 };
    let mut last = None;
    let mut refused = Vec::new();
    for _ in 0..attempts {
        let udp = UdpSocket::bind(listen)
            .await
            .with_context(|| format!("binding UDP {listen}"))?;
        let address = udp.local_addr()?;
        match TcpListener::bind(address).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) => {
                last = Some(error);
                refused.push(udp);
            }
        }
    }
    let error = last.map_or_else(|| anyhow::anyhow!("no attempt made"), anyhow::Error::from);
    Err(error.context(format!("binding TCP {listen}")))
}

/// Serves both listeners until one fails.
async fn serve_sockets(
    shared: Arc<Shared>,
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
) -> anyhow::Result<()> {
    tracing::info!(address = %tcp.local_addr()?, "serving cluster DNS");
    // Tasks live in these sets so that they end when serving stops.
    let udp_loop = async {
        let mut tasks = JoinSet::new();
        let mut buffer = vec![0; 65535];
        loop {
            let (len, peer) = match udp.recv_from(&mut buffer).await {
                Ok(received) => received,
                Err(error) => {
                    tracing::debug!(%error, "receiving a UDP query");
                    continue;
                }
            };
            while tasks.try_join_next().is_some() {}
            if tasks.len() >= MAX_UDP_IN_FLIGHT {
                continue;
            }
            let (shared, udp, bytes) = (shared.clone(), udp.clone(), buffer[..len].to_vec());
            tasks.spawn(async move {
                if let Some(answer) = shared.handle(&bytes, false).await
                    && let Err(error) = udp.send_to(&answer, peer).await
                {
                    tracing::debug!(%peer, %error, "sending a UDP answer");
                }
            });
        }
    };
    let tcp_loop = async {
        let mut connections = JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            if connections.len() >= MAX_TCP_CONNECTIONS {
                connections.join_next().await;
            }
            let (stream, peer) = tcp.accept().await.context("accepting a TCP connection")?;
            let shared = shared.clone();
            connections.spawn(async move {
                if let Err(error) = shared.connection(stream).await {
                    tracing::debug!(%peer, %error, "TCP connection ended");
                }
            });
        }
    };
    tokio::select! {
        result = tcp_loop => result,
        () = udp_loop => Ok(()),
    }
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queries on one TCP connection, one after another, until it is closed or idle.
    async fn connection(&self, mut stream: TcpStream) -> std::io::Result<()> {
        loop {
            let Ok(len) = timeout(TCP_IDLE_TIMEOUT, stream.read_u16()).await else {
                return Ok(());
            };
            let mut buffer = vec![0; usize::from(len?)];
            timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut buffer)).await??;
            let Some(answer) = self.handle(&buffer, true).await else {
                continue;
            };
            let len = u16::try_from(answer.len()).unwrap_or(u16::MAX);
            let mut frame = Vec::with_capacity(answer.len() + 2);
            frame.extend_from_slice(&len.to_be_bytes());
            frame.extend_from_slice(&answer);
            stream.write_all(&frame).await?;
        }
    }

    /// The encoded answer to one message, if it gets one.
    async fn handle(&self, bytes: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let (request, response) = match wire::read(bytes) {
            Incoming::Drop => return None,
            Incoming::Reply(reply) => (None, reply),
            Incoming::Query(request) => {
                let response = self.resolve(&request, tcp).await;
                (Some(request), response)
            }
        };
        let qtype = response.queries.first().map(Query::query_type);
        if let Some(qtype) = qtype {
            self.metrics.request(tcp, qtype);
        }
        self.metrics
            .response(qtype, response.metadata.response_code);
        let limit = match (&request, tcp) {
            (_, true) => wire::MAX_TCP_SIZE,
            (Some(request), false) => wire::udp_limit(request),
            (None, false) => 512,
        };
        match wire::encode(&response, limit) {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                tracing::warn!(%error, "encoding an answer");
                None
            }
        }
    }

    /// The response to a standard query.
    async fn resolve(&self, request: &Message, tcp: bool) -> Message {
        let query = &request.queries[0];
        let question = Question {
            name: query.name().clone(),
            qtype: query.query_type(),
        };
        let resolution = lookup::answer(&self.read(), &self.zone, &question);
        match resolution {
            Resolution::Answer(answer) => wire::authoritative(request, answer),
            Resolution::Forward => match self.forward(query.clone(), request, tcp).await {
                Some(upstream) => wire::forwarded(request, &upstream),
                None => wire::error(request, ResponseCode::ServFail),
            },
            Resolution::Chase {
                mut cnames,
                target,
                soa,
            } => {
                let mut chased = query.clone();
                chased.set_name(target);
                let answer = match self.forward(chased, request, tcp).await {
                    Some(upstream) => {
                        cnames.extend(upstream.answers);
                        Answer {
                            rcode: ResponseCode::NoError,
                            answers: cnames,
                            authorities: Vec::new(),
                            additionals: Vec::new(),
                        }
                    }
                    // As CoreDNS: a CNAME that leads nowhere is left out.
                    None => Answer {
                        rcode: ResponseCode::NoError,
                        answers: Vec::new(),
                        authorities: vec![*soa],
                        additionals: Vec::new(),
                    },
                };
                wire::authoritative(request, answer)
            }
        }
    }

    /// An upstream answer to `query`, from the cache or the resolvers.
    async fn forward(&self, query: Query, request: &Message, tcp: bool) -> Option<Message> {
        let key = (query.name().to_lowercase(), query.query_type());
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key, Instant::now());
        self.metrics.cache(cached.is_some());
        if cached.is_some() {
            return cached;
        }
        match self.upstreams.ask(&query, request, tcp).await {
            Ok(answer) => {
                // The first answer already has the TTLs the cache gives (as CoreDNS's cache
                // does), so they do not jump between the first answer and the next.
                let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                cache.put(key.clone(), &answer, now);
                Some(cache.get(&key, now).unwrap_or(answer))
            }
            Err(error) => {
                tracing::warn!(name = %query.name(), error = %error, "forwarding failed");
                self.metrics.forward_failure();
                None
            }
        }
    }
}

/// The objects the server answers from. [`Dns::run`] keeps them current from the API;
/// with [`Dns::serve`] the caller gives them here (tests, or a caller with informers of its
/// own). Cloning gives another handle on the same objects.
#[derive(Clone)]
pub struct Records {
    shared: Arc<Shared>,
}

impl Records {
    /// Adds or replaces a Service.
    pub fn apply_service(&self, service: &Service) {
        self.change(|index| index.upsert_service(service));
    }

    /// Removes the Service `namespace/name`.
    pub fn delete_service(&self, namespace: &str, name: &str) {
        self.change(|index| index.delete_service(namespace, name));
    }

    /// Adds or replaces an EndpointSlice (it belongs to the Service named by its
    /// `kubernetes.io/service-name` label).
    pub fn apply_endpoint_slice(&self, slice: &EndpointSlice) {
        self.change(|index| index.upsert_slice(slice));
    }

    /// Removes the EndpointSlice `namespace/name`.
    pub fn delete_endpoint_slice(&self, namespace: &str, name: &str) {
        self.change(|index| index.delete_slice(namespace, name));
    }

    /// Adds a namespace: names in a namespace that does not exist are NXDOMAIN.
    pub fn apply_namespace(&self, name: &str) {
        self.change(|index| index.upsert_namespace(name));
    }

    /// Removes a namespace.
    pub fn delete_namespace(&self, name: &str) {
        self.change(|index| index.delete_namespace(name));
    }

    /// Whether the server has the cluster's objects (see [`Dns::is_ready`]); this handle
    /// outlives the `Dns` that [`Dns::run`] consumes, for a readiness check.
    pub fn is_ready(&self) -> bool {
        self.shared.read().synced
    }

    /// Changes the index and moves the SOA serial to now.
    pub(crate) fn change(&self, change: impl FnOnce(&mut Index)) {
        let mut index = self.shared.write();
        change(&mut index);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        index.serial = u32::try_from(now.as_secs()).unwrap_or(u32::MAX);
    }
}
