//! End to end with a node: the real `rkube server` running its agent, which supervises a real
//! containerd (Debian's containerd, runc and CNI plugins), pulls real images from a real
//! registry on loopback (Debian's docker-registry, images built from busybox-static by
//! `tools/test-images`), and the real kubectl 1.33 and 1.32 driving it.
//!
//! Every cluster gets its own data directory, bridge, pod and service ranges, cgroup root and
//! ports, and `rkube killall` removes what it made when the test ends (also on failure).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rkube_store_tests::{free_port, kubectl_binary};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn tools() -> PathBuf {
    Path::new(ROOT).join("../../tools/test-images")
}

/// A loopback registry holding the test images.
struct Registry {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        // The wrapper and the registry it runs share a process group of their own.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Runs `registry.py serve` with `extra` arguments over a new directory and waits until
    /// it listens.
    fn serve(extra: &[&std::ffi::OsStr]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("python3")
            .arg(tools().join("registry.py"))
            .args(["serve", "--root"])
            .arg(dir.path())
            .args(["--port", &port.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the registry");
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            address,
            _dir: dir,
        }
    }

    fn start() -> Self {
        let registry = Self::serve(&[]);
        registry.push("rkube-test/busybox:1", 1);
        registry.push("rkube-test/busybox:2", 2);
        registry
    }

    fn push(&self, name: &str, variant: u32) {
        let out = Command::new("python3")
            .arg(tools().join("build_push.py"))
            .args([
                "--registry",
                &self.address,
                name,
                "--variant",
                &variant.to_string(),
            ])
            .output()
            .expect("push an image");
        assert!(
            out.status.success(),
            "pushing {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn image(&self, tag: u32) -> String {
        format!("{}/rkube-test/busybox:{tag}", self.address)
    }

    /// A second registry serving the same images, letting in only `user:password`.
    fn with_password(&self, user_password: &str) -> Registry {
        let storage = self._dir.path().join("storage");
        Self::serve(&[
            "--storage".as_ref(),
            storage.as_os_str(),
            "--htpasswd".as_ref(),
            user_password.as_ref(),
        ])
    }
}

/// A server with its agent, and what makes it unique on this host.
struct Cluster {
    child: Option<Child>,
    dir: tempfile::TempDir,
    args: Vec<String>,
    registry: Registry,
    /// Registries the test started beside the open one.
    _others: Vec<Registry>,
    /// The network namespace the server runs in (as a host of its own), if not the test's.
    netns: Option<String>,
    /// The API server's URL when the kubeconfig's loopback one does not reach it.
    server_url: Option<String>,
}

/// `rkube` in network namespace `netns`, or in the test's own. Only the network namespace
/// changes (`ip netns exec` would also mount a sysfs of its own over the host's cgroups).
fn rkube_in(netns: Option<&str>) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}"))
                .args(["--", env!("CARGO_BIN_EXE_rkube")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_rkube")),
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = rkube_in(self.netns.as_deref())
            .args(["killall", "--data-dir"])
            .arg(self.dir.path())
            .status();
    }
}

/// The eviction thresholds of the tests' nodes.
const TEST_EVICTION_HARD: &str = "memory.available<100Mi,nodefs.available<3%,nodefs.inodesFree<5%,imagefs.available<3%,imagefs.inodesFree<5%";

fn unique() -> String {
    format!("{:06x}", rand_u32() & 0xff_ffff)
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

impl Cluster {
    fn start() -> Self {
        Self::start_with(Registry::start(), Vec::new(), "", "")
    }

    /// A cluster whose registries.yaml also has `mirrors` and `configs` (YAML entries).
    fn start_with(registry: Registry, others: Vec<Registry>, mirrors: &str, configs: &str) -> Self {
        let mut cluster = Self::configure(registry, others, mirrors, configs);
        cluster.run_server();
        cluster
    }

    /// A cluster whose server runs on host `i` of `net`, listening on its address, with
    /// `extra` arguments.
    fn start_on(
        net: &TestNet,
        i: usize,
        registry: Registry,
        others: Vec<Registry>,
        extra: &[&str],
    ) -> Self {
        let mut cluster = Self::configure(registry, others, "", "");
        let ip = net.host_ip(i);
        cluster.set_arg("--bind-address", "0.0.0.0");
        cluster.set_arg("--node-ip", &ip);
        cluster.args.extend(extra.iter().map(|a| (*a).to_owned()));
        cluster.server_url = Some(format!(
            "https://{ip}:{}",
            cluster.arg("--https-listen-port")
        ));
        cluster.netns = Some(net.hosts[i].clone());
        cluster.run_server();
        cluster
    }

    fn configure(registry: Registry, others: Vec<Registry>, mirrors: &str, configs: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let id = unique();
        let octet = 100 + rand_u32() % 150;
        let registries = dir.path().join("registries.yaml");
        std::fs::write(
            &registries,
            format!(
                "mirrors:\n  \"{a}\":\n    endpoint:\n      - \"http://{a}\"\n{mirrors}configs:\n{configs}",
                a = registry.address
            ),
        )
        .unwrap();
        let args = vec![
            "server".to_owned(),
            "--bind-address".to_owned(),
            "127.0.0.1".to_owned(),
            "--https-listen-port".to_owned(),
            free_port().to_string(),
            "--data-dir".to_owned(),
            dir.path().display().to_string(),
            "--node-name".to_owned(),
            format!("node-{id}"),
            "--node-ip".to_owned(),
            "127.0.0.1".to_owned(),
            "--kubelet-port".to_owned(),
            free_port().to_string(),
            "--proxy-metrics-port".to_owned(),
            free_port().to_string(),
            "--pod-bridge".to_owned(),
            format!("rkt{id}"),
            "--cluster-cidr".to_owned(),
            format!("10.{octet}.0.0/16"),
            "--service-cidr".to_owned(),
            format!("10.{}.0.0/16", octet + 1),
            "--cgroup-root".to_owned(),
            format!("/rkube-test-{id}"),
            "--registries-config".to_owned(),
            registries.display().to_string(),
            // The host's disk is shared with everything else it runs: the tests' nodes report
            // disk pressure only when it is nearly full (upstream's memory and inode
            // thresholds kept).
            "--eviction-hard".to_owned(),
            TEST_EVICTION_HARD.to_owned(),
        ];
        Self {
            child: None,
            dir,
            args,
            registry,
            _others: others,
            netns: None,
            server_url: None,
        }
    }

    fn run_server(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let child = rkube_in(self.netns.as_deref())
            .args(&self.args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start rkube server");
        self.child = Some(child);
        self.eventually("the node Ready", Duration::from_secs(90), || {
            let out = self.try_kubectl(
                "1.33",
                &[
                    "get",
                    "nodes",
                    "-o",
                    "jsonpath={.items[0].status.conditions[?(@.type==\"Ready\")].status}",
                ],
            )?;
            (out == "True").then_some(())
        });
    }

    /// Stops the server with SIGTERM (containers keep running).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn kubectl_command(&self, version: &str, args: &[&str]) -> Command {
        let mut command = Command::new(kubectl_binary(version));
        if let Some(url) = &self.server_url {
            command.arg(format!("--server={url}"));
        }
        command
            .args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig.yaml"))
            .env("HOME", self.dir.path());
        command
    }

    fn try_kubectl(&self, version: &str, args: &[&str]) -> Option<String> {
        let out = self.kubectl_command(version, args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_v("1.33", args)
    }

    fn kubectl_v(&self, version: &str, args: &[&str]) -> String {
        let out = self
            .kubectl_command(version, args)
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}\n--- server log tail ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 40)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn apply(&self, manifest: &str) {
        let path = self.dir.path().join(format!("manifest-{}.yaml", unique()));
        std::fs::write(&path, manifest).unwrap();
        self.kubectl(&["apply", "-f", path.to_str().unwrap()]);
    }

    fn jsonpath(&self, what: &[&str], path: &str) -> String {
        let mut args: Vec<&str> = vec!["get"];
        args.extend(what);
        let expr = format!("jsonpath={path}");
        args.extend(["-o", &expr]);
        self.try_kubectl("1.33", &args).unwrap_or_default()
    }

    fn eventually<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(value) = check() {
                return value;
            }
            if Instant::now() >= deadline {
                let pods = self
                    .try_kubectl("1.33", &["describe", "pods"])
                    .unwrap_or_default();
                let nodes = self
                    .try_kubectl("1.33", &["describe", "nodes"])
                    .unwrap_or_default();
                panic!(
                    "timed out waiting for {what}\n--- pods ---\n{}\n--- nodes ---\n{}\n--- server log tail ---\n{}",
                    tail(&pods, 80),
                    tail(&nodes, 60),
                    tail(&self.log(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn wait_running(&self, pod: &str) {
        self.eventually(
            &format!("pod {pod} Running"),
            Duration::from_secs(60),
            || (self.jsonpath(&["pod", pod], "{.status.phase}") == "Running").then_some(()),
        );
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn http_get(address: &str) -> Option<String> {
    http_get_path(address, "/")
}

fn http_get_path(address: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&address.parse().ok()?, Duration::from_secs(2))
            .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn a_deployment_runs_and_serves_with_logs_exec_cp_and_port_forward() {
    let cluster = Cluster::start();
    let image = cluster.registry.image(1);
    cluster.apply(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: httpd
        image: {image}
        command: ["sh", "-c", "echo started $(cat /VERSION); exec httpd -f -p 8080 -h /var/www"]
        ports: [{{containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
"#
    ));
    cluster.eventually("the deployment available", Duration::from_secs(90), || {
        (cluster.jsonpath(&["deployment", "web"], "{.status.availableReplicas}") == "2")
            .then_some(())
    });
    let ips = cluster.jsonpath(&["pods", "-l", "app=web"], "{.items[*].status.podIP}");
    let ips: Vec<&str> = ips.split_whitespace().collect();
    assert_eq!(ips.len(), 2, "two pod IPs: {ips:?}");
    for ip in &ips {
        let body = http_get(&format!("{ip}:8080")).unwrap_or_default();
        assert!(body.contains("variant 1"), "pod {ip} answers: {body}");
    }
    let pod = cluster.jsonpath(&["pods", "-l", "app=web"], "{.items[0].metadata.name}");
    // Logs with both kubectl versions.
    for version in ["1.33", "1.32"] {
        let logs = cluster.kubectl_v(version, &["logs", &pod]);
        assert!(logs.contains("started 1"), "kubectl {version} logs: {logs}");
    }
    // Exec: output, stdin and the exit code.
    for version in ["1.33", "1.32"] {
        let out = cluster.kubectl_v(version, &["exec", &pod, "--", "cat", "/VERSION"]);
        assert_eq!(out.trim(), "1");
        let mut child = cluster
            .kubectl_command(
                version,
                &["exec", "-i", &pod, "--", "sh", "-c", "tr a-z A-Z"],
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"hello stdin\n")
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "HELLO STDIN");
        let status = cluster
            .kubectl_command(version, &["exec", &pod, "--", "sh", "-c", "exit 7"])
            .status()
            .unwrap();
        assert_eq!(
            status.code(),
            Some(7),
            "kubectl {version} exec passes the exit code on"
        );
    }
    // cp both ways.
    let local = cluster.dir.path().join("up.txt");
    std::fs::write(&local, "copied in\n").unwrap();
    cluster.kubectl(&["cp", local.to_str().unwrap(), &format!("{pod}:/tmp/up.txt")]);
    assert_eq!(
        cluster.kubectl(&["exec", &pod, "--", "cat", "/tmp/up.txt"]),
        "copied in\n"
    );
    let back = cluster.dir.path().join("down.txt");
    cluster.kubectl(&["cp", &format!("{pod}:/tmp/up.txt"), back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "copied in\n");
    // Port-forward.
    let port = free_port();
    let mut forward = cluster
        .kubectl_command(
            "1.33",
            &[
                "port-forward",
                &format!("pod/{pod}"),
                &format!("{port}:8080"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let body = cluster.eventually("port-forward answering", Duration::from_secs(20), || {
        http_get(&format!("127.0.0.1:{port}")).filter(|b| b.contains("variant"))
    });
    let _ = forward.kill();
    let _ = forward.wait();
    assert!(body.contains("variant 1"));
    // A rolling update to a new image.
    cluster.kubectl(&[
        "set",
        "image",
        "deployment/web",
        &format!("httpd={}", cluster.registry.image(2)),
    ]);
    cluster.kubectl(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    // Once the old pods are gone, both pods serve the new image.
    cluster.eventually("only new pods answering", Duration::from_secs(60), || {
        let ips = cluster.jsonpath(&["pods", "-l", "app=web"], "{.items[*].status.podIP}");
        let ips: Vec<&str> = ips.split_whitespace().collect();
        (ips.len() == 2
            && ips
                .iter()
                .all(|ip| http_get(&format!("{ip}:8080")).is_some_and(|b| b.contains("variant 2"))))
        .then_some(())
    });
}

/// A child process killed, with its process group, when the test is done with it (also on
/// failure).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// Runs `command` to its end within `limit` (killing it and failing the test past that),
/// with `input` on its stdin. It runs in a process group of its own, so what it starts is
/// killed with it.
fn run_within(mut command: Command, input: &[u8], limit: Duration) -> std::process::Output {
    use std::io::{Read, Write};
    let what = format!("{command:?}");
    let mut child = command
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from a thread of its own so a child that never reads cannot block the test;
    // dropping it closes the child's stdin.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            drop(KillOnDrop(child));
            panic!("{what} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = writer.join();
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// exec (output, exit code, stdin that ends, a terminal), cp both ways and port-forward with
/// kubectl's WebSocket protocols, checking that kubectl did not fall back to SPDY and that
/// the kubelet translated; then the same with SPDY forced.
#[test]
fn exec_cp_and_port_forward_speak_websocket_without_falling_back_and_spdy_still_works() {
    let cluster = Cluster::start();
    let image = cluster.registry.image(1);
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: streams}}
spec:
  containers:
  - name: web
    image: {image}
    command: ["sh", "-c", "exec httpd -f -p 8080 -h /var/www"]
"#
    ));
    cluster.wait_running("streams");
    let translated = |log: &str| {
        (
            log.matches("translated to SPDY for the runtime").count(),
            log.matches("tunnelling SPDY to the runtime").count(),
        )
    };
    let modes: [(&str, &[(&str, &str)]); 2] = [
        ("websocket", &[]),
        (
            "spdy",
            &[
                ("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false"),
                ("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false"),
            ],
        ),
    ];
    let limit = Duration::from_secs(60);
    for (mode, env) in modes {
        let (exec_before, tunnel_before) = translated(&cluster.log());
        let kubectl = |args: &[&str]| {
            let mut command = cluster.kubectl_command("1.33", args);
            command.envs(env.iter().copied());
            command
        };
        let context = |out: &std::process::Output| {
            format!(
                "[{mode}] stdout: {}\nstderr: {}\n--- server log tail ---\n{}",
                String::from_utf8_lossy(&out.stdout),
                tail(&String::from_utf8_lossy(&out.stderr), 30),
                tail(&cluster.log(), 30)
            )
        };

        // Output, and what kubectl says it negotiated.
        let out = run_within(
            kubectl(&["exec", "-v=4", "streams", "--", "cat", "/VERSION"]),
            b"",
            limit,
        );
        assert!(out.status.success(), "exec: {}", context(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("RemoteCommand fallback"),
            "kubectl fell back: {}",
            context(&out)
        );
        if mode == "websocket" {
            assert!(
                stderr.contains("The subprotocol is v5.channel.k8s.io"),
                "kubectl spoke v5: {}",
                context(&out)
            );
        }

        // The exit code.
        let out = run_within(
            kubectl(&["exec", "streams", "--", "sh", "-c", "echo oops >&2; exit 3"]),
            b"",
            limit,
        );
        assert_eq!(out.status.code(), Some(3), "exit code: {}", context(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));

        // Stdin that ends: `cat` only exits once kubectl's stdin is closed in the container.
        let out = run_within(
            kubectl(&["exec", "-i", "streams", "--", "cat"]),
            b"hello stdin\nsecond line\n",
            limit,
        );
        assert!(out.status.success(), "exec -i: {}", context(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello stdin\nsecond line\n"
        );

        // A terminal, from `script`'s pseudo-terminal: the size kubectl sends arrives.
        let kubectl_path = kubectl_binary("1.33");
        let mut script = Command::new("script");
        script
            .args(["-qec"])
            .arg(format!(
                "stty cols 123 rows 45; {} exec -it streams -- sh -c 'tty; sleep 1; stty size'",
                kubectl_path.display()
            ))
            .arg("/dev/null")
            .env("KUBECONFIG", cluster.dir.path().join("kubeconfig.yaml"))
            .env("HOME", cluster.dir.path())
            .envs(env.iter().copied());
        let out = run_within(script, b"", limit);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "exec -it: {}", context(&out));
        assert!(text.contains("/dev/pts/"), "a terminal: {}", context(&out));
        assert!(text.contains("45 123"), "its size: {}", context(&out));

        // Attach to a container waiting on its stdin (stdinOnce: closed after this session).
        let reader = format!("reader-{mode}");
        cluster.apply(&format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {reader}}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {image}
    stdin: true
    stdinOnce: true
    command: ["sh", "-c", "read line; echo got $line"]
"#
        ));
        cluster.wait_running(&reader);
        let out = run_within(kubectl(&["attach", "-i", &reader]), b"hello\n", limit);
        assert!(out.status.success(), "attach: {}", context(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("got hello"),
            "attach: {}",
            context(&out)
        );

        // cp into the pod (tar on stdin, ended by the close signal) and back out.
        let local = cluster.dir.path().join(format!("in-{mode}.txt"));
        let content = format!("copied in over {mode}\n").repeat(2000);
        std::fs::write(&local, &content).unwrap();
        let remote = format!("streams:/tmp/in-{mode}.txt");
        let out = run_within(
            kubectl(&["cp", local.to_str().unwrap(), &remote]),
            b"",
            limit,
        );
        assert!(out.status.success(), "cp in: {}", context(&out));
        let back = cluster.dir.path().join(format!("back-{mode}.txt"));
        let out = run_within(
            kubectl(&["cp", &remote, back.to_str().unwrap()]),
            b"",
            limit,
        );
        assert!(out.status.success(), "cp out: {}", context(&out));
        assert_eq!(std::fs::read_to_string(&back).unwrap(), content);

        // Port-forward, two requests over one forward.
        let port = free_port();
        let mut forward = kubectl(&["port-forward", "pod/streams", &format!("{port}:8080")]);
        let forward = KillOnDrop(
            forward
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let first = cluster.eventually("port-forward answering", Duration::from_secs(20), || {
            http_get(&format!("127.0.0.1:{port}")).filter(|b| b.contains("variant"))
        });
        let second = http_get(&format!("127.0.0.1:{port}")).unwrap_or_default();
        drop(forward);
        assert!(first.contains("variant 1") && second.contains("variant 1"));

        let (exec_after, tunnel_after) = translated(&cluster.log());
        if mode == "websocket" {
            // exec, exec, exec -i, exec -it, attach, cp in (tar) and cp out (tar).
            assert!(
                exec_after - exec_before >= 7,
                "the kubelet translated every exec ({exec_before} -> {exec_after})"
            );
            assert!(
                tunnel_after > tunnel_before,
                "the kubelet tunnelled port-forward"
            );
        } else {
            assert_eq!(
                (exec_after, tunnel_after),
                (exec_before, tunnel_before),
                "SPDY clients are forwarded as they are"
            );
        }
    }
}

#[test]
fn failing_containers_restart_back_off_and_report_why() {
    let cluster = Cluster::start();
    let image = cluster.registry.image(1);
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: crash}}
spec:
  containers:
  - name: c
    image: {image}
    command: ["sh", "-c", "echo run; exit 3"]
---
apiVersion: v1
kind: Pod
metadata: {{name: live}}
spec:
  containers:
  - name: c
    image: {image}
    command: ["sh", "-c", "touch /tmp/healthy; sleep 3600"]
    livenessProbe:
      exec: {{command: ["cat", "/tmp/healthy"]}}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {{name: ready}}
spec:
  containers:
  - name: c
    image: {image}
    command: ["sleep", "3600"]
    readinessProbe:
      exec: {{command: ["cat", "/tmp/ready"]}}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {{name: badimage}}
spec:
  containers:
  - name: c
    image: {registry}/rkube-test/busybox:no-such-tag
---
apiVersion: v1
kind: Pod
metadata: {{name: stubborn}}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: c
    image: {image}
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
---
apiVersion: batch/v1
kind: Job
metadata: {{name: job}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: {image}
        command: ["sh", "-c", "echo job done"]
"#,
        registry = cluster.registry.address
    ));
    // CrashLoopBackOff with a growing restart count.
    cluster.eventually("crash in CrashLoopBackOff", Duration::from_secs(60), || {
        let reason = cluster.jsonpath(
            &["pod", "crash"],
            "{.status.containerStatuses[0].state.waiting.reason}",
        );
        let restarts: u32 = cluster
            .jsonpath(
                &["pod", "crash"],
                "{.status.containerStatuses[0].restartCount}",
            )
            .parse()
            .unwrap_or(0);
        (reason == "CrashLoopBackOff" && restarts >= 1).then_some(())
    });
    let exit = cluster.jsonpath(
        &["pod", "crash"],
        "{.status.containerStatuses[0].lastState.terminated.exitCode}",
    );
    assert_eq!(exit, "3");
    assert!(
        cluster
            .kubectl(&["logs", "crash", "--previous"])
            .contains("run")
    );
    // A failing liveness probe restarts the container.
    cluster.wait_running("live");
    cluster.kubectl(&["exec", "live", "--", "rm", "/tmp/healthy"]);
    cluster.eventually("live restarted", Duration::from_secs(60), || {
        let n: u32 = cluster
            .jsonpath(
                &["pod", "live"],
                "{.status.containerStatuses[0].restartCount}",
            )
            .parse()
            .unwrap_or(0);
        (n >= 1).then_some(())
    });
    let events = cluster.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=live",
    ]);
    assert!(events.contains("Unhealthy"), "events: {events}");
    // Readiness toggles Ready.
    cluster.wait_running("ready");
    assert_eq!(
        cluster.jsonpath(
            &["pod", "ready"],
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "False"
    );
    cluster.kubectl(&["exec", "ready", "--", "touch", "/tmp/ready"]);
    cluster.eventually("ready Ready", Duration::from_secs(30), || {
        (cluster.jsonpath(
            &["pod", "ready"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "True")
            .then_some(())
    });
    cluster.kubectl(&["exec", "ready", "--", "rm", "/tmp/ready"]);
    cluster.eventually("ready not Ready", Duration::from_secs(30), || {
        (cluster.jsonpath(
            &["pod", "ready"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "False")
            .then_some(())
    });
    // A bad tag: ErrImagePull, then ImagePullBackOff.
    let seen = cluster.eventually("badimage pull errors", Duration::from_secs(60), || {
        let reason = cluster.jsonpath(
            &["pod", "badimage"],
            "{.status.containerStatuses[0].state.waiting.reason}",
        );
        (reason == "ErrImagePull" || reason == "ImagePullBackOff").then_some(reason)
    });
    assert!(!seen.is_empty());
    cluster.eventually("ImagePullBackOff", Duration::from_secs(60), || {
        (cluster.jsonpath(
            &["pod", "badimage"],
            "{.status.containerStatuses[0].state.waiting.reason}",
        ) == "ImagePullBackOff")
            .then_some(())
    });
    // The Job completes.
    cluster.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/job",
        "--timeout=60s",
    ]);
    let job_pod = cluster.jsonpath(&["pods", "-l", "job-name=job"], "{.items[0].metadata.name}");
    assert!(cluster.kubectl(&["logs", &job_pod]).contains("job done"));
    // A pod ignoring SIGTERM is killed after its grace period and removed.
    cluster.wait_running("stubborn");
    let started = Instant::now();
    cluster.kubectl(&["delete", "pod", "stubborn", "--wait=true", "--timeout=60s"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "deleted after {took:?}, before the grace period ended"
    );
    assert!(took < Duration::from_secs(40), "deleted after {took:?}");
    // runAsNonRoot is checked against the image's user (root here) and against runAsUser.
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: nonroot}}
spec:
  securityContext: {{runAsNonRoot: true}}
  containers:
  - name: image-user
    image: {image}
    command: ["sleep", "3600"]
  - name: numeric
    image: {image}
    command: ["sleep", "3600"]
    securityContext: {{runAsUser: 1000}}
"#
    ));
    let uid = cluster.jsonpath(&["pod", "nonroot"], "{.metadata.uid}");
    let waiting = cluster.eventually(
        "runAsNonRoot refused for the image's root user",
        Duration::from_secs(60),
        || {
            let out = cluster.jsonpath(
                &["pod", "nonroot"],
                "{.status.containerStatuses[?(@.name==\"image-user\")].state.waiting.reason}|{.status.containerStatuses[?(@.name==\"image-user\")].state.waiting.message}",
            );
            out.starts_with("CreateContainerConfigError|").then_some(out)
        },
    );
    assert_eq!(
        waiting,
        format!(
            "CreateContainerConfigError|container has runAsNonRoot and image will run as root (pod: \"nonroot_default({uid})\", container: image-user)"
        )
    );
    cluster.eventually(
        "the non-root container running",
        Duration::from_secs(60),
        || {
            let state = cluster.jsonpath(
                &["pod", "nonroot"],
                "{.status.containerStatuses[?(@.name==\"numeric\")].state.running.startedAt}",
            );
            (!state.is_empty()).then_some(())
        },
    );
}

#[test]
fn config_secrets_downward_api_volumes_init_containers_and_limits_reach_the_container() {
    let cluster = Cluster::start();
    let image = cluster.registry.image(1);
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{greeting: hello, mode: fast}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: s3cret}}
---
apiVersion: v1
kind: Pod
metadata:
  name: app
  labels: {{tier: backend}}
spec:
  initContainers:
  - name: first
    image: {image}
    command: ["sh", "-c", "echo first >> /work/order"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  - name: second
    image: {image}
    command: ["sh", "-c", "echo second >> /work/order"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: main
    image: {image}
    command: ["sleep", "3600"]
    env:
    - name: GREETING
      valueFrom: {{configMapKeyRef: {{name: settings, key: greeting}}}}
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    - name: MEM_LIMIT
      valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}
    - name: COMBINED
      value: "$(GREETING)-$(POD_NAME)"
    envFrom:
    - prefix: CFG_
      configMapRef: {{name: settings}}
    resources:
      requests: {{cpu: 100m, memory: 32Mi}}
      limits: {{cpu: 250m, memory: 64Mi}}
    volumeMounts:
    - {{name: work, mountPath: /work}}
    - {{name: config, mountPath: /etc/config}}
    - {{name: secret, mountPath: /etc/secret}}
    - {{name: info, mountPath: /etc/info}}
  volumes:
  - name: work
    emptyDir: {{}}
  - name: config
    configMap: {{name: settings}}
  - name: secret
    secret: {{secretName: creds}}
  - name: info
    downwardAPI:
      items:
      - path: labels
        fieldRef: {{fieldPath: metadata.labels}}
"#
    ));
    cluster.wait_running("app");
    let exec = |cmd: &str| cluster.kubectl(&["exec", "app", "-c", "main", "--", "sh", "-c", cmd]);
    assert_eq!(
        exec("cat /work/order"),
        "first\nsecond\n",
        "init containers ran in order on the shared emptyDir"
    );
    assert_eq!(
        exec("echo $GREETING $PASSWORD $POD_NAME $MEM_LIMIT $COMBINED $CFG_mode"),
        "hello s3cret app 64 hello-app fast\n"
    );
    assert_eq!(exec("cat /etc/config/greeting"), "hello");
    assert_eq!(exec("cat /etc/secret/password"), "s3cret");
    assert_eq!(exec("cat /etc/info/labels"), "tier=\"backend\"");
    // The service account token, CA and namespace the ServiceAccount admission plugin mounts.
    let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    assert_eq!(exec(&format!("cat {sa}/namespace")), "default");
    assert!(exec(&format!("cat {sa}/ca.crt")).contains("BEGIN CERTIFICATE"));
    assert_eq!(
        exec(&format!("cut -c1-3 {sa}/token")).trim(),
        "eyJ",
        "a JWT"
    );
    // Limits in the container's cgroup (v1 memory and cpu controllers, or v2).
    let memory = exec(
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    );
    assert_eq!(memory.trim(), (64 * 1024 * 1024).to_string());
    let quota = exec(
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max",
    );
    assert_eq!(quota.trim(), "25000");
    // The pod as a whole is held to the sum of its containers' limits, in its own cgroup.
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: limited}}
spec:
  containers:
  - name: a
    image: {image}
    command: ["sleep", "3600"]
    resources: {{limits: {{cpu: 100m, memory: 32Mi}}}}
  - name: b
    image: {image}
    command: ["sleep", "3600"]
    resources: {{limits: {{cpu: 50m, memory: 16Mi}}}}
"#
    ));
    cluster.wait_running("limited");
    let uid = cluster.jsonpath(&["pod", "limited"], "{.metadata.uid}");
    let root = cluster.arg("--cgroup-root");
    let root = root.trim_start_matches('/');
    let read = |v1: &str, v2: &str| {
        let v1 = format!("/sys/fs/cgroup/{v1}");
        let v2 = format!("/sys/fs/cgroup/{root}/kubepods/pod{uid}/{v2}");
        std::fs::read_to_string(&v1)
            .or_else(|_| std::fs::read_to_string(&v2))
            .unwrap_or_else(|e| panic!("reading {v1} or {v2}: {e}"))
    };
    let memory = read(
        &format!("memory/{root}/kubepods/pod{uid}/memory.limit_in_bytes"),
        "memory.max",
    );
    assert_eq!(memory.trim(), (48 * 1024 * 1024).to_string());
    let quota = read(
        &format!("cpu/{root}/kubepods/pod{uid}/cpu.cfs_quota_us"),
        "cpu.max",
    );
    assert_eq!(quota.split_whitespace().next(), Some("15000"));
    // A ConfigMap update reaches the mounted file.
    cluster.kubectl(&[
        "patch",
        "configmap",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"greeting":"changed"}}"#,
    ]);
    cluster.eventually("the volume updated", Duration::from_secs(90), || {
        (exec("cat /etc/config/greeting") == "changed").then_some(())
    });
}

