//! End to end: what the endpoint, node IPAM, quota and disruption controllers do, as a user
//! sees it through the real kubectl against the real `rkube server` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cluster, Kubectl};

/// What a kubelet would report.
trait ReportReady {
    /// Reports a pod Running and Ready, as its kubelet would.
    fn ready(&self, pod: &str, ip: &str);
}

impl ReportReady for Kubectl {
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
    let c = Cluster::start("1.33");
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
