//! The server on a loopback port, asked real UDP and TCP queries, with objects fed straight
//! into its records and a small fake resolver upstream on another loopback port.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_dns::{Dns, DnsConfig, Metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

fn service(namespace: &str, name: &str, cluster_ip: &str, port: Option<(&str, i32)>) -> Service {
    Service {
        metadata: meta(namespace, name),
        spec: Some(ServiceSpec {
            cluster_ip: Some(cluster_ip.into()),
            cluster_ips: Some(vec![cluster_ip.into()]),
            ports: port.map(|(name, port)| {
                vec![ServicePort {
                    name: Some(name.into()),
                    port,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn slice(namespace: &str, name: &str, service: &str, addresses: &[String]) -> EndpointSlice {
    let mut metadata = meta(namespace, name);
    metadata.labels = Some([("kubernetes.io/service-name".to_owned(), service.to_owned())].into());
    EndpointSlice {
        metadata,
        address_type: "IPv4".into(),
        endpoints: addresses
            .iter()
            .enumerate()
            .map(|(i, address)| Endpoint {
                addresses: vec![address.clone()],
                hostname: Some(format!("{service}-{i}")),
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("pg".into()),
            port: Some(5432),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    }
}

/// A resolver that knows `www.example.com` (192.0.2.1), answers `big.example.com` with 100
/// addresses over TCP but only a truncated answer over UDP, and NXDOMAIN for the rest.
async fn fake_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    // The port UDP got may be taken for TCP: try others, keeping the refused ones open so
    // that the kernel does not hand the same port back.
    let mut bound = None;
    let mut refused = Vec::new();
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind upstream UDP");
        let address = udp.local_addr().expect("address");
        match TcpListener::bind(address).await {
            Ok(tcp) => {
                bound = Some((udp, address, tcp));
                break;
            }
            Err(_) => refused.push(udp),
        }
    }
    drop(refused);
    let (udp, address, tcp) = bound.expect("bind upstream UDP and TCP on one port");
    let asked = Arc::new(AtomicUsize::new(0));
    let udp_asked = asked.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0; 65535];
        loop {
            let Ok((len, peer)) = udp.recv_from(&mut buffer).await else {
                continue;
            };
            let request = Message::from_vec(&buffer[..len]).expect("query");
            udp_asked.fetch_add(1, Ordering::SeqCst);
            let answer = upstream_answer(&request, false).to_vec().expect("encode");
            udp.send_to(&answer, peer).await.expect("send");
        }
    });
    let tcp_asked = asked.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = tcp.accept().await else {
                continue;
            };
            let asked = tcp_asked.clone();
            tokio::spawn(async move {
                while let Ok(len) = stream.read_u16().await {
                    let mut buffer = vec![0; usize::from(len)];
                    stream.read_exact(&mut buffer).await.expect("read");
                    let request = Message::from_vec(&buffer).expect("query");
                    asked.fetch_add(1, Ordering::SeqCst);
                    let answer = upstream_answer(&request, true).to_vec().expect("encode");
                    let mut frame = u16::try_from(answer.len())
                        .expect("len")
                        .to_be_bytes()
                        .to_vec();
                    frame.extend_from_slice(&answer);
                    stream.write_all(&frame).await.expect("write");
                }
            });
        }
    });
    (address, asked)
}

fn upstream_answer(request: &Message, tcp: bool) -> Message {
    let mut answer = Message::response(request.metadata.id, OpCode::Query);
    answer.metadata.recursion_available = true;
    answer.queries = request.queries.clone();
    let name = request.queries[0].name().clone();
    let a = |ip: Ipv4Addr| Record::from_rdata(name.clone(), 300, RData::A(A(ip)));
    match name.to_lowercase().to_ascii().as_str() {
        "www.example.com." => answer.answers.push(a(Ipv4Addr::new(192, 0, 2, 1))),
        "big.example.com." if tcp => {
            answer.answers = (0..100).map(|i| a(Ipv4Addr::new(192, 0, 2, i))).collect();
        }
        "big.example.com." => answer.metadata.truncation = true,
        _ => {
            answer.metadata.response_code = ResponseCode::NXDomain;
            let zone = Name::from_ascii("example.com.").expect("name");
            let soa = SOA::new(zone.clone(), zone.clone(), 1, 7200, 1800, 86400, 60);
            answer
                .authorities
                .push(Record::from_rdata(zone, 60, RData::SOA(soa)));
        }
    }
    answer
}

fn question(name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    if let Some(size) = edns {
        let mut opt = Edns::new();
        opt.set_max_payload(size);
        message.set_edns(opt);
    }
    message
}

async fn ask_udp(server: SocketAddr, name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let request = question(name, qtype, edns);
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
    socket
        .send_to(&request.to_vec().expect("encode"), server)
        .await
        .expect("send");
    let mut buffer = vec![0; 65535];
    let len = timeout(WAIT, socket.recv(&mut buffer))
        .await
        .expect("answer in time")
        .expect("recv");
    let answer = Message::from_vec(&buffer[..len]).expect("decode");
    assert_eq!(answer.metadata.id, request.metadata.id);
    assert!(
        len <= edns.map_or(512, |size| usize::from(size.max(512))),
        "{len} bytes over UDP"
    );
    answer
}

async fn ask_tcp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let request = question(name, qtype, None).to_vec().expect("encode");
    let mut stream = TcpStream::connect(server).await.expect("connect");
    let mut frame = u16::try_from(request.len())
        .expect("len")
        .to_be_bytes()
        .to_vec();
    frame.extend_from_slice(&request);
    stream.write_all(&frame).await.expect("write");
    let len = timeout(WAIT, stream.read_u16())
        .await
        .expect("answer in time")
        .expect("read");
    let mut buffer = vec![0; usize::from(len)];
    stream.read_exact(&mut buffer).await.expect("read");
    Message::from_vec(&buffer).expect("decode")
}

fn lines(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

/// A server with the `default` namespace, Service `web` (10.43.0.20, port http), headless
/// `db` with 100 endpoints and ExternalName `search` → www.example.com.
async fn start(upstreams: Vec<SocketAddr>) -> (SocketAddr, Metrics, oneshot::Sender<()>) {
    let config = DnsConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        upstreams,
        ..DnsConfig::default()
    };
    let dns = Dns::bind(config).await.expect("bind");
    let records = dns.records();
    records.apply_namespace("default");
    records.apply_service(&service("default", "web", "10.43.0.20", Some(("http", 80))));
    records.apply_service(&service("default", "db", "None", Some(("pg", 5432))));
    let addresses: Vec<String> = (0..100).map(|i| format!("10.42.0.{i}")).collect();
    records.apply_endpoint_slice(&slice("default", "db-1", "db", &addresses));
    let mut search = service("default", "search", "", None);
    let spec = search.spec.as_mut().expect("spec");
    spec.type_ = Some("ExternalName".into());
    spec.external_name = Some("www.example.com".into());
    (spec.cluster_ip, spec.cluster_ips) = (None, None);
    records.apply_service(&search);
    let (address, metrics) = (dns.local_addr(), dns.metrics());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        dns.serve(async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });
    (address, metrics, stop)
}