#[test]
fn containers_survive_a_server_restart_and_a_containerd_crash() {
    let mut cluster = Cluster::start();
    let image = cluster.registry.image(1);
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: steady}}
spec:
  containers:
  - name: c
    image: {image}
    command: ["sleep", "3600"]
"#
    ));
    cluster.wait_running("steady");
    let id = cluster.jsonpath(
        &["pod", "steady"],
        "{.status.containerStatuses[0].containerID}",
    );
    assert!(id.starts_with("containerd://"), "container id {id}");
    // The kubelet API serves a certificate of the cluster CA, asked for through a
    // kubelet-serving certificate request and approved for the node's own name.
    let csrs = cluster.kubectl(&[
        "get",
        "csr",
        "--field-selector",
        "spec.signerName=kubernetes.io/kubelet-serving",
        "-o",
        "jsonpath={range .items[*]}{.spec.username} {.status.conditions[0].type}{\"\\n\"}{end}",
    ]);
    assert_eq!(csrs.lines().count(), 1, "{csrs}");
    assert!(csrs.ends_with(" Approved\n"), "{csrs}");
    let verified_by_ca = |c: &Cluster| {
        let ca = c.jsonpath(&["configmap", "kube-root-ca.crt"], "{.data.ca\\.crt}");
        let ca_file = c.dir.path().join("ca-check.crt");
        std::fs::write(&ca_file, ca).unwrap();
        let script = "import socket, ssl, sys\n\
            ctx = ssl.create_default_context(cafile=sys.argv[1])\n\
            s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[2]))), server_hostname='127.0.0.1')\n\
            print(dict(x[0] for x in s.getpeercert()['subject'])['commonName'])\n";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(&ca_file)
            .arg(c.arg("--kubelet-port"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the kubelet's certificate does not verify against the cluster CA: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let node = format!("system:node:{}", cluster.arg("--node-name"));
    assert_eq!(verified_by_ca(&cluster), node);
    cluster.stop();
    cluster.run_server();
    cluster.wait_running("steady");
    // The same certificate after the restart: no second request.
    assert_eq!(verified_by_ca(&cluster), node);
    let after = cluster.kubectl(&[
        "get",
        "csr",
        "--field-selector",
        "spec.signerName=kubernetes.io/kubelet-serving",
        "-o",
        "name",
    ]);
    assert_eq!(after.lines().count(), 1, "{after}");
    // The kubelet re-attached: same container, no restart.
    cluster.eventually("the status re-read", Duration::from_secs(30), || {
        let now = cluster.jsonpath(
            &["pod", "steady"],
            "{.status.containerStatuses[0].containerID}",
        );
        (now == id).then_some(())
    });
    assert_eq!(
        cluster.jsonpath(
            &["pod", "steady"],
            "{.status.containerStatuses[0].restartCount}"
        ),
        "0"
    );
    assert_eq!(
        cluster
            .kubectl(&["exec", "steady", "--", "echo", "alive"])
            .trim(),
        "alive"
    );
    // Kill the supervised containerd: it comes back and the pod keeps running.
    let config = cluster.dir.path().join("agent/etc/containerd/config.toml");
    let pid = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (text.starts_with("containerd ") && text.contains(config.to_str().unwrap()))
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .expect("the supervised containerd");
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    cluster.eventually(
        "exec through a restarted containerd",
        Duration::from_secs(60),
        || {
            cluster
                .try_kubectl("1.33", &["exec", "steady", "--", "echo", "back"])
                .filter(|o| o.trim() == "back")
        },
    );
    assert_eq!(
        cluster.jsonpath(
            &["pod", "steady"],
            "{.status.containerStatuses[0].containerID}"
        ),
        id
    );
    assert_eq!(
        cluster.jsonpath(
            &["pod", "steady"],
            "{.status.containerStatuses[0].restartCount}"
        ),
        "0"
    );
}

#[test]
fn images_come_through_mirrors_that_ask_for_credentials() {
    let registry = Registry::start();
    let private = registry.with_password("puller:s3cret");
    let p = private.address.clone();
    let port = p.rsplit(':').next().unwrap().to_owned();
    // The same registry by two host names: the right password for one, a wrong one for the
    // other.
    let cluster = Cluster::start_with(
        registry,
        vec![private],
        &format!(
            "  \"private.example\":\n    endpoint: [\"http://{p}\"]\n  \"denied.example\":\n    endpoint: [\"http://localhost:{port}\"]\n"
        ),
        &format!(
            "  \"{p}\":\n    auth: {{username: puller, password: s3cret}}\n  \"localhost:{port}\":\n    auth: {{username: puller, password: wrong}}\n"
        ),
    );
    cluster.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: allowed}
spec:
  containers:
  - name: c
    image: private.example/rkube-test/busybox:1
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: denied}
spec:
  containers:
  - name: c
    image: denied.example/rkube-test/busybox:2
    command: ["sleep", "3600"]
"#,
    );
    cluster.wait_running("allowed");
    let reason = cluster.eventually("the pull refused", Duration::from_secs(60), || {
        let out = cluster.jsonpath(
            &["pod", "denied"],
            "{.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}",
        );
        (out.starts_with("ErrImagePull|") || out.starts_with("ImagePullBackOff|")).then_some(out)
    });
    assert!(
        reason.contains("denied.example/rkube-test/busybox:2"),
        "{reason}"
    );
}

