//! End to end: Deployments driven by the real kubectl 1.33 against the real `rkube server`
//! (controllers in process): rollout status, set image, history, undo (with and without
//! --to-revision), scale, pause and resume, restart, and deletion cascading to ReplicaSets
//! and pods. No kubelet runs, so a helper thread plays the nodes with kubectl: it marks pods
//! Running and Ready through the status subresource and completes pod deletions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Kubectl;
use rkube_store_tests::EtcdServer;

/// A server with a helper thread playing its nodes.
struct Cluster {
    server: common::Cluster,
    nodes_stop: Arc<AtomicBool>,
    nodes: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes_stop.store(true, Ordering::SeqCst);
        if let Some(nodes) = self.nodes.take() {
            let _ = nodes.join();
        }
    }
}

fn start() -> Cluster {
    let server = common::Cluster::start("1.33");
    let nodes_stop = Arc::new(AtomicBool::new(false));
    let nodes = {
        let (kubectl, stop) = (server.kubectl.clone(), nodes_stop.clone());
        std::thread::spawn(move || play_nodes(&kubectl, &stop))
    };
    Cluster {
        server,
        nodes_stop,
        nodes: Some(nodes),
    }
}

/// What kubelets would do for these tests: report new pods Running and Ready, and finish
/// deleting pods whose deletion started.
fn play_nodes(k: &Kubectl, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let out = k.run(&["get", "pods", "-A", "-o", "json"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        for pod in list["items"].as_array().cloned().unwrap_or_default() {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
            if pod["metadata"]["deletionTimestamp"].is_string() {
                k.run(&[
                    "delete",
                    "pod",
                    "-n",
                    ns,
                    name,
                    "--grace-period=0",
                    "--force",
                ]);
                continue;
            }
            let ready = pod["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            if !ready {
                let now = k8s_now();
                let patch = serde_json::json!({"status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                }});
                k.run(&[
                    "patch",
                    "pod",
                    "-n",
                    ns,
                    name,
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    &patch.to_string(),
                ]);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn k8s_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // RFC 3339 in UTC from the Unix time (civil-from-days).
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn images(k: &Kubectl) -> Vec<String> {
    let pods = k.json(&["get", "pods", "-l", "app=web", "-o", "json"]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !p["metadata"]["deletionTimestamp"].is_string())
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn rollout_status(k: &Kubectl) {
    let out = k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
}

fn revisions(k: &Kubectl) -> Vec<String> {
    let history = k.ok(&["rollout", "history", "deployment/web"]);
    history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn kubectl_rolls_out_scales_undoes_and_deletes_a_deployment() {
    let c = start();
    let k = &c.server.kubectl;
    k.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=3",
    ]);
    rollout_status(k);
    assert_eq!(images(k), ["nginx:1.25"; 3]);

    k.ok(&["set", "image", "deployment/web", "nginx=nginx:1.26"]);
    rollout_status(k);
    k.until("old pods are gone", |k| images(k) == ["nginx:1.26"; 3]);
    assert_eq!(revisions(k), ["1", "2"]);
    let rev1 = k.ok(&["rollout", "history", "deployment/web", "--revision=1"]);
    assert!(rev1.contains("nginx:1.25"), "{rev1}");

    let undo = k.ok(&["rollout", "undo", "deployment/web"]);
    assert!(undo.contains("rolled back"), "{undo}");
    rollout_status(k);
    k.until("pods run the first image again", |k| {
        images(k) == ["nginx:1.25"; 3]
    });
    assert_eq!(revisions(k), ["2", "3"]);
    let rs = k.json(&["get", "rs", "-l", "app=web", "-o", "json"]);
    assert_eq!(
        rs["items"].as_array().unwrap().len(),
        2,
        "the first ReplicaSet is reused"
    );

    k.ok(&["rollout", "undo", "deployment/web", "--to-revision=2"]);
    rollout_status(k);
    k.until("pods run the second image again", |k| {
        images(k) == ["nginx:1.26"; 3]
    });

    let scaled = k.ok(&["scale", "deployment/web", "--replicas=5"]);
    assert!(scaled.contains("scaled"), "{scaled}");
    rollout_status(k);
    k.until("five pods run", |k| images(k).len() == 5);

    k.ok(&["rollout", "pause", "deployment/web"]);
    k.ok(&["set", "image", "deployment/web", "nginx=nginx:1.27"]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !images(k).iter().any(|i| i == "nginx:1.27"),
        "a paused deployment rolled out"
    );
    k.ok(&["rollout", "resume", "deployment/web"]);
    rollout_status(k);
    k.until("the resumed rollout finishes", |k| {
        images(k) == ["nginx:1.27"; 5]
    });

    let before: Vec<String> = k
        .ok(&["get", "pods", "-l", "app=web", "-o", "name"])
        .lines()
        .map(str::to_owned)
        .collect();
    k.ok(&["rollout", "restart", "deployment/web"]);
    rollout_status(k);
    k.until("every pod is replaced", |k| {
        let now = k.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
        now.lines().count() == 5 && now.lines().all(|p| !before.iter().any(|b| b == p))
    });

    let describe = k.ok(&["describe", "deployment", "web"]);
    assert!(describe.contains("ScalingReplicaSet"), "{describe}");
    assert!(
        describe.contains("Scaled up replica set web-"),
        "{describe}"
    );

    k.ok(&["delete", "deployment", "web"]);
    k.until("replica sets and pods are gone", |k| {
        let left = k.ok(&["get", "rs,pods", "-l", "app=web", "-o", "name"]);
        left.trim().is_empty()
    });
}

fn lease_holder(k: &Kubectl) -> String {
    let out = k.run(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-controller-manager",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn web_pods(k: &Kubectl) -> usize {
    k.ok(&["get", "pods", "-l", "app=web", "-o", "name"])
        .lines()
        .count()
}

#[test]
fn of_two_servers_on_one_etcd_one_runs_the_controllers_and_the_other_takes_over() {
    let etcd = EtcdServer::start();
    let endpoint = etcd.endpoint().replace("http://", "etcd://");
    let endpoint = ["--datastore-endpoint", endpoint.as_str()];
    let mut first = common::Cluster::start_with("1.33", &endpoint);
    let a = first.kubectl.clone();
    a.until("the first server leads", |k| !lease_holder(k).is_empty());
    let leader = lease_holder(&a);
    let second = common::Cluster::start_with("1.33", &endpoint);
    let b = &second.kubectl;
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lease_holder(b), leader, "the leader keeps its lease");

    b.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    b.until("two pods exist", |k| web_pods(k) == 2);

    // A clean stop releases the lease: the other server takes over at its next try.
    first.terminate();
    let stopped = Instant::now();
    b.until("the second server leads", |k| {
        let holder = lease_holder(k);
        !holder.is_empty() && holder != leader
    });
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "takeover took longer than the lease duration"
    );
    b.ok(&["scale", "deployment/web", "--replicas=3"]);
    b.until("three pods exist", |k| web_pods(k) == 3);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(web_pods(b), 3, "no pod created twice");
    let transitions = b.ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-controller-manager",
        "-o",
        "jsonpath={.spec.leaseTransitions}",
    ]);
    assert_eq!(transitions.trim(), "1");
}

#[test]
fn without_leader_election_the_controllers_run_at_once_and_take_no_lease() {
    let server = common::Cluster::start_with("1.33", &["--leader-elect=false"]);
    let k = &server.kubectl;
    k.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    k.until("two pods exist", |k| web_pods(k) == 2);
    assert_eq!(lease_holder(k), "");
}
