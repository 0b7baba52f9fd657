//! End to end: StatefulSets, DaemonSets, Jobs and CronJobs driven by the real kubectl against
//! the real `rkube server` binary. No kubelet runs, so the test marks pods Running and Ready
//! through the status subresource, as a node would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cluster, Kubectl};

/// What a node would do for these tests.
trait PlayNodes {
    /// Marks every pod with `label` that is not Running as Running and Ready, until all pods
    /// with it run `image`, and there are `count` of them.
    fn run_pods(&self, label: &str, image: &str, count: usize);
}

impl PlayNodes for Kubectl {
    fn run_pods(&self, label: &str, image: &str, count: usize) {
        self.eventually(&format!("{count} pods of {label} on {image}"), || {
            let listing = self.ok(&[
                "get", "pods", "-l", label, "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.spec.containers[0].image} {.status.phase}{\"\\n\"}{end}",
            ]);
            let pods: Vec<Vec<&str>> = listing.lines().map(|l| l.split(' ').collect()).collect();
            let mut settled = pods.len() == count;
            for pod in &pods {
                if pod.get(2) != Some(&"Running") {
                    let status = r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;
                    self.try_run(&["patch", "pod", pod[0], "--subresource=status", "--type=merge", "-p", status]);
                    settled = false;
                }
                if pod.get(1) != Some(&image) {
                    settled = false;
                }
            }
            settled.then_some(())
        });
    }
}

const STATEFUL_SET: &str = r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 2
  serviceName: nginx
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec: {containers: [{name: nginx, image: "nginx:1.25"}]}
"#;

const DAEMON_SET: &str = r#"apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: "agent:1"}]}
"#;

fn revisions(history: &str) -> Vec<String> {
    history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn rollouts(version: &str) {
    let c = Cluster::start(version);

    // StatefulSet: status, history, undo.
    c.apply(STATEFUL_SET);
    c.run_pods("app=nginx", "nginx:1.25", 2);
    let status = c.ok(&["rollout", "status", "sts/web", "--timeout=30s"]);
    assert!(status.contains("roll out complete"), "{status}");
    c.ok(&["set", "image", "sts/web", "nginx=nginx:1.26"]);
    c.run_pods("app=nginx", "nginx:1.26", 2);
    c.ok(&["rollout", "status", "sts/web", "--timeout=30s"]);
    assert_eq!(
        revisions(&c.ok(&["rollout", "history", "sts/web"])),
        ["1", "2"]
    );
    let first = c.ok(&["rollout", "history", "sts/web", "--revision=1"]);
    assert!(first.contains("nginx:1.25"), "{first}");
    c.ok(&["rollout", "undo", "sts/web", "--to-revision=1"]);
    c.run_pods("app=nginx", "nginx:1.25", 2);
    c.ok(&["rollout", "status", "sts/web", "--timeout=30s"]);
    assert_eq!(
        revisions(&c.ok(&["rollout", "history", "sts/web"])),
        ["2", "3"]
    );
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
    ]);
    assert!(
        events.contains("create Pod web-0 in StatefulSet web successful"),
        "{events}"
    );

    // DaemonSet: one pod per node, status, history, undo.
    c.apply(DAEMON_SET);
    c.run_pods("app=agent", "agent:1", 2);
    let status = c.ok(&["rollout", "status", "ds/agent", "--timeout=30s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    c.ok(&["set", "image", "ds/agent", "agent=agent:2"]);
    c.run_pods("app=agent", "agent:2", 2);
    c.ok(&["rollout", "status", "ds/agent", "--timeout=30s"]);
    c.ok(&["rollout", "undo", "ds/agent"]);
    c.run_pods("app=agent", "agent:1", 2);
    assert_eq!(
        revisions(&c.ok(&["rollout", "history", "ds/agent"])),
        ["2", "3"]
    );
    let ds = c.ok(&[
        "get",
        "ds",
        "agent",
        "-o",
        "jsonpath={.status.desiredNumberScheduled}/{.status.updatedNumberScheduled}",
    ]);
    assert_eq!(ds, "2/2");

    // A Job from a CronJob's template runs a pod.
    c.ok(&[
        "create",
        "cronjob",
        "hello",
        "--image=busybox",
        "--schedule=*/5 * * * *",
        "--",
        "echo",
        "hi",
    ]);
    c.ok(&["create", "job", "manual", "--from=cronjob/hello"]);
    c.eventually("the manual job's pod", || {
        let pods = c.ok(&[
            "get",
            "pods",
            "-l",
            "batch.kubernetes.io/job-name=manual",
            "-o",
            "name",
        ]);
        (!pods.trim().is_empty()).then_some(())
    });
    let active = c.ok(&["get", "job", "manual", "-o", "jsonpath={.status.active}"]);
    assert_eq!(active, "1");
}

#[test]
fn kubectl_1_33_rolls_out_stateful_sets_and_daemon_sets_and_runs_jobs() {
    rollouts("1.33");
}

#[test]
fn kubectl_1_32_rolls_out_stateful_sets_and_daemon_sets_and_runs_jobs() {
    rollouts("1.32");
}