#[test]
fn pods_over_their_local_storage_limits_are_evicted_and_others_keep_running() {
    let cluster = Cluster::start();
    let image = cluster.registry.image(1);
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: scratch}}
spec:
  restartPolicy: Never
  containers:
  - name: fill
    image: {image}
    command: ["sh", "-c", "dd if=/dev/zero of=/data/fill bs=1024 count=4096 && sleep 3600"]
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes:
  - name: data
    emptyDir: {{sizeLimit: 1Mi}}
---
apiVersion: v1
kind: Pod
metadata: {{name: writer}}
spec:
  containers:
  - name: fill
    image: {image}
    command: ["sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1024 count=8192 && sleep 3600"]
    resources:
      limits: {{ephemeral-storage: 2Mi}}
---
apiVersion: v1
kind: Pod
metadata: {{name: modest}}
spec:
  containers:
  - name: c
    image: {image}
    command: ["sh", "-c", "dd if=/dev/zero of=/tmp/small bs=1024 count=64 && sleep 3600"]
    resources:
      limits: {{ephemeral-storage: 64Mi}}
"#
    ));
    let evicted = |pod: &str| {
        cluster.eventually(
            &format!("pod {pod} evicted"),
            Duration::from_secs(120),
            || {
                let out = cluster.jsonpath(
                    &["pod", pod],
                    "{.status.phase}|{.status.reason}|{.status.message}|{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}",
                );
                out.starts_with("Failed|Evicted|").then_some(out)
            },
        )
    };
    assert_eq!(
        evicted("scratch"),
        "Failed|Evicted|Usage of EmptyDir volume \"data\" exceeds the limit \"1Mi\". |TerminationByKubelet"
    );
    assert_eq!(
        evicted("writer"),
        "Failed|Evicted|Pod ephemeral local storage usage exceeds the total limit of containers 2Mi. |TerminationByKubelet"
    );
    // The evicted pod's container was stopped; the pod within its limits runs on.
    assert_eq!(
        cluster.jsonpath(
            &["pod", "writer"],
            "{.status.containerStatuses[0].state.terminated.reason}"
        ),
        "Error"
    );
    assert_eq!(
        cluster.jsonpath(&["pod", "modest"], "{.status.phase}"),
        "Running"
    );
    let events = cluster.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "reason=Evicted,involvedObject.name=scratch",
        "-o",
        "jsonpath={.items[*].type}",
    ]);
    assert_eq!(events, "Warning");
}

