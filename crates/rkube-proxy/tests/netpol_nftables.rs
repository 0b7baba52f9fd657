//! NetworkPolicy enforcement in a real kernel: each test builds a node of its own — a network
//! namespace holding a bridge with the node's gateway address, and one namespace per pod
//! joined to it by a veth pair (unique names, all removed on drop) — applies the policy table
//! in the node namespace with `nft`, and shows which TCP connections between pods and the node
//! get through. Bridged traffic reaches the forward hook through br_netfilter, as on a node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use rkube_proxy::dataplane::Dataplane;
use rkube_proxy::dataplane::Nft;
use rkube_proxy::model::Protocol;
use rkube_proxy::netpol::{Cluster, Enforcer, NamedPort, PodInfo, Policy};
use rkube_proxy::netpol_rules;
use rkube_proxy::netpol_script;
use serde_json::json;

const NODE: &str = "node-a";
const TABLE: &str = "rkube-netpol-br0";
const GATEWAY: &str = "10.42.0.1";

/// A node namespace with a bridge, and pod namespaces on it.
struct Node {
    name: String,
    pods: Vec<String>,
    servers: Vec<Child>,
}

impl Node {
    fn new() -> Node {
        let name = format!("rknp-{:08x}", rand_suffix());
        run(&["ip", "netns", "add", &name]);
        let node = Node {
            name,
            pods: Vec::new(),
            servers: Vec::new(),
        };
        node.exec(&["ip", "link", "set", "lo", "up"]);
        node.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
        node.exec(&["ip", "addr", "add", &format!("{GATEWAY}/24"), "dev", "br0"]);
        node.exec(&["ip", "link", "set", "br0", "up"]);
        // Per network namespace since Linux 5.3; on by default, set here to be sure.
        node.exec(&["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"]);
        node
    }

    fn exec(&self, args: &[&str]) {
        exec_in(&self.name, args);
    }

    /// A pod namespace with `ip` on the bridge; returns its name.
    fn add_pod(&mut self, ip: &str) -> String {
        let index = self.pods.len();
        let pod = format!("{}-p{index}", self.name);
        run(&["ip", "netns", "add", &pod]);
        self.pods.push(pod.clone());
        let host_end = format!("veth{index}");
        self.exec(&[
            "ip", "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &pod,
        ]);
        self.exec(&["ip", "link", "set", &host_end, "master", "br0", "up"]);
        exec_in(&pod, &["ip", "link", "set", "lo", "up"]);
        exec_in(
            &pod,
            &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
        );
        exec_in(&pod, &["ip", "link", "set", "eth0", "up"]);
        exec_in(&pod, &["ip", "route", "add", "default", "via", GATEWAY]);
        pod
    }

    /// A TCP server in namespace `ns` answering every connection on each port with the port.
    fn serve(&mut self, ns: &str, ip: &str, ports: &[u16]) {
        let script = format!(
            "import socket,selectors\nsel=selectors.DefaultSelector()\nfor p in {ports:?}:\n  s=socket.socket()\n  s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n  s.bind(('{ip}',p))\n  s.listen(16)\n  sel.register(s,selectors.EVENT_READ,p)\nprint('ready',flush=True)\nwhile True:\n  for k,_ in sel.select():\n    c,_=k.fileobj.accept()\n    c.sendall(str(k.data).encode())\n    c.close()\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", &script])
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

    fn nft(&self) -> Arc<Nft> {
        Arc::new(Nft {
            netns: Some(self.name.clone()),
        })
    }

    fn enforcer(&self) -> Enforcer {
        Enforcer::new(TABLE, self.nft())
    }

