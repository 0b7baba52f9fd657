//! The kubelet's reads of what pods refer to, against the real API server in process: two
//! nodes' pod workers (over the fake runtime, pod files on disk) sharing one
//! `sources::PodSources`, as the hollow nodes of `rkube sim` do. Every request the kubelets
//! send is recorded, so the tests see how ConfigMaps and Services are read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rkube_apiserver_tests::start;
use rkube_kubelet::fake::FakeRuntime;
use rkube_kubelet::files::HostFiles;
use rkube_kubelet::hollow::{self, SimConfig};
use rkube_kubelet::kubelet::{KubeletConfig, Shared};
use rkube_kubelet::sources::PodSources;
use serde_json::json;

async fn eventually<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> Fut,
) -> T {
    for _ in 0..300 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A client that passes every request to `inner`, recording `METHOD path?query`.
fn recording(inner: kube::Client, requests: Arc<Mutex<Vec<String>>>) -> kube::Client {
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let line = format!(
            "{} {}",
            request.method(),
            request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default()
        );
        requests.lock().unwrap().push(line);
        let inner = inner.clone();
        async move { inner.send(request).await }
    });
    kube::Client::new(service, "default")
}

fn sent(requests: &Mutex<Vec<String>>, prefix: &str) -> Vec<String> {
    requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with(prefix))
        .cloned()
        .collect()
}

/// A kubelet for node `name` over the fake runtime, its pod files under `dir`, reading through
/// `client` and `sources`; its pod watch and relist run until the test ends.
fn node(
    client: &kube::Client,
    sources: &Arc<PodSources>,
    dir: &std::path::Path,
    name: &str,
    cidr: &str,
) -> Arc<Shared> {
    let sim = SimConfig {
        nodes: 1,
        name_prefix: String::new(),
        cpus: 4,
        memory: 8 << 30,
        pods_per_node: 50,
        startup_delay: Duration::from_millis(10),
        labels: BTreeMap::new(),
        state_dir: dir.to_owned(),
        keep_nodes: false,
    };
    let agent_dir = dir.join(name);
    let config = KubeletConfig {
        node_name: name.to_owned(),
        node_ip: "100.64.0.1".to_owned(),
        cni_conf_dir: agent_dir.join("cni"),
        agent_dir,
        labels: BTreeMap::new(),
        cluster_dns: None,
        cluster_domain: "cluster.local".to_owned(),
        cgroup_root: "/rkube-test".to_owned(),
        systemd_cgroups: false,
        bridge: String::new(),
        cluster_cidr: None,
        runtime_endpoint: "fake".to_owned(),
        kubelet_port: 10250,
        client_ca: String::new(),
        registries: Default::default(),
        eviction_hard: Vec::new(),
        eviction_pressure_transition: Duration::from_secs(300),
        image_gc: Default::default(),
        pod_cgroups: false,
        sync_frequency: Duration::from_secs(10),
    };
    let runtime = Arc::new(FakeRuntime::hollow(Duration::from_millis(10)));
    runtime.set_pod_cidr(cidr).unwrap();
    let shared = Arc::new(Shared::new(
        client.clone(),
        config,
        runtime,
        Arc::new(HostFiles),
        sources.clone(),
        &hollow::machine(&sim, name),
        String::new(),
    ));
    tokio::spawn(rkube_kubelet::podwatch::watch_pods(
        client.clone(),
        Some(format!("spec.nodeName={name}")),
        shared.clone(),
    ));
    tokio::spawn(rkube_kubelet::kubelet::relist(shared.clone()));
    shared
}

/// A pod on `node` with the ConfigMap `settings` in its environment (and, with
/// `settings_volume`, as a volume), and an optional ConfigMap that does not exist as a volume
/// and in its environment too.
fn pod(name: &str, node: &str, settings_volume: bool) -> Pod {
    let mut volumes =
        vec![json!({"name": "maybe", "configMap": {"name": "absent", "optional": true}})];
    if settings_volume {
        volumes.push(json!({"name": "settings", "configMap": {"name": "settings"}}));
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "app",
                "image": "registry.k8s.io/pause:3.10",
                "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}}],
                "envFrom": [{"configMapRef": {"name": "absent", "optional": true}}],
            }],
            "volumes": volumes,
        },
    }))
    .unwrap()
}