#[test]
fn node_pressure_reclaims_unused_images_evicts_pods_and_refuses_new_ones() {
    let mut cluster = Cluster::start();
    let (kept, unused) = (cluster.registry.image(1), cluster.registry.image(2));
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: keeper}}
spec:
  containers:
  - name: main
    image: {kept}
    command: ["sleep", "3600"]
    resources:
      requests: {{cpu: 10m, memory: 1Ki}}
---
apiVersion: v1
kind: Pod
metadata: {{name: once}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: {unused}
    command: ["true"]
"#
    ));
    cluster.wait_running("keeper");
    cluster.eventually("pod once Succeeded", Duration::from_secs(60), || {
        (cluster.jsonpath(&["pod", "once"], "{.status.phase}") == "Succeeded").then_some(())
    });
    cluster.kubectl(&["delete", "pod", "once", "--wait"]);
    let node_images = |c: &Cluster| c.jsonpath(&["nodes"], "{.items[0].status.images[*].names}");
    cluster.eventually(
        "the node lists both images",
        Duration::from_secs(30),
        || {
            let images = node_images(&cluster);
            (images.contains("busybox:2") && images.contains("busybox:1")).then_some(())
        },
    );
    // The same node, now told that any use of the image filesystem is too much.
    let base = cluster.args.clone();
    cluster.stop();
    cluster.set_arg("--eviction-hard", "imagefs.available<100%");
    cluster
        .args
        .extend(["--minimum-image-ttl-duration", "0s"].map(String::from));
    cluster.run_server();
    let condition = |c: &Cluster, type_: &str| {
        c.jsonpath(
            &["nodes"],
            &format!("{{.items[0].status.conditions[?(@.type==\"{type_}\")].reason}}"),
        )
    };
    cluster.eventually("DiskPressure", Duration::from_secs(60), || {
        (condition(&cluster, "DiskPressure") == "KubeletHasDiskPressure").then_some(())
    });
    assert_eq!(
        condition(&cluster, "MemoryPressure"),
        "KubeletHasSufficientMemory"
    );
    cluster.eventually("the disk-pressure taint", Duration::from_secs(60), || {
        let taints = cluster.jsonpath(&["nodes"], "{.items[0].spec.taints[*].key}");
        taints
            .contains("node.kubernetes.io/disk-pressure")
            .then_some(())
    });
    // The node reclaims first: the image no container uses goes, the one in use stays...
    cluster.eventually("the unused image removed", Duration::from_secs(60), || {
        let images = node_images(&cluster);
        (!images.contains("busybox:2") && images.contains("busybox:1")).then_some(())
    });
    // ... and as that is not enough, the pod is evicted.
    let evicted = |c: &Cluster, pod: &str| {
        c.eventually(&format!("{pod} evicted"), Duration::from_secs(60), || {
            let out = c.jsonpath(
                &["pod", pod],
                "{.status.phase}|{.status.reason}|{.status.message}",
            );
            out.starts_with("Failed|").then_some(out)
        })
    };
    let keeper = evicted(&cluster, "keeper");
    assert!(
        keeper.starts_with(
            "Failed|Evicted|The node was low on resource: ephemeral-storage. Threshold quantity: "
        ),
        "{keeper}"
    );
    let reclaim = cluster.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "reason=EvictionThresholdMet",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        reclaim.contains("Attempting to reclaim ephemeral-storage"),
        "{reclaim}"
    );
    // New pods bound to the node are refused.
    let node = cluster.jsonpath(&["nodes"], "{.items[0].metadata.name}");
    let bound = |name: &str, resources: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  containers:
  - name: main
    image: {kept}
    command: ["sleep", "3600"]
    resources: {resources}
