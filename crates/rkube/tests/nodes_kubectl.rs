//! End to end: what the endpoint, node IPAM, quota and disruption controllers do, as a user
//! sees it through the real kubectl against the real `rkube server` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rkube_store_tests::free_port;

struct Cluster {
    child: Child,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args([
                "server",
                "--disable-agent",
                "--bind-address",
                "127.0.0.1",
                "--https-listen-port",
            ])
            .arg(free_port().to_string())
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rkube server");
        let cluster = Self { child, dir };
        cluster.eventually("the server ready", || {
            (cluster.kubeconfig().exists()
                && cluster.run(&["get", "--raw", "/readyz"]).status.success())
            .then_some(())
        });
        cluster
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .output()
            .expect("run kubectl")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "kubectl {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    fn apply(&self, manifest: &str) {
        let path = self.dir.path().join("manifest.yaml");
        std::fs::write(&path, manifest).unwrap();
        self.ok(&["apply", "-f", path.to_str().unwrap()]);
    }

    fn eventually<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Reports a pod Running and Ready, as its kubelet would.
    fn ready(&self, pod: &str, ip: &str) {
        let status = format!(
            r#"{{"status":{{"phase":"Running","podIP":"{ip}","conditions":[{{"type":"Ready","status":"True"}}]}}}}"#
        );
        self.ok(&[
            "patch",
            "pod",
            pod,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const WEB: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: node-a}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec:
  nodeName: node-a
  containers: [{name: c, image: nginx, ports: [{name: http, containerPort: 8080}]}]
"#;

#[test]
fn kubectl_shows_endpoints_pod_cidrs_quota_usage_and_budgets() {
    let c = Cluster::start();
    c.apply(WEB);
    c.ready("web-1", "10.42.0.5");

    // Endpoints and slices of the Service.
    c.eventually("the endpoints", || {
        c.ok(&["get", "endpoints", "web", "--no-headers"])
            .contains("10.42.0.5:8080")
            .then_some(())
    });
    let describe = c.ok(&["describe", "svc", "web"]);
    assert!(
        describe
            .lines()
            .any(|l| l.starts_with("Endpoints:") && l.ends_with("10.42.0.5:8080")),
        "{describe}"
    );
    let slices = c.ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "--no-headers",
    ]);
    assert!(
        slices.contains("IPv4") && slices.contains("8080") && slices.contains("10.42.0.5"),
        "{slices}"
    );

    // The node's pod CIDR.
    let cidr = c.eventually("a pod CIDR", || {
        let cidr = c.ok(&["get", "node", "node-a", "-o", "jsonpath={.spec.podCIDR}"]);
        (!cidr.is_empty()).then_some(cidr)
    });
    assert_eq!(cidr, "10.42.0.0/24");

    // Quota usage, and a create beyond it.
    c.ok(&["create", "namespace", "team"]);
    c.ok(&[
        "create",
        "quota",
        "small",
        "-n",
        "team",
        "--hard=pods=2,services=5",
    ]);
    c.eventually("the quota counted", || {
        let out = c.ok(&[
            "get",
            "quota",
            "small",
            "-n",
            "team",
            "-o",
            "jsonpath={.status.used.pods}",
        ]);
        (out == "0").then_some(())
    });
    c.ok(&["run", "p1", "-n", "team", "--image=nginx"]);
    c.ok(&["run", "p2", "-n", "team", "--image=nginx"]);
    let refused = c.fails(&["run", "p3", "-n", "team", "--image=nginx"]);
    assert!(
        refused.contains(
            r#"Error from server (Forbidden): pods "p3" is forbidden: exceeded quota: small, requested: pods=1, used: pods=2, limited: pods=2"#
        ),
        "{refused}"
    );
    let quota = c.ok(&["describe", "quota", "small", "-n", "team"]);
    let rows: Vec<Vec<&str>> = quota
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.len() == 3)
        .collect();
    assert!(rows.contains(&vec!["pods", "2", "2"]), "{quota}");
    assert!(rows.contains(&vec!["services", "0", "5"]), "{quota}");

    // A budget's status as `kubectl get pdb` shows it.
    c.ok(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--min-available=1",
    ]);
    c.eventually("the budget's status", || {
        let out = c.ok(&[
            "get",
            "pdb",
            "web",
            "-o",
            "jsonpath={.status.currentHealthy}/{.status.disruptionsAllowed}",
        ]);
        (out == "1/0").then_some(())
    });
    let pdb = c.ok(&["get", "pdb", "web", "--no-headers"]);
    let cols: Vec<&str> = pdb.split_whitespace().collect();
    assert_eq!(&cols[..4], ["web", "1", "N/A", "0"], "{pdb}");
}
