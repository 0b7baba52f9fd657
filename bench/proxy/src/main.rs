//! The service proxy benchmark: see `bench/proxy/run`.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rkube_proxy::dataplane::{Nft, Recorder};
use rkube_proxy::model::{Endpoint, Protocol, ServicePort, TrafficPolicy};
use rkube_proxy::proxier::{Metrics, Proxier};
use rkube_proxy::rules::RulesConfig;

/// The address of the one endpoint that answers (service 0's), on the namespace's loopback.
const SERVER: &str = "10.244.255.1";

struct Netns {
    name: String,
    server: Option<Child>,
}

impl Netns {
    fn new() -> anyhow::Result<Netns> {
        let name = format!("rkpxb-{}", std::process::id());
        run(&["ip", "netns", "add", &name])?;
        let ns = Netns { name, server: None };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        ns.exec(&["ip", "addr", "add", &format!("{SERVER}/32"), "dev", "lo"])?;
        // The output path needs a route to the service range before DNAT.
        ns.exec(&["ip", "route", "add", "10.96.0.0/16", "dev", "lo"])?;
        Ok(ns)
    }

    fn exec(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all)
    }

    fn python(&self, script: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, "python3", "-c", script]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(child) = &mut self.server {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .with_context(|| format!("running {}", args[0]))?;
    anyhow::ensure!(status.success(), "{args:?} failed");
    Ok(())
}