#[tokio::test]
async fn cluster_names_are_answered_over_udp_and_tcp() {
    let (upstream, _) = fake_upstream().await;
    let (server, metrics, _stop) = start(vec![upstream]).await;

    let web = ask_udp(
        server,
        "web.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(web.metadata.response_code, ResponseCode::NoError);
    assert!(web.metadata.authoritative);
    assert_eq!(
        lines(&web.answers),
        ["web.default.svc.cluster.local. A 10.43.0.20"]
    );

    let srv = ask_tcp(
        server,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        lines(&srv.answers),
        ["_http._tcp.web.default.svc.cluster.local. SRV 0 100 80 web.default.svc.cluster.local."]
    );
    assert_eq!(
        lines(&srv.additionals),
        ["web.default.svc.cluster.local. A 10.43.0.20"]
    );

    let missing = ask_udp(
        server,
        "nope.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(missing.authorities[0].record_type(), RecordType::SOA);

    let nodata = ask_tcp(server, "web.default.svc.cluster.local.", RecordType::AAAA).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);

    let endpoint = ask_udp(
        server,
        "db-7.db.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(
        lines(&endpoint.answers),
        ["db-7.db.default.svc.cluster.local. A 10.42.0.7"]
    );

    let ptr = ask_udp(server, "20.0.43.10.in-addr.arpa.", RecordType::PTR, None).await;
    assert_eq!(
        lines(&ptr.answers),
        ["20.0.43.10.in-addr.arpa. PTR web.default.svc.cluster.local."]
    );

    let pod = ask_tcp(
        server,
        "10-42-3-4.default.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(
        lines(&pod.answers),
        ["10-42-3-4.default.pod.cluster.local. A 10.42.3.4"]
    );

    let text = metrics.render();
    assert!(
        text.contains("rkube_dns_requests_total{proto=\"udp\",type=\"A\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("rkube_dns_requests_total{proto=\"tcp\",type=\"SRV\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("rkube_dns_responses_total{type=\"A\",rcode=\"NXDOMAIN\"} 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn a_big_answer_is_truncated_over_udp_unless_edns_makes_room() {
    let (upstream, _) = fake_upstream().await;
    let (server, _, _stop) = start(vec![upstream]).await;
    let name = "db.default.svc.cluster.local.";

    let plain = ask_udp(server, name, RecordType::A, None).await;
    assert!(plain.metadata.truncation);
    assert!(plain.answers.len() < 100);

    let roomy = ask_udp(server, name, RecordType::A, Some(4096)).await;
    assert!(!roomy.metadata.truncation);
    assert_eq!(roomy.answers.len(), 100);
    assert!(roomy.edns.is_some());

    let tcp = ask_tcp(server, name, RecordType::A).await;
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 100);
}

#[tokio::test]
async fn other_names_are_forwarded_and_cached() {
    let (upstream, asked) = fake_upstream().await;
    let (server, metrics, _stop) = start(vec![upstream]).await;

    let www = ask_udp(server, "www.example.com.", RecordType::A, None).await;
    assert_eq!(www.metadata.response_code, ResponseCode::NoError);
    assert!(!www.metadata.authoritative);
    assert_eq!(lines(&www.answers), ["www.example.com. A 192.0.2.1"]);
    // The upstream's TTL of 300 is capped at the cache's 30.
    assert_eq!(www.answers[0].ttl, 30);
    assert_eq!(asked.load(Ordering::SeqCst), 1);

    // The second time (in other letters) comes from the cache.
    let again = ask_tcp(server, "WWW.example.com.", RecordType::A).await;
    assert_eq!(lines(&again.answers), ["WWW.example.com. A 192.0.2.1"]);
    assert!(again.answers[0].ttl <= 30);
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert!(metrics.render().contains("rkube_dns_cache_hits_total 1\n"));

    let missing = ask_udp(server, "missing.example.com.", RecordType::A, None).await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);

    // A reverse name the cluster does not know goes upstream too.
    let ptr = ask_udp(server, "1.2.0.192.in-addr.arpa.", RecordType::PTR, None).await;
    assert_eq!(ptr.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(asked.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_truncated_upstream_answer_is_asked_again_over_tcp() {
    let (upstream, asked) = fake_upstream().await;
    let (server, _, _stop) = start(vec![upstream]).await;
    let big = ask_udp(server, "big.example.com.", RecordType::A, Some(4096)).await;
    assert!(!big.metadata.truncation);
    assert_eq!(big.answers.len(), 100);
    // Once over UDP, once over TCP.
    assert_eq!(asked.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_external_name_is_followed_through_the_upstream() {
    let (upstream, _) = fake_upstream().await;
    let (server, _, _stop) = start(vec![upstream]).await;
    let search = ask_udp(
        server,
        "search.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(search.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        lines(&search.answers),
        [
            "search.default.svc.cluster.local. CNAME www.example.com.",
            "www.example.com. A 192.0.2.1",
        ]
    );
}

#[tokio::test]
async fn without_an_answering_upstream_forwarded_names_fail() {
    // A port nothing listens on: the UDP question is refused at once.
    let closed = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("address")
    };
    let (server, metrics, _stop) = start(vec![closed]).await;
    let answer = ask_udp(server, "www.example.com.", RecordType::A, None).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    // Cluster names do not need the upstream.
    let web = ask_udp(
        server,
        "web.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(web.answers.len(), 1);
    assert!(
        metrics
            .render()
            .contains("rkube_dns_forward_failures_total 1\n")
    );
}