async fn running(pods: &Api<Pod>, name: &str) {
    eventually(&format!("pod {name} Running"), || async {
        let pod = pods.get(name).await.unwrap();
        (pod.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
}

fn volume_file(shared: &Shared, pod: &Pod, volume: &str, key: &str) -> PathBuf {
    shared
        .volumes
        .volume_dir(pod, "configMap", volume)
        .join(key)
}

#[tokio::test]
async fn pods_of_two_nodes_naming_one_config_map_share_one_watch_that_refreshes_their_volumes() {
    let t = start().await;
    let requests = Arc::new(Mutex::new(Vec::new()));
    let client = recording(t.client.clone(), requests.clone());
    let sources = Arc::new(PodSources::new(client.clone()));
    tokio::spawn(rkube_kubelet::services::watch_services(
        client.clone(),
        sources.services.clone(),
    ));
    let dir = t.dir.path().join("nodes");
    let a = node(&client, &sources, &dir, "node-a", "10.42.1.0/24");
    let b = node(&client, &sources, &dir, "node-b", "10.42.2.0/24");

    let cms = create_settings(&t.client).await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let names = ["a-0", "a-1", "b-0", "b-1"];
    for name in names {
        let node = if name.starts_with('a') {
            "node-a"
        } else {
            "node-b"
        };
        pods.create(&PostParams::default(), &pod(name, node, true))
            .await
            .unwrap();
    }
    for name in names {
        running(&pods, name).await;
    }

    // One watch for `settings` (its list, then its watch) and one for `absent`, whatever the
    // number of pods and nodes; no GET of either.
    let settings_reads = sent(&requests, "GET /api/v1/namespaces/default/configmaps")
        .into_iter()
        .filter(|r| r.contains("settings"))
        .collect::<Vec<_>>();
    let lists = settings_reads
        .iter()
        .filter(|r| !r.contains("watch=true"))
        .count();
    let watches = settings_reads
        .iter()
        .filter(|r| r.contains("watch=true"))
        .count();
    assert_eq!((lists, watches), (1, 1), "{settings_reads:?}");
    assert!(
        settings_reads
            .iter()
            .all(|r| r.contains("fieldSelector=metadata.name%3Dsettings")),
        "{settings_reads:?}"
    );
    assert_eq!(sources.config_maps.watched(), 2);
    // Services come from one cluster-wide watch, not a list per container start.
    assert!(
        sent(&requests, "GET /api/v1/namespaces/default/services").is_empty(),
        "{:?}",
        sent(&requests, "GET /api/v1/namespaces/default/services")
    );
    assert_eq!(
        sent(&requests, "GET /api/v1/services")
            .iter()
            .filter(|r| !r.contains("watch=true"))
            .count(),
        1
    );

    // The volumes hold the ConfigMap; a change reaches them at the next refresh (every 10 s).
    let first = pods.get("a-0").await.unwrap();
    let on_b = pods.get("b-1").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(volume_file(&a, &first, "settings", "greeting")).unwrap(),
        "hello"
    );
    cms.patch(
        "settings",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"greeting": "bonjour"}})),
    )
    .await
    .unwrap();
    for (shared, pod) in [(&a, &first), (&b, &on_b)] {
        eventually("the refreshed volume", || async {
            let text =
                std::fs::read_to_string(volume_file(shared, pod, "settings", "greeting")).ok()?;
            (text == "bonjour").then_some(())
        })
        .await;
    }
    // The refreshes were served from the watches: still one list each, and never a GET.
    let gets: Vec<String> = sent(&requests, "GET /api/v1/namespaces/default/configmaps/");
    assert!(gets.is_empty(), "{gets:?}");
    assert_eq!(
        sent(&requests, "GET /api/v1/namespaces/default/configmaps?")
            .iter()
            .filter(|r| !r.contains("watch=true"))
            .count(),
        2
    );

    // Once no pod names them, the objects are no longer watched.
    for name in names {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    eventually("the pods gone", || async {
        pods.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    eventually("the watches stopped", || async {
        (sources.config_maps.watched() == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_container_waits_for_a_missing_config_map_and_starts_once_it_exists() {
    let t = start().await;
    let sources = Arc::new(PodSources::new(t.client.clone()));
    tokio::spawn(rkube_kubelet::services::watch_services(
        t.client.clone(),
        sources.services.clone(),
    ));
    let dir = t.dir.path().join("nodes");
    let _a = node(&t.client, &sources, &dir, "node-a", "10.42.1.0/24");

    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    pods.create(&PostParams::default(), &pod("strict", "node-a", false))
        .await
        .unwrap();
    // `settings` is not optional for the environment: the sandbox starts, the container cannot
    // be configured.
    let message = eventually("CreateContainerConfigError", || async {
        let pod = pods.get("strict").await.unwrap();
        let waiting = pod
            .status?
            .container_statuses?
            .first()?
            .state
            .clone()?
            .waiting?;
        (waiting.reason.as_deref() == Some("CreateContainerConfigError"))
            .then(|| waiting.message.unwrap_or_default())
    })
    .await;
    assert_eq!(message, "configmap \"settings\" not found");

    // Its watch sees the ConfigMap created; the pod starts (the optional one stays absent).
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let settings = serde_json::from_value(json!({
        "metadata": {"name": "settings"},
        "data": {"greeting": "hello"},
        "immutable": true,
    }))
    .unwrap();
    cms.create(&PostParams::default(), &settings).await.unwrap();
    running(&pods, "strict").await;
    assert_eq!(sources.config_maps.watched(), 2);
}

#[tokio::test]
async fn hollow_nodes_of_a_simulation_read_a_config_map_through_one_watch() {
    let t = start().await;
    let requests = Arc::new(Mutex::new(Vec::new()));
    let client = recording(t.client.clone(), requests.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = SimConfig {
        nodes: 3,
        name_prefix: "hollow-".to_owned(),
        cpus: 4,
        memory: 16 << 30,
        pods_per_node: 50,
        startup_delay: Duration::from_millis(10),
        labels: BTreeMap::new(),
        state_dir: t.dir.path().join("sim"),
        keep_nodes: true,
    };
    let sim = tokio::spawn(hollow::run(client, config, async {
        let _ = stopped.await;
    }));
    // The test gives the nodes their podCIDRs as node IPAM would.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(t.client.clone());
    for n in 0..3 {
        let name = format!("hollow-{n}");
        eventually("the node registered", || async {
            nodes.get_opt(&name).await.unwrap().map(|_| ())
        })
        .await;
        let cidr = format!("10.42.{n}.0/24");
        nodes
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})),
            )
            .await
            .unwrap();
    }

    create_settings(&t.client).await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    for i in 0..9 {
        let node = format!("hollow-{}", i % 3);
        pods.create(&PostParams::default(), &pod(&format!("p-{i}"), &node, true))
            .await
            .unwrap();
    }
    for i in 0..9 {
        running(&pods, &format!("p-{i}")).await;
    }
    let reads = sent(&requests, "GET /api/v1/namespaces/default/configmaps");
    let lists: Vec<&String> = reads.iter().filter(|r| !r.contains("watch=true")).collect();
    // `settings` and the optional `absent`: one list each for nine pods on three nodes.
    assert_eq!(lists.len(), 2, "{reads:?}");
    assert!(
        lists
            .iter()
            .all(|r| r.contains("fieldSelector=metadata.name%3D")),
        "{reads:?}"
    );
    assert!(
        sent(&requests, "GET /api/v1/namespaces/default/services").is_empty(),
        "{requests:?}"
    );
    let _ = stop.send(());
    sim.await.unwrap().unwrap();
}

/// Creates `default/settings` (`greeting: hello`), which the tests' pods name; returns the
/// namespace's ConfigMaps.
async fn create_settings(client: &kube::Client) -> Api<ConfigMap> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let settings = serde_json::from_value(json!({
        "metadata": {"name": "settings"},
        "data": {"greeting": "hello"},
    }))
    .unwrap();
    cms.create(&PostParams::default(), &settings).await.unwrap();
    cms
}