"#
        )
    };
    cluster.apply(&bound("late", "{}"));
    assert_eq!(
        evicted(&cluster, "late"),
        "Failed|Evicted|Pod was rejected: The node had condition: [DiskPressure]. "
    );

    // Memory now: BestEffort pods are refused, others admitted and then evicted.
    cluster.stop();
    cluster.args = base;
    cluster.set_arg("--eviction-hard", "memory.available<100%");
    cluster
        .args
        .extend(["--eviction-pressure-transition-period", "0s"].map(String::from));
    cluster.run_server();
    cluster.eventually("MemoryPressure only", Duration::from_secs(60), || {
        (condition(&cluster, "MemoryPressure") == "KubeletHasInsufficientMemory"
            && condition(&cluster, "DiskPressure") == "KubeletHasNoDiskPressure")
            .then_some(())
    });
    cluster.apply(&bound("besteffort", "{}"));
    assert_eq!(
        evicted(&cluster, "besteffort"),
        "Failed|Evicted|Pod was rejected: The node had condition: [MemoryPressure]. "
    );
    cluster.apply(&bound("burstable", "{requests: {memory: 1Ki}}"));
    let burstable = evicted(&cluster, "burstable");
    assert!(
        burstable.starts_with(
            "Failed|Evicted|The node was low on resource: memory. Threshold quantity: "
        ),
        "{burstable}"
    );
    assert_eq!(
        cluster.jsonpath(
            &["pod", "burstable"],
            "{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}"
        ),
        "TerminationByKubelet"
    );
}

