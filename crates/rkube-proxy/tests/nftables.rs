//! The rules in a real kernel: each test makes its own network namespace (unique name,
//! removed on drop), applies the proxy's nftables rules there with `nft`, and sends traffic
//! between processes inside it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rkube_proxy::dataplane::{Dataplane, Nft};
use rkube_proxy::model::{Endpoint, Protocol, ServicePort, TrafficPolicy};
use rkube_proxy::proxier::{Metrics, Proxier};
use rkube_proxy::rules::RulesConfig;

/// A network namespace whose loopback holds the test's addresses.
struct Netns {
    name: String,
    servers: Vec<Child>,
}

impl Netns {
    fn new(addresses: &[&str]) -> Netns {
        let name = format!("rkpx-{:08x}", rand_suffix());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns {
            name,
            servers: Vec::new(),
        };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        // A route for the service range, as a node's default route gives it: the output
        // path needs one before DNAT changes the destination.
        ns.exec(&["ip", "route", "add", "10.96.0.0/16", "dev", "lo"]);
        for a in addresses {
            ns.exec(&["ip", "addr", "add", &format!("{a}/32"), "dev", "lo"]);
        }
        ns
    }

    fn exec(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all);
    }

    /// A TCP server answering every connection with `reply`.
    fn serve(&mut self, ip: &str, port: u16, reply: &str) {
        let script = format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('{ip}',{port}))\ns.listen(16)\nprint('ready',flush=True)\nwhile True:\n  c,_=s.accept()\n  c.sendall(b'{reply}')\n  c.close()\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "python3", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        self.servers.push(child);
    }

    /// Connects to ip:port; Ok(what was read) or Err(the error's name).
    fn connect(&self, ip: &str, port: u16) -> Result<String, String> {
        let script = format!(
            "import socket\ns=socket.socket()\ns.settimeout(2)\ntry:\n  s.connect(('{ip}',{port}))\n  print('ok:'+s.recv(100).decode())\nexcept Exception as e:\n  print('err:'+type(e).__name__)\n"
        );
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "python3", "-c", &script])
            .output()
            .expect("python3");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        match text.split_once(':') {
            Some(("ok", v)) => Ok(v.to_owned()),
            Some((_, e)) => Err(e.to_owned()),
            None => Err(text),
        }
    }

    fn dataplane(&self) -> Arc<Nft> {
        Arc::new(Nft {
            netns: Some(self.name.clone()),
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?}");
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
}

fn endpoint(ip: &str, port: u16) -> Endpoint {
    Endpoint {
        ip: ip.parse().unwrap(),
        port,
        ready: true,
        serving: true,
        terminating: false,
        local: true,
    }
}

fn service(name: &str, cluster_ip: &str, endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        namespace: "default".to_owned(),
        name: name.to_owned(),
        port_name: String::new(),
        protocol: Protocol::Tcp,
        cluster_ip: Some(cluster_ip.parse().unwrap()),
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

fn proxier(ns: &Netns, node_ip: &str) -> Proxier {
    let config = RulesConfig {
        table: "rkube-proxy-test".to_owned(),
        cluster_cidr: Some("10.244.0.0/16".to_owned()),
        service_cidrs: vec!["10.96.0.0/16".to_owned()],
        nodeport_addresses: vec![format!("{node_ip}/32")],
    };
    Proxier::new(
        config,
        ns.dataplane(),
        Duration::from_secs(3600),
        Arc::new(Metrics::default()),
    )
}

#[test]
fn cluster_ips_and_node_ports_reach_endpoints_and_follow_changes() {
    let mut ns = Netns::new(&["10.244.0.5", "10.244.0.6", "192.0.2.1"]);
    ns.serve("10.244.0.5", 8080, "five");
    ns.serve("10.244.0.6", 8080, "six");
    let mut p = proxier(&ns, "192.0.2.1");
    let mut web = service("web", "10.96.0.10", vec![endpoint("10.244.0.5", 8080)]);
    web.node_port = Some(30080);
    let empty = service("empty", "10.96.0.11", Vec::new());
    p.sync(&[web.clone(), empty.clone()], Instant::now())
        .unwrap();
    assert_eq!(ns.connect("10.96.0.10", 80).as_deref(), Ok("five"));
    assert_eq!(ns.connect("192.0.2.1", 30080).as_deref(), Ok("five"));
    // No endpoints: refused at once, not timed out.
    assert_eq!(
        ns.connect("10.96.0.11", 80)
            .as_deref()
            .map_err(String::as_str),
        Err("ConnectionRefusedError")
    );
    // A served address on a port no Service has: refused too.
    assert_eq!(
        ns.connect("10.96.0.10", 81)
            .as_deref()
            .map_err(String::as_str),
        Err("ConnectionRefusedError")
    );
    // The endpoint moves: an incremental sync follows it.
    web.endpoints = vec![endpoint("10.244.0.6", 8080)];
    p.sync(&[web.clone(), empty.clone()], Instant::now())
        .unwrap();
    assert_eq!(ns.connect("10.96.0.10", 80).as_deref(), Ok("six"));
    // Both: balanced at random, so both answer within a few tries.
    web.endpoints = vec![endpoint("10.244.0.5", 8080), endpoint("10.244.0.6", 8080)];
    p.sync(&[web.clone(), empty], Instant::now()).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        seen.insert(ns.connect("10.96.0.10", 80).unwrap());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    // The Service goes: its address is no longer served.
    p.sync(&[], Instant::now()).unwrap();
    assert!(ns.connect("10.96.0.10", 80).is_err());
}

#[test]
fn client_affinity_keeps_a_client_on_one_endpoint() {
    let mut ns = Netns::new(&["10.244.1.5", "10.244.1.6"]);
    ns.serve("10.244.1.5", 8080, "five");
    ns.serve("10.244.1.6", 8080, "six");
    let mut p = proxier(&ns, "192.0.2.1");
    let mut web = service(
        "sticky",
        "10.96.1.10",
        vec![endpoint("10.244.1.5", 8080), endpoint("10.244.1.6", 8080)],
    );
    web.affinity_timeout = Some(60);
    p.sync(&[web], Instant::now()).unwrap();
    let first = ns.connect("10.96.1.10", 80).unwrap();
    for _ in 0..10 {
        assert_eq!(ns.connect("10.96.1.10", 80).unwrap(), first);
    }
}

#[test]
fn the_nft_tool_is_there() {
    assert!(
        Nft::default().available(),
        "nft (Debian's nftables) is needed"
    );
    // The dataplane refuses a bad script with nft's message.
    let ns = Netns::new(&[]);
    let err = ns.dataplane().apply("add rule ip nowhere nochain accept\n");
    assert!(err.is_err());
}
