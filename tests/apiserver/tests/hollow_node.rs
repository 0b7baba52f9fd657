//! A hollow node (`rkube sim`) against the real API server, in process: the pods bound to it
//! go through the kubelet's own pod workers over the fake runtime, so their status is what
//! a real node reports (phase, conditions, container statuses, pod IP from the node's
//! podCIDR), and a graceful delete finishes once the containers stopped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use rkube_apiserver_tests::start;
use rkube_kubelet::hollow::{self, SimConfig};
use serde_json::json;

async fn eventually<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> Fut,
) -> T {
    for _ in 0..200 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// What a status says, in the order a watcher sees it: phase and the True conditions.
fn summary(pod: &Pod) -> (String, Vec<String>) {
    let status = pod.status.clone().unwrap_or_default();
    let mut conditions: Vec<String> = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.status == "True")
        .map(|c| c.type_)
        .collect();
    conditions.sort();
    (status.phase.unwrap_or_default(), conditions)
}

#[tokio::test]
async fn hollow_node_runs_a_pod_to_ready_and_finishes_its_graceful_delete() {
    let t = start().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = SimConfig {
        nodes: 1,
        name_prefix: "hollow-".to_owned(),
        cpus: 4,
        memory: 16 << 30,
        pods_per_node: 50,
        startup_delay: Duration::from_millis(50),
        labels: Default::default(),
        state_dir: t.dir.path().join("sim"),
        keep_nodes: false,
    };
    let sim = tokio::spawn(hollow::run(t.client.clone(), config, async {
        let _ = stopped.await;
    }));

    // The node registers with its capacity; the test gives it a podCIDR as node IPAM would.
    let nodes: Api<Node> = Api::all(t.client.clone());
    let node = eventually("the node's status", || async {
        let node = nodes.get_opt("hollow-0").await.unwrap()?;
        node.status.as_ref()?.capacity.as_ref()?;
        Some(node)
    })
    .await;
    let capacity = node.status.unwrap().capacity.unwrap();
    assert_eq!(capacity["pods"].0, "50");
    assert_eq!(capacity["cpu"].0, "4");
    let labels = node.metadata.labels.unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], "hollow-0");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    nodes
        .patch(
            "hollow-0",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"podCIDR": "10.42.7.0/24", "podCIDRs": ["10.42.7.0/24"]}}),
            ),
        )
        .await
        .unwrap();
    eventually("the node Ready", || async {
        let node = nodes.get("hollow-0").await.unwrap();
        let ready = node
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status == "True").then_some(())
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(t.client.clone(), "kube-node-lease");
    eventually("the node Lease", || async {
        leases.get_opt("hollow-0").await.unwrap()
    })
    .await;

    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let mut watch = pods
        .watch(&WatchParams::default().fields("metadata.name=web"), "0")
        .await
        .unwrap()
        .boxed();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "nodeName": "hollow-0",
            "terminationGracePeriodSeconds": 30,
            "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();

    let mut seen: Vec<(String, Vec<String>)> = Vec::new();
    let running = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = watch.next().await {
            if let WatchEvent::Added(pod) | WatchEvent::Modified(pod) = event.unwrap() {
                let s = summary(&pod);
                if seen.last() != Some(&s) {
                    seen.push(s.clone());
                }
                if s.0 == "Running" && s.1.contains(&"Ready".to_owned()) {
                    return pod;
                }
            }
        }
        panic!("the watch ended");
    })
    .await
    .expect("the pod Running and Ready");
    // The kubelet's sequence: Pending as created, Pending while the sandbox starts, then
    // Running with every condition True. (Bound without the scheduler, so no PodScheduled:
    // the scheduler writes that one.)
    assert_eq!(seen[0], ("Pending".to_owned(), Vec::new()), "{seen:?}");
    assert!(
        seen[..seen.len() - 1].iter().all(|s| s.0 == "Pending"),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().unwrap().1,
        [
            "ContainersReady",
            "Initialized",
            "PodReadyToStartContainers",
            "Ready"
        ],
        "{seen:?}"
    );
    let status = running.status.unwrap();
    let ip = status.pod_ip.unwrap();
    assert!(ip.starts_with("10.42.7."), "pod IP {ip} from the podCIDR");
    assert!(status.start_time.is_some());
    let container = &status.container_statuses.unwrap()[0];
    assert_eq!(container.name, "app");
    assert!(container.ready);
    assert!(container.state.as_ref().unwrap().running.is_some());
    assert_eq!(status.host_ip.as_deref(), Some("100.64.0.1"));

    // A graceful delete: the fake's containers exit at once, so the node finishes it.
    pods.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("the pod gone", || async {
        pods.get_opt("web").await.unwrap().is_none().then_some(())
    })
    .await;

    // Stopping the simulation removes its node.
    stop.send(()).unwrap();
    sim.await.unwrap().unwrap();
    assert!(nodes.get_opt("hollow-0").await.unwrap().is_none());
}

#[tokio::test]
async fn the_node_lease_is_read_once_then_renewed_with_one_put_each_time() {
    let t = start().await;
    let nodes: Api<Node> = Api::all(t.client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "leased"}})).unwrap();
    let node = nodes.create(&PostParams::default(), &node).await.unwrap();
    let leases: Api<Lease> = Api::namespaced(t.client.clone(), "kube-node-lease");
    let mut lease = rkube_kubelet::node::NodeLease::default();
    for _ in 0..3 {
        lease.renew(&leases, &node).await.unwrap();
    }
    // Another writer: the next renewal conflicts, reads the Lease again and takes it back.
    let mut other = leases.get("leased").await.unwrap();
    other.spec.as_mut().unwrap().holder_identity = Some("someone-else".to_owned());
    leases
        .replace("leased", &PostParams::default(), &other)
        .await
        .unwrap();
    lease.renew(&leases, &node).await.unwrap();
    let renewed = leases.get("leased").await.unwrap().spec.unwrap();
    assert_eq!(renewed.holder_identity.as_deref(), Some("leased"));
    assert_eq!(renewed.lease_duration_seconds, Some(40));

    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = t.client.request_text(request).await.unwrap();
    let count = |verb: &str, scope: &str, code: u16| {
        format!(
            "apiserver_request_total{{code=\"{code}\",component=\"apiserver\",dry_run=\"\",group=\"coordination.k8s.io\",resource=\"leases\",scope=\"{scope}\",subresource=\"\",verb=\"{verb}\",version=\"v1\"}}"
        )
    };
    // The renewals: a GET (404) and a POST the first time, a PUT each later time, and after
    // the conflict a GET and a PUT; the test's own two GETs and one PUT are among them.
    for (series, n) in [
        (count("GET", "resource", 404), 1),
        (count("POST", "namespace", 201), 1),
        (count("PUT", "resource", 200), 4),
        (count("PUT", "resource", 409), 1),
        (count("GET", "resource", 200), 3),
    ] {
        let line = format!("{series} {n}");
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
}