#[test]
fn static_pods_ephemeral_containers_and_followed_logs() {
    let cluster = Cluster::start();
    let image = cluster.registry.image(1);
    // A static pod from the manifest directory, mirrored in the API.
    let manifests = cluster.dir.path().join("agent/pod-manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("static-web.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {image}\n    command: [\"sh\", \"-c\", \"i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done\"]\n"
        ),
    )
    .unwrap();
    let node = cluster.jsonpath(&["nodes"], "{.items[0].metadata.name}");
    let mirror = format!("static-web-{node}");
    cluster.wait_running(&mirror);
    let annotations = cluster.jsonpath(&["pod", &mirror], "{.metadata.annotations}");
    assert!(
        annotations.contains("kubernetes.io/config.mirror"),
        "annotations: {annotations}"
    );
    // logs -f follows the output as it is written.
    let out = cluster
        .kubectl_command("1.33", &["logs", "-f", &mirror, "--request-timeout=4s"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().filter(|l| l.starts_with("tick")).count() >= 3,
        "followed: {text}"
    );
    // An ephemeral container added with kubectl debug runs once and keeps its log.
    cluster.kubectl(&[
        "debug",
        &mirror,
        "--image",
        &image,
        "-c",
        "dbg",
        "--",
        "sh",
        "-c",
        "echo debugging",
    ]);
    cluster.eventually(
        "the ephemeral container done",
        Duration::from_secs(60),
        || {
            let code = cluster.jsonpath(
                &["pod", &mirror],
                "{.status.ephemeralContainerStatuses[0].state.terminated.exitCode}",
            );
            (code == "0").then_some(())
        },
    );
    assert!(
        cluster
            .kubectl(&["logs", &mirror, "-c", "dbg"])
            .contains("debugging")
    );
    // Removing the manifest removes the pod.
    std::fs::remove_file(manifests.join("static-web.yaml")).unwrap();
    cluster.eventually("the mirror pod gone", Duration::from_secs(60), || {
        cluster
            .try_kubectl("1.33", &["get", "pod", &mirror])
            .is_none()
            .then_some(())
    });
}

impl Cluster {
    /// The pod bridge's name (the `--pod-bridge` flag).
    fn bridge(&self) -> String {
        let at = self.args.iter().position(|a| a == "--pod-bridge").unwrap();
        self.args[at + 1].clone()
    }

    /// `wget` from inside a pod: Ok(body) or Err(what wget said). URLs carry their port (the
    /// static busybox cannot look service names up) and `timeout` bounds the wait (its wget's
    /// own -T crashes).
    fn wget_in(&self, pod: &str, url: &str) -> Result<String, String> {
        let out = self
            .kubectl_command(
                "1.33",
                &["exec", pod, "--", "timeout", "5", "wget", "-q", "-O-", url],
            )
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

#[test]
fn services_reach_ready_pods_by_cluster_ip_and_node_port() {
    let cluster = Cluster::start();
    let image = cluster.registry.image(1);
    cluster.apply(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: {image}
        command: ["sh", "-c", "hostname > /var/www/index.html; exec httpd -f -p 8080 -h /var/www"]
        ports: [{{containerPort: 8080, name: http}}]
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web-lb}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {{app: web}}
  ports: [{{port: 8081, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: nobody}}
spec:
  selector: {{app: nobody}}
  ports: [{{port: 80}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {image}
    command: ["sleep", "3600"]
"#
    ));
    cluster.eventually("the deployment available", Duration::from_secs(90), || {
        (cluster.jsonpath(&["deployment", "web"], "{.status.availableReplicas}") == "2")
            .then_some(())
    });
    cluster.wait_running("client");
    // The node's rules are in place before any traffic goes to a service address.
    let table = format!("rkube-proxy-{}", cluster.bridge());
    let listed = Command::new("nft")
        .args(["list", "table", "ip", &table])
        .output()
        .unwrap();
    assert!(listed.status.success(), "the proxy's table {table} exists");
    let cluster_ip = cluster.jsonpath(&["service", "web"], "{.spec.clusterIP}");
    let node_port = cluster.jsonpath(&["service", "web"], "{.spec.ports[0].nodePort}");
    let pods = cluster.jsonpath(&["pods", "-l", "app=web"], "{.items[*].metadata.name}");
    // Both ready pods answer through the cluster IP.
    let mut seen = std::collections::BTreeSet::new();
    cluster.eventually(
        "both pods behind the cluster IP",
        Duration::from_secs(60),
        || {
            if let Ok(body) = cluster.wget_in("client", &format!("http://{cluster_ip}:80/")) {
                seen.insert(body.trim().to_owned());
            }
            (seen.len() == 2).then_some(())
        },
    );
    for name in &seen {
        assert!(pods.contains(name.as_str()), "{name} is one of {pods}");
    }
    // A pod reaches its own service (hairpin).
    let first = pods.split_whitespace().next().unwrap();
    cluster.eventually(
        "a pod through its own service",
        Duration::from_secs(30),
        || {
            cluster
                .wget_in(first, &format!("http://{cluster_ip}:80/"))
                .ok()
        },
    );
    // The node port answers on the node's addresses: the pod bridge's, from a pod and from
    // the host.
    let pod_ip = cluster.jsonpath(&["pod", "client"], "{.status.podIP}");
    let gateway = format!("{}.1", pod_ip.rsplit_once('.').map(|(net, _)| net).unwrap());
    let via_node_port = cluster
        .wget_in("client", &format!("http://{gateway}:{node_port}/"))
        .unwrap();
    assert!(pods.contains(via_node_port.trim()), "{via_node_port}");
    let from_host = http_get(&format!("{gateway}:{node_port}")).unwrap_or_default();
    assert!(from_host.contains("200 OK"), "from the host: {from_host}");
    // Cluster DNS through the kube-dns Service: pods' resolv.conf points at it.
    let resolv = cluster.kubectl(&["exec", "client", "--", "cat", "/etc/resolv.conf"]);
    let dns_ip = cluster.jsonpath(
        &["service", "kube-dns", "-n", "kube-system"],
        "{.spec.clusterIP}",
    );
    assert!(resolv.contains(&format!("nameserver {dns_ip}")), "{resolv}");
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    assert!(resolv.contains("ndots:5"), "{resolv}");
    let answer = cluster.eventually(
        "the service's name resolved",
        Duration::from_secs(30),
        || {
            cluster.try_kubectl(
                "1.33",
                &[
                    "exec",
                    "client",
                    "--",
                    "nslookup",
                    "-type=a",
                    "web.default.svc.cluster.local",
                ],
            )
        },
    );
    assert!(answer.contains(&cluster_ip), "{answer}");
    let missing = cluster
        .kubectl_command(
            "1.33",
            &[
                "exec",
                "client",
                "--",
                "nslookup",
                "-type=a",
                "nothing.default.svc.cluster.local",
            ],
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&missing.stdout).into_owned()
        + &String::from_utf8_lossy(&missing.stderr);
    assert!(text.contains("NXDOMAIN"), "{text}");
    // The built-in load balancer gives LoadBalancer Services the node's address.
    cluster.eventually(
        "the load balancer's address",
        Duration::from_secs(30),
        || {
            let ip = cluster.jsonpath(
                &["service", "web-lb"],
                "{.status.loadBalancer.ingress[0].ip}",
            );
            (ip == "127.0.0.1").then_some(())
        },
    );
    // Its health check node port says how many endpoints the node has.
    let check = cluster.jsonpath(&["service", "web-lb"], "{.spec.healthCheckNodePort}");
    let health = cluster.eventually("the health check port", Duration::from_secs(30), || {
        http_get(&format!("127.0.0.1:{check}")).filter(|b| b.contains("localEndpoints"))
    });
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#""localEndpoints":2"#), "{health}");
    // The proxy's and DNS's metrics.
    let at = cluster
        .args
        .iter()
        .position(|a| a == "--proxy-metrics-port")
        .unwrap();
    let metrics = http_get_path(&format!("127.0.0.1:{}", cluster.args[at + 1]), "/metrics")
        .unwrap_or_default();
    assert!(
        metrics.contains("kubeproxy_sync_proxy_rules_duration_seconds_count"),
        "{metrics}"
    );
    assert!(metrics.contains("rkube_dns_responses_total"), "{metrics}");
    // A service without endpoints refuses at once.
    let nobody = cluster.jsonpath(&["service", "nobody"], "{.spec.clusterIP}");
    let refused = cluster
        .wget_in("client", &format!("http://{nobody}:80/"))
        .unwrap_err();
    assert!(refused.contains("refused"), "{refused}");
    // Scaled to zero: the service refuses too.
    cluster.kubectl(&["scale", "deployment", "web", "--replicas=0"]);
    cluster.eventually(
        "the service without endpoints",
        Duration::from_secs(60),
        || {
            cluster
                .wget_in("client", &format!("http://{cluster_ip}:80/"))
                .err()
                .filter(|e| e.contains("refused"))
        },
    );
    // The health check answers from the proxy's next sync on.
    cluster.eventually(
        "the health check to report no local endpoints",
        Duration::from_secs(10),
        || http_get(&format!("127.0.0.1:{check}")).filter(|h| h.starts_with("HTTP/1.1 503")),
    );
}

#[test]
fn network_policies_admit_only_the_traffic_they_allow() {
    let cluster = Cluster::start();
    let image = cluster.registry.image(1);
    let pod = |name: &str, labels: &str, command: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{{labels}}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {image}
    command: ["sh", "-c", "{command}"]
    ports: [{{containerPort: 8080, name: http}}]
---"#
        )
    };
    let server = "hostname > /var/www/index.html; exec httpd -f -p 8080 -h /var/www";
    cluster.apply(&format!(
        "{}{}{}",
        pod("db", "app: db", server),
        pod("frontend", "role: frontend", "sleep 3600"),
        pod("other", "role: other", "sleep 3600"),
    ));
    for name in ["db", "frontend", "other"] {
        cluster.wait_running(name);
    }
    let db = cluster.jsonpath(&["pod", "db"], "{.status.podIP}");
    let url = format!("http://{db}:8080/");
    // No policy selects db: everyone reaches it.
    for client in ["frontend", "other"] {
        cluster.eventually(
            "db reachable before any policy",
            Duration::from_secs(30),
            || cluster.wget_in(client, &url).ok(),
        );
    }
    cluster.apply(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-frontend}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {role: frontend}}}]
    ports: [{port: http}]