fn cluster_ip(i: usize) -> Ipv4Addr {
    let i = u32::try_from(i).unwrap_or(0);
    Ipv4Addr::new(10, 96, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn service(i: usize, generation: u8) -> ServicePort {
    let endpoints = if i == 0 {
        vec![endpoint(SERVER.parse().unwrap_or(Ipv4Addr::LOCALHOST))]
    } else {
        (0..10u8)
            .map(|k| {
                let i = u32::try_from(i).unwrap_or(0);
                endpoint(Ipv4Addr::new(
                    10,
                    244,
                    (i % 250) as u8,
                    k.wrapping_add(generation.wrapping_mul(10)).wrapping_add(1),
                ))
            })
            .collect()
    };
    ServicePort {
        namespace: "bench".to_owned(),
        name: format!("svc-{i}"),
        port_name: "http".to_owned(),
        protocol: Protocol::Tcp,
        cluster_ip: Some(cluster_ip(i)),
        port: 80,
        node_port: None,
        external_ips: Vec::new(),
        load_balancer_ips: Vec::new(),
        affinity_timeout: None,
        internal_policy: TrafficPolicy::Cluster,
        external_policy: TrafficPolicy::Cluster,
        health_check_node_port: None,
        endpoints,
    }
}

fn endpoint(ip: Ipv4Addr) -> Endpoint {
    Endpoint {
        ip,
        port: 8080,
        ready: true,
        serving: true,
        terminating: false,
        local: false,
    }
}

fn line(case: &str, metric: &str, value: f64, unit: &str) {
    println!("bench=proxy case={case} metric={metric} value={value:.2} unit={unit}");
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn program(ns: &Netns, count: usize) -> anyhow::Result<Proxier> {
    let config = RulesConfig {
        table: "rkube-proxy-bench".to_owned(),
        cluster_cidr: Some("10.244.0.0/16".to_owned()),
        service_cidrs: vec!["10.96.0.0/16".to_owned()],
        nodeport_addresses: Vec::new(),
    };
    let dataplane = Arc::new(Nft {
        netns: Some(ns.name.clone()),
    });
    let mut proxier = Proxier::new(
        config.clone(),
        dataplane,
        Duration::from_secs(3600),
        Arc::new(Metrics::default()),
    );
    let mut ports: Vec<ServicePort> = (0..count).map(|i| service(i, 0)).collect();
    let case = format!("{count}-services");
    let started = Instant::now();
    proxier.sync(&ports, Instant::now())?;
    line(
        &case,
        "full_sync",
        started.elapsed().as_secs_f64() * 1e3,
        "ms",
    );
    // The pure part alone: the same syncs against a dataplane that only records the script.
    let mut planner = Proxier::new(
        config.clone(),
        Arc::new(Recorder::default()),
        Duration::from_secs(3600),
        Arc::new(Metrics::default()),
    );
    planner.sync(&ports, Instant::now())?;
    let mut changes = Vec::new();
    let mut computes = Vec::new();
    let mut scales = Vec::new();
    for generation in 1..=7u8 {
        // A rolling update: the same number of endpoints at new addresses.
        let changed = count / 2;
        ports[changed] = service(changed, generation);
        let started = Instant::now();
        planner.sync(&ports, Instant::now())?;
        computes.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        proxier.sync(&ports, Instant::now())?;
        changes.push(started.elapsed().as_secs_f64() * 1e3);
    }
    for round in 0..7usize {
        // Scaling: one endpoint more or fewer.
        let changed = count / 3;
        let mut sp = service(changed, 0);
        if round % 2 == 0 {
            sp.endpoints.pop();
        }
        ports[changed] = sp;
        let started = Instant::now();
        proxier.sync(&ports, Instant::now())?;
        scales.push(started.elapsed().as_secs_f64() * 1e3);
    }
    line(&case, "incremental_sync_p50", median(changes), "ms");
    line(&case, "incremental_compute_p50", median(computes), "ms");
    line(&case, "incremental_scale_sync_p50", median(scales), "ms");
    Ok(proxier)
}

/// Mean microseconds of connect + request + answer, to the pod address and through service 0.
fn hop_latency(ns: &mut Netns) -> anyhow::Result<(f64, f64)> {
    let server = "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('10.244.255.1',8080))\ns.listen(128)\nprint('ready',flush=True)\nwhile True:\n  c,_=s.accept()\n  c.recv(16)\n  c.sendall(b'ok')\n  c.close()\n";
    let mut child = ns
        .python(server)
        .stdout(Stdio::piped())
        .spawn()
        .context("python3")?;
    {
        use std::io::BufRead;
        let mut line = String::new();
        let out = child.stdout.take().context("server output")?;
        std::io::BufReader::new(out).read_line(&mut line)?;
        anyhow::ensure!(line.trim() == "ready", "the test server did not start");
    }
    ns.server = Some(child);
    let client = format!(
        "import socket,time\ndef go(ip,n):\n  t=time.perf_counter()\n  for _ in range(n):\n    s=socket.create_connection((ip,PORT[ip]))\n    s.sendall(b'x')\n    assert s.recv(16)==b'ok'\n    s.close()\n  return (time.perf_counter()-t)/n*1e6\nPORT={{'{SERVER}':8080,'{}':80}}\ngo('{SERVER}',200);go('{}',200)\nd=[];c=[]\nfor _ in range(5):\n  d.append(go('{SERVER}',400));c.append(go('{}',400))\nd.sort();c.sort()\nprint(d[2],c[2])\n",
        cluster_ip(0),
        cluster_ip(0),
        cluster_ip(0)
    );
    let out = ns.python(&client).output().context("python3")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut numbers = text
        .split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok());
    match (numbers.next(), numbers.next()) {
        (Some(direct), Some(through)) => Ok((direct, through)),
        _ => anyhow::bail!(
            "the latency client failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn dns_query(id: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in ["web", "default", "svc", "cluster", "local"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

async fn dns_rate() -> anyhow::Result<f64> {
    let dns = rkube_dns::Dns::bind(rkube_dns::DnsConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        upstreams: vec![SocketAddr::from(([127, 0, 0, 1], 9))],
        ..rkube_dns::DnsConfig::default()
    })
    .await?;
    let address = dns.local_addr();
    let records = dns.records();
    records.apply_namespace("default");
    let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"clusterIP": "10.96.0.50", "clusterIPs": ["10.96.0.50"], "ports": [{"name": "http", "port": 80}]}
    }))?;
    records.apply_service(&svc);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dns.serve(async move {
        let _ = stopped.await;
    }));
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(address).await?;
    let mut answered = 0u64;
    let mut buf = [0u8; 512];
    let window = 32u16;
    let started = Instant::now();
    let mut id = 0u16;
    while started.elapsed() < Duration::from_secs(3) {
        for _ in 0..window {
            id = id.wrapping_add(1);
            socket.send(&dns_query(id)).await?;
        }
        for _ in 0..window {
            match tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf)).await {
                Ok(Ok(n)) if n > 12 && buf[7] == 1 => answered += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    let rate = answered as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = server.await;
    Ok(rate)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut ns = Netns::new()?;
    program(&ns, 1000)?;
    let _proxier = program(&ns, 10_000)?;
    let (direct, through) = hop_latency(&mut ns)?;
    line("10000-services", "request_direct", direct, "us");
    line("10000-services", "request_via_cluster_ip", through, "us");
    line("10000-services", "cluster_ip_hop", through - direct, "us");
    drop(ns);
    line("dns", "a_queries_per_s", dns_rate().await?, "1/s");
    Ok(())
}