    /// The table as `nft list` shows it, as a sorted list of words (element order in a listing
    /// follows the kernel's, not the order they were added in).
    fn table_words(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.name, "nft", "list", "table", "ip", TABLE,
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).replace(',', " ");
        let mut words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        words.sort();
        words
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for child in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.pods.iter().chain([&self.name]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn exec_in(ns: &str, args: &[&str]) {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    run(&all);
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

/// Whether a TCP connection from namespace `ns` to ip:port is answered within half a second.
fn connects(ns: &str, ip: &str, port: u16) -> bool {
    let script = format!(
        "import socket\ns=socket.socket()\ns.settimeout(0.5)\ntry:\n  s.connect(('{ip}',{port}))\n  print('ok:'+s.recv(16).decode())\nexcept Exception as e:\n  print('err:'+type(e).__name__)\n"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", &script])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if text == format!("ok:{port}") {
        return true;
    }
    assert!(text.starts_with("err:"), "unexpected answer {text:?}");
    false
}

fn pod(name: &str, ip: &str, labels: &[(&str, &str)]) -> PodInfo {
    PodInfo {
        namespace: "default".to_owned(),
        name: name.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ip: Some(ip.parse().unwrap()),
        node: Some(NODE.to_owned()),
        host_network: false,
        terminal: false,
        ports: Vec::new(),
    }
}

fn policy(name: &str, spec: serde_json::Value) -> Policy {
    let np: NetworkPolicy = serde_json::from_value(json!({
        "metadata": { "namespace": "default", "name": name },
        "spec": spec,
    }))
    .unwrap();
    Policy::from_network_policy(&np)
}

fn cluster(pods: &[PodInfo], policies: &[Policy]) -> Cluster {
    Cluster {
        policies: policies
            .iter()
            .map(|p| (("default".to_owned(), p.name.clone()), p.clone()))
            .collect(),
        pods: pods
            .iter()
            .map(|p| (("default".to_owned(), p.name.clone()), p.clone()))
            .collect(),
        namespaces: BTreeMap::new(),
    }
}

#[test]
fn ingress_policies_let_allowed_peers_in_and_keep_the_rest_out() {
    let mut node = Node::new();
    let server = node.add_pod("10.42.0.10");
    let client = node.add_pod("10.42.0.11");
    let other = node.add_pod("10.42.0.12");
    node.serve(&server, "10.42.0.10", &[80, 81, 82]);
    node.serve(&client, "10.42.0.11", &[80]);
    let pods = [
        pod("server", "10.42.0.10", &[("app", "server")]),
        pod("client", "10.42.0.11", &[("app", "client")]),
        pod("other", "10.42.0.12", &[("app", "other")]),
    ];
    let allow = policy(
        "server",
        json!({
            "podSelector": { "matchLabels": { "app": "server" } },
            "ingress": [
                {
                    "from": [{ "podSelector": { "matchLabels": { "app": "client" } } }],
                    "ports": [{ "port": 80 }],
                },
                {
                    "from": [{ "ipBlock": { "cidr": "10.42.0.0/24", "except": ["10.42.0.11/32"] } }],
                    "ports": [{ "port": 81 }],
                },
            ],
        }),
    );
    let mut enforcer = node.enforcer();
    // No policy: everything connects (and the table is not there).
    enforcer.sync(&cluster(&pods, &[]), NODE).unwrap();
    assert!(connects(&other, "10.42.0.10", 80));

    let allowing = std::slice::from_ref(&allow);
    enforcer.sync(&cluster(&pods, allowing), NODE).unwrap();
    assert!(connects(&client, "10.42.0.10", 80));
    assert!(
        !connects(&client, "10.42.0.10", 81),
        "excepted from the ipBlock"
    );
    assert!(!connects(&other, "10.42.0.10", 80));
    assert!(connects(&other, "10.42.0.10", 81), "in the ipBlock");
    // The node itself (kubelet probes) always gets in; the server, not isolated for egress,
    // still reaches others.
    assert!(connects(&node.name, "10.42.0.10", 81));
    assert!(connects(&server, "10.42.0.11", 80));

    // The other pod becomes a client (its address joins the client's in one range).
    let mut relabelled = pods.clone();
    relabelled[2]
        .labels
        .insert("app".to_owned(), "client".to_owned());
    assert!(
        enforcer
            .sync(&cluster(&relabelled, allowing), NODE)
            .unwrap()
    );
    assert!(connects(&other, "10.42.0.10", 80));
    assert!(!connects(&other, "10.42.0.10", 82));

    // The policy goes: the table goes with it.
    enforcer.sync(&cluster(&pods, &[]), NODE).unwrap();
    assert!(connects(&other, "10.42.0.10", 80));
}

#[test]
fn egress_policies_allow_named_ports_replies_and_the_node() {
    let mut node = Node::new();
    let server = node.add_pod("10.42.0.20");
    let client = node.add_pod("10.42.0.21");
    let name = node.name.clone();
    node.serve(&server, "10.42.0.20", &[80, 8080]);
    node.serve(&client, "10.42.0.21", &[80]);
    node.serve(&name, GATEWAY, &[53]);
    let mut server_pod = pod("server", "10.42.0.20", &[("app", "server")]);
    server_pod.ports.push(NamedPort {
        name: "http".to_owned(),
        protocol: Protocol::Tcp,
        port: 8080,
    });
    let pods = [
        server_pod,
        pod("client", "10.42.0.21", &[("app", "client")]),
    ];
    // The client may only open connections to ports named http and receives none.
    let lockdown = policy(
        "client",
        json!({
            "podSelector": { "matchLabels": { "app": "client" } },
            "policyTypes": ["Ingress", "Egress"],
            "egress": [{ "ports": [{ "port": "http" }] }],
        }),
    );
    let mut enforcer = node.enforcer();
    enforcer.sync(&cluster(&pods, &[lockdown]), NODE).unwrap();
    // The reply comes back although the client accepts no new connection.
    assert!(connects(&client, "10.42.0.20", 8080));
    assert!(!connects(&client, "10.42.0.20", 80));
    assert!(!connects(&server, "10.42.0.21", 80));
    // Traffic to its own node is always allowed (cluster DNS is served on the gateway).
    assert!(connects(&client, GATEWAY, 53));
}

/// The cost of a sync with one pod coming or going, against a whole rewrite: 100 policies over
/// 100 local pods, each policy selecting ten pods for ingress and egress with pod and ipBlock
/// peers and numbered and named ports; prints one summary line.
#[test]
fn a_change_to_a_hundred_policies_over_a_hundred_pods_is_written_quickly_and_exactly() {
    let node = Node::new();
    let mut pods = Vec::new();
    for i in 0..100u32 {
        let mut p = pod(
            &format!("pod-{i}"),
            &format!("10.42.{}.{}", i / 200, 10 + i % 200),
            &[
                ("app", &format!("app-{}", i % 10)),
                ("group", &format!("g{}", i % 7)),
            ],
        );
        p.ports.push(NamedPort {
            name: "http".to_owned(),
            protocol: Protocol::Tcp,
            port: 8080,
        });
        pods.push(p);
    }
    let policies: Vec<Policy> = (0..100)
        .map(|i| {
            policy(
                &format!("policy-{i}"),
                json!({
                    "podSelector": { "matchLabels": { "app": format!("app-{}", i % 10) } },
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{
                        "from": [
                            { "podSelector": { "matchLabels": { "group": format!("g{}", i % 7) } } },
                            { "ipBlock": { "cidr": "192.0.2.0/24", "except": ["192.0.2.0/28"] } },
                        ],
                        "ports": [{ "port": 80 }, { "port": "http" }],
                    }],
                    "egress": [{
                        "to": [{ "podSelector": { "matchLabels": { "app": format!("app-{}", (i + 1) % 10) } } }],
                        "ports": [{ "port": "http" }, { "protocol": "UDP", "port": 53 }],
                    }],
                }),
            )
        })
        .collect();
    let c = cluster(&pods, &policies);
    let mut enforcer = node.enforcer();
    enforcer.sync(&c, NODE).unwrap();
    let mut fewer = c.clone();
    fewer
        .pods
        .remove(&("default".to_owned(), "pod-0".to_owned()));
    // An even number: the last sync is back to `c`.
    let runs = 6;
    let started = Instant::now();
    for i in 0..runs {
        // Alternate, so that every sync has a change to write.
        let which = if i % 2 == 0 { &fewer } else { &c };
        assert!(enforcer.sync(which, NODE).unwrap());
    }
    let changes = started.elapsed() / runs;
    // What the changes left is what a whole rewrite writes.
    let after_changes = node.table_words();
    let started = Instant::now();
    let rs = netpol_rules::build(&c, NODE);
    let compute = started.elapsed();
    let script = netpol_script::full_script(TABLE, &rs);
    let started = Instant::now();
    node.nft().apply(&script).unwrap();
    let full = started.elapsed();
    let after_rewrite = node.table_words();
    if after_changes != after_rewrite {
        let only = |a: &[String], b: &[String]| -> Vec<String> {
            let mut b = b.to_vec();
            a.iter()
                .filter(|w| match b.iter().position(|x| x == *w) {
                    Some(i) => {
                        b.swap_remove(i);
                        false
                    }
                    None => true,
                })
                .cloned()
                .collect()
        };
        panic!(
            "changes left {:?} more and {:?} less than a rewrite",
            only(&after_changes, &after_rewrite),
            only(&after_rewrite, &after_changes)
        );
    }
    println!(
        "name=netpol_sync_100x100 value={:.1} unit=ms compute_ms={:.1} full_rewrite_ms={:.1} size={}",
        changes.as_secs_f64() * 1e3,
        compute.as_secs_f64() * 1e3,
        full.as_secs_f64() * 1e3,
        rs.size()
    );
    assert!(changes < full, "{changes:?} {full:?}");
}