"#,
    );
    cluster.eventually("other shut out", Duration::from_secs(30), || {
        cluster.wget_in("other", &url).err()
    });
    let body = cluster.wget_in("frontend", &url).unwrap();
    assert_eq!(body.trim(), "db");
    // The node itself (probes) still reaches db.
    assert!(
        http_get(&format!("{db}:8080"))
            .unwrap_or_default()
            .contains("200 OK")
    );
    // Relabelled, other is let in; the policy gone, everyone is.
    cluster.kubectl(&["label", "pod", "other", "role=frontend", "--overwrite"]);
    cluster.eventually("relabelled other let in", Duration::from_secs(30), || {
        cluster.wget_in("other", &url).ok()
    });
    cluster.kubectl(&["label", "pod", "other", "role=other", "--overwrite"]);
    cluster.eventually("other shut out again", Duration::from_secs(30), || {
        cluster.wget_in("other", &url).err()
    });
    cluster.kubectl(&["delete", "networkpolicy", "db-from-frontend"]);
    cluster.eventually(
        "other let in without the policy",
        Duration::from_secs(30),
        || cluster.wget_in("other", &url).ok(),
    );
}

/// A second node: `rkube agent` joined to a cluster's server with the server's node token,
/// with a data directory, bridge, cgroup root and ports of its own.
struct JoinedAgent {
    child: Child,
    dir: tempfile::TempDir,
    name: String,
    netns: Option<String>,
}

impl Drop for JoinedAgent {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = rkube_in(self.netns.as_deref())
            .args(["killall", "--data-dir"])
            .arg(self.dir.path())
            .status();
    }
}

impl Cluster {
    fn arg(&self, flag: &str) -> String {
        let at = self.args.iter().position(|a| a == flag).unwrap();
        self.args[at + 1].clone()
    }

    fn set_arg(&mut self, flag: &str, value: &str) {
        let at = self.args.iter().position(|a| a == flag).unwrap();
        self.args[at + 1] = value.to_owned();
    }

    fn join_agent(&self) -> JoinedAgent {
        self.join_agent_as(None, "127.0.0.1")
    }

    /// An agent joined from host `i` of `net`.
    fn join_agent_on(&self, net: &TestNet, i: usize) -> JoinedAgent {
        self.join_agent_as(Some(&net.hosts[i]), &net.host_ip(i))
    }

    fn join_agent_as(&self, netns: Option<&str>, ip: &str) -> JoinedAgent {
        let dir = tempfile::tempdir().unwrap();
        let id = unique();
        let name = format!("node-b-{id}");
        let token = std::fs::read_to_string(self.dir.path().join("node-token")).unwrap();
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        let server = self
            .server_url
            .clone()
            .unwrap_or_else(|| format!("https://127.0.0.1:{}", self.arg("--https-listen-port")));
        let child = rkube_in(netns)
            .args(["agent", "--server"])
            .arg(server)
            .args(["--token", token.trim(), "--data-dir"])
            .arg(dir.path())
            .args(["--node-name", &name, "--node-ip", ip])
            .args(["--kubelet-port", &free_port().to_string()])
            .args(["--proxy-metrics-port", &free_port().to_string()])
            .args(["--pod-bridge", &format!("rkb{id}")])
            .args(["--cgroup-root", &format!("/rkube-test-{id}")])
            .args(["--cluster-cidr", &self.arg("--cluster-cidr")])
            .args(["--service-cidr", &self.arg("--service-cidr")])
            .args(["--registries-config", &self.arg("--registries-config")])
            .args(["--eviction-hard", TEST_EVICTION_HARD])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start rkube agent");
        let agent = JoinedAgent {
            child,
            dir,
            name,
            netns: netns.map(str::to_owned),
        };
        self.eventually("the second node Ready", Duration::from_secs(90), || {
            let ready = self.jsonpath(
                &["node", &agent.name],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            );
            (ready == "True").then_some(())
        });
        agent
    }
}

/// The containers of the tests' web Deployments: httpd serving the pod's name, ready once it
/// answers (a pod template's `containers` at six spaces).
fn web_containers(image: &str) -> String {
    format!(
        r#"      containers:
      - name: httpd
        image: {image}
        command: ["sh", "-c", "hostname > /var/www/index.html; exec httpd -f -p 8080 -h /var/www"]
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
"#
    )
}

#[test]
fn pods_on_two_nodes_reach_each_other_directly_through_services_and_by_name() {
    let cluster = Cluster::start();
    let agent = cluster.join_agent();
    let node_a = cluster.jsonpath(
        &["nodes", "-l", "node-role.kubernetes.io/control-plane"],
        "{.items[0].metadata.name}",
    );
    let image = cluster.registry.image(1);
    let containers = web_containers(&image);
    let client = |name: &str, node: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n---\n"
        )
    };
    cluster.apply(&format!(
        r#"{}{}
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {{matchLabels: {{app: web}}}}
            topologyKey: kubernetes.io/hostname
{containers}---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"#,
        client("client-a", &node_a),
        client("client-b", &agent.name),
    ));
    cluster.eventually("one web pod per node", Duration::from_secs(120), || {
        (cluster.jsonpath(&["deployment", "web"], "{.status.availableReplicas}") == "2")
            .then_some(())
    });
    cluster.wait_running("client-a");
    cluster.wait_running("client-b");
    let nodes = cluster.jsonpath(&["pods", "-l", "app=web"], "{.items[*].spec.nodeName}");
    assert!(
        nodes.contains(&node_a) && nodes.contains(&agent.name),
        "{nodes}"
    );
    // Each client reaches both web pods at their own addresses: one on its node, one across.
    let ips = cluster.jsonpath(&["pods", "-l", "app=web"], "{.items[*].status.podIP}");
    for client in ["client-a", "client-b"] {
        for ip in ips.split_whitespace() {
            let body = cluster
                .wget_in(client, &format!("http://{ip}:8080/"))
                .unwrap_or_else(|e| panic!("{client} to {ip}: {e}"));
            assert!(body.starts_with("web-"), "{body}");
        }
    }
    // Through the Service from the second node, both pods answer.
    let cluster_ip = cluster.jsonpath(&["service", "web"], "{.spec.clusterIP}");
    let mut seen = std::collections::BTreeSet::new();
    cluster.eventually(
        "both pods through the service",
        Duration::from_secs(60),
        || {
            if let Ok(body) = cluster.wget_in("client-b", &format!("http://{cluster_ip}:80/")) {
                seen.insert(body.trim().to_owned());
            }
            (seen.len() == 2).then_some(())
        },
    );
    // Both nodes serve cluster DNS, and a pod on the second node resolves the Service.
    cluster.eventually("a DNS endpoint per node", Duration::from_secs(30), || {
        let slices = cluster.jsonpath(
            &[
                "endpointslices",
                "-n",
                "kube-system",
                "-l",
                "kubernetes.io/service-name=kube-dns",
            ],
            "{.items[*].endpoints[*].nodeName}",
        );
        (slices.contains(&node_a) && slices.contains(&agent.name)).then_some(())
    });
    let answer = cluster.eventually(
        "the name from the second node",
        Duration::from_secs(30),
        || {
            cluster.try_kubectl(
                "1.33",
                &[
                    "exec",
                    "client-b",
                    "--",
                    "nslookup",
                    "-type=a",
                    "web.default.svc.cluster.local",
                ],
            )
        },
    );
    assert!(answer.contains(&cluster_ip), "{answer}");
}

/// Network namespaces standing in for hosts: each has one interface, with an address of its
/// own in a /24 of 100.64.0.0/10, on a bridge the test makes in its own namespace. All of it
/// goes when the value is dropped (declare it before the clusters that use it).
struct TestNet {
    bridge: String,
    prefix: String,
    hosts: Vec<String>,
}

impl TestNet {
    fn new(count: usize) -> TestNet {
        let id = unique();
        let r = rand_u32();
        let net = TestNet {
            bridge: format!("rkn{id}"),
            prefix: format!("100.{}.{}", 64 + (r >> 8) % 64, r % 256),
            hosts: (0..count).map(|i| format!("rkn{id}-{i}")).collect(),
        };
        let run = |args: &[&str]| {
            let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
            assert!(status.success(), "{args:?}");
        };
        run(&["ip", "link", "add", &net.bridge, "type", "bridge"]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}.1/24", net.prefix),
            "dev",
            &net.bridge,
        ]);
        run(&["ip", "link", "set", &net.bridge, "up"]);
        for i in 0..count {
            let ns = &net.hosts[i];
            let (host_end, inner) = (net.link(i), format!("{}p{i}", net.bridge));
            run(&["ip", "netns", "add", ns]);
            run(&[
                "ip", "link", "add", &host_end, "type", "veth", "peer", "name", &inner, "netns", ns,
            ]);
            run(&["ip", "link", "set", &host_end, "master", &net.bridge, "up"]);
            let exec = |args: &[&str]| {
                let mut all = vec!["ip", "netns", "exec", ns];
                all.extend_from_slice(args);
                run(&all);
            };
            exec(&["ip", "link", "set", "lo", "up"]);
            exec(&[
                "ip",
                "addr",
                "add",
                &format!("{}/24", net.host_ip(i)),
                "dev",
                &inner,
            ]);
            exec(&["ip", "link", "set", &inner, "up"]);
            exec(&[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &format!("{}.1", net.prefix),
            ]);
        }
        net
    }

    fn host_ip(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, 11 + i)
    }

    /// Host `i`'s link on the bridge: down, the host is cut off.
    fn link(&self, i: usize) -> String {
        format!("{}v{i}", self.bridge)
    }

    /// A registry on host `i`'s loopback, at the same port as `shared` and serving its
    /// images, so image names are the same on every host.
    fn registry(&self, i: usize, shared: &Registry) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = shared.address.rsplit(':').next().unwrap().to_owned();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[i], "python3"])
            .arg(tools().join("registry.py"))
            .args(["serve", "--root"])
            .arg(dir.path())
            .args(["--port", &port, "--storage"])
            .arg(shared._dir.path().join("storage"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start a registry");
        // It prints its address once it answers.
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), shared.address, "the registry on host {i}");
        Registry {
            child,
            address: shared.address.clone(),
            _dir: dir,
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

#[test]
fn nodes_in_their_own_network_namespaces_serve_services_and_route_around_a_node_cut_off() {
    let net = TestNet::new(3);
    let registry = Registry::start();
    let local: Vec<Registry> = (0..3).map(|i| net.registry(i, &registry)).collect();
    let cluster = Cluster::start_on(
        &net,
        0,
        registry,
        local,
        &["--node-monitor-grace-period", "20s"],
    );
    let node_a = cluster.jsonpath(
        &["nodes", "-l", "node-role.kubernetes.io/control-plane"],
        "{.items[0].metadata.name}",
    );
    let b = cluster.join_agent_on(&net, 1);
    let c = cluster.join_agent_on(&net, 2);
    let image = cluster.registry.image(1);
    let containers = web_containers(&image);
    cluster.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: {node_a}
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {image}
    command: ["sleep", "3600"]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}}
      - {{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              labelSelector: {{matchLabels: {{app: web}}}}
              topologyKey: kubernetes.io/hostname
{containers}---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    ));
    cluster.eventually("a web pod on every node", Duration::from_secs(180), || {
        (cluster.jsonpath(&["deployment", "web"], "{.status.availableReplicas}") == "3")
            .then_some(())
    });
    cluster.wait_running("client");
    let nodes = cluster.jsonpath(&["pods", "-l", "app=web"], "{.items[*].spec.nodeName}");
    for node in [&node_a, &b.name, &c.name] {
        assert!(nodes.contains(node.as_str()), "{nodes}");
    }
    let cluster_ip = cluster.jsonpath(&["service", "web"], "{.spec.clusterIP}");
    let through_service = |seen: &mut std::collections::BTreeSet<String>| {
        if let Ok(body) = cluster.wget_in("client", &format!("http://{cluster_ip}:80/")) {
            seen.insert(body.trim().to_owned());
        }
    };
    // Each pod answers through the ClusterIP from the first host: two of them on other hosts.
    let mut seen = std::collections::BTreeSet::new();
    cluster.eventually(
        "all three pods through the service",
        Duration::from_secs(60),
        || {
            through_service(&mut seen);
            (seen.len() == 3).then_some(())
        },
    );
    // From outside the cluster's hosts: the node port on every host, and the load balancer
    // at the hosts' addresses.
    let node_port = cluster.jsonpath(&["service", "web"], "{.spec.ports[0].nodePort}");
    for i in 0..3 {
        let address = format!("{}:{node_port}", net.host_ip(i));
        let body = cluster.eventually(
            &format!("the node port at {address}"),
            Duration::from_secs(30),
            || http_get(&address),
        );
        assert!(body.contains("web-"), "{body}");
    }
    let ingress = cluster.eventually("load balancer ingress", Duration::from_secs(30), || {
        let ips = cluster.jsonpath(&["service", "web"], "{.status.loadBalancer.ingress[*].ip}");
        (ips.split_whitespace().count() == 3).then_some(ips)
    });
    for i in 0..3 {
        assert!(ingress.contains(&net.host_ip(i)), "{ingress}");
    }
    let body = cluster.eventually("the load balancer", Duration::from_secs(30), || {
        http_get(&format!("{}:80", net.host_ip(1)))
    });
    assert!(body.contains("web-"), "{body}");
    let lookup = || {
        cluster.try_kubectl(
            "1.33",
            &[
                "exec",
                "client",
                "--",
                "nslookup",
                "-type=a",
                "web.default.svc.cluster.local",
            ],
        )
    };
    let answer = cluster.eventually("the service's name", Duration::from_secs(30), lookup);
    assert!(answer.contains(&cluster_ip), "{answer}");
    // Pods reach the API server through the `kubernetes` Service, also from another host.
    let api_ip = cluster.jsonpath(&["service", "kubernetes"], "{.spec.clusterIP}");
    let web_b = cluster.jsonpath(
        &[
            "pods",
            "-l",
            "app=web",
            "--field-selector",
            &format!("spec.nodeName={}", b.name),
        ],
        "{.items[0].metadata.name}",
    );
    for pod in ["client", web_b.as_str()] {
        // A TCP connection to the Service's port (busybox's TLS cannot talk to the server).
        let out = cluster
            .kubectl_command(
                "1.33",
                &[
                    "exec", pod, "--", "timeout", "5", "nc", "-w", "3", &api_ip, "443", "-e",
                    "true",
                ],
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{pod} to the API server: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Not a connection to anything: the same to an unserved port is refused.
    let out = cluster
        .kubectl_command(
            "1.33",
            &[
                "exec", "client", "--", "timeout", "5", "nc", "-w", "3", &api_ip, "444", "-e",
                "true",
            ],
        )
        .output()
        .unwrap();
    assert!(!out.status.success());

    // The third host is cut off: its node goes Unknown, its pod is replaced on the others and
    // the service (and cluster DNS) answer from what is left.
    let cut_pod = cluster.jsonpath(
        &[
            "pods",
            "-l",
            "app=web",
            "--field-selector",
            &format!("spec.nodeName={}", c.name),
        ],
        "{.items[0].metadata.name}",
    );
    let status = Command::new("ip")
        .args(["link", "set", &net.link(2), "down"])
        .status()
        .unwrap();
    assert!(status.success());
    cluster.eventually(
        "the cut-off node not Ready",
        Duration::from_secs(60),
        || {
            let ready = cluster.jsonpath(
                &["node", &c.name],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            );
            (ready == "Unknown").then_some(())
        },
    );
    cluster.eventually(
        "three ready pods on the other hosts",
        Duration::from_secs(120),
        || {
            let pods: serde_json::Value = serde_json::from_str(
                &cluster.try_kubectl("1.33", &["get", "pods", "-l", "app=web", "-o", "json"])?,
            )
            .ok()?;
            let ready = pods["items"]
                .as_array()?
                .iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .filter(|p| p["spec"]["nodeName"] != c.name.as_str())
                .filter(|p| {
                    p["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .count();
            (ready == 3).then_some(())
        },
    );
    // Routed around: every request answers, never from the pod on the cut-off host.
    cluster.eventually(
        "the service without the cut-off pod",
        Duration::from_secs(60),
        || {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..8 {
                match cluster.wget_in("client", &format!("http://{cluster_ip}:80/")) {
                    Ok(body) => seen.insert(body.trim().to_owned()),
                    Err(_) => return None,
                };
            }
            (!seen.contains(&cut_pod)).then_some(())
        },
    );
    for _ in 0..5 {
        let answer = lookup().expect("cluster DNS with a host cut off");
        assert!(answer.contains(&cluster_ip), "{answer}");
    }
    drop((b, c));
}
