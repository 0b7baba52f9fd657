//! The Deployment controller (with the ReplicaSet controller and the garbage collector)
//! against the real API server, in process. A fake kubelet marks pods Running and Ready
//! through the status subresource and completes pod deletions, as nodes would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use rkube_apiserver_tests::fake_kubelet::{self, is_ready};
use rkube_apiserver_tests::{TestServer, start};
use rkube_controllers::ControllerManager;
use serde_json::json;

fn deployment(name: &str, replicas: i32, image: &str, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }))
    .unwrap()
}

fn manager(t: &TestServer) -> tokio::task::JoinHandle<()> {
    tokio::spawn(
        ControllerManager::new(t.client.clone(), t.server.ca_cert())
            .with_controllers(&["deployment", "replicaset", "garbage-collector"])
            .run(),
    )
}

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn complete(deployments: &Api<Deployment>, name: &str) -> Deployment {
    eventually("the rollout completes", async || {
        let d = deployments.get(name).await.unwrap();
        let s = d.status.clone()?;
        let want = d.spec.as_ref()?.replicas?;
        let progressed = s.conditions.as_ref()?.iter().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("NewReplicaSetAvailable")
        });
        (s.observed_generation == d.metadata.generation
            && s.updated_replicas == Some(want)
            && s.replicas == Some(want)
            && s.available_replicas == Some(want)
            && progressed)
            .then_some(d)
    })
    .await
}

fn image(pod: &Pod) -> String {
    pod.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

async fn live_pods(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

async fn owned_sets(sets: &Api<ReplicaSet>, app: &str) -> Vec<ReplicaSet> {
    sets.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

fn revision(rs: &ReplicaSet) -> String {
    rs.annotations()
        .get("deployment.kubernetes.io/revision")
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_deployment_creates_a_hashed_replica_set_and_reports_status() {
    let t = start().await;
    let _kubelet = fake_kubelet::start(t.client.clone(), 8);
    let _manager = manager(&t);
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", 3, "nginx:1", json!({})),
        )
        .await
        .unwrap();
    let d = complete(&deployments, "web").await;
    let rs = owned_sets(&sets, "web").await;
    assert_eq!(rs.len(), 1);
    let rs = &rs[0];
    let hash = rs.labels().get("pod-template-hash").unwrap().clone();
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    assert_eq!(revision(rs), "1");
    assert_eq!(
        d.annotations()
            .get("deployment.kubernetes.io/revision")
            .unwrap(),
        "1"
    );
    assert_eq!(
        rs.annotations()
            .get("deployment.kubernetes.io/desired-replicas")
            .unwrap(),
        "3"
    );
    assert_eq!(
        rs.annotations()
            .get("deployment.kubernetes.io/max-replicas")
            .unwrap(),
        "4"
    );
    let owner = &rs.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Deployment", Some(true))
    );
    let selector = &rs.spec.as_ref().unwrap().selector;
    assert_eq!(
        selector
            .match_labels
            .as_ref()
            .unwrap()
            .get("pod-template-hash"),
        Some(&hash)
    );
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    for pod in live_pods(&pods, "web").await {
        assert_eq!(pod.labels().get("pod-template-hash"), Some(&hash));
    }
    let status = d.status.unwrap();
    assert_eq!(status.ready_replicas, Some(3));
    assert_eq!(status.unavailable_replicas, Some(0));
    let conditions = status.conditions.unwrap();
    let available = conditions.iter().find(|c| c.type_ == "Available").unwrap();
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("True", Some("MinimumReplicasAvailable"))
    );
    let events: Api<Event> = Api::namespaced(t.client.clone(), "default");
    let events = events.list(&ListParams::default()).await.unwrap().items;
    let message = format!("Scaled up replica set web-{hash} from 0 to 3");
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("ScalingReplicaSet")
                && e.message.as_deref() == Some(message.as_str())),
        "{message:?} in {:?}",
        events.iter().map(|e| e.message.clone()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_rolling_update_never_goes_below_replicas_minus_max_unavailable() {
    let t = start().await;
    let kubelet = fake_kubelet::start(t.client.clone(), 8);
    let _manager = manager(&t);
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", 4, "nginx:1", strategy),
        )
        .await
        .unwrap();
    complete(&deployments, "web").await;

    // Watch every pod from now on: the number of ready pods not being deleted must stay ≥ 3,
    // and the number of pods not being deleted ≤ 5 (replicas + maxSurge).
    /// Readiness of each live pod, the fewest ready seen and the most live seen.
    type Seen = (BTreeMap<String, bool>, usize, usize);
    let seen: Arc<Mutex<Seen>> = Arc::new(Mutex::new((BTreeMap::new(), usize::MAX, 0)));
    let watch = {
        let seen = seen.clone();
        let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(watcher(pods, watcher::Config::default()));
            let mut listed = false;
            while let Some(Ok(event)) = stream.next().await {
                let mut s = seen.lock().unwrap();
                match event {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        if p.metadata.deletion_timestamp.is_some() {
                            s.0.remove(&p.name_any());
                        } else {
                            s.0.insert(p.name_any(), is_ready(&p));
                        }
                    }
                    watcher::Event::Delete(p) => {
                        s.0.remove(&p.name_any());
                    }
                    watcher::Event::InitDone => listed = true,
                    watcher::Event::Init => s.0.clear(),
                }
                if listed {
                    let ready = s.0.values().filter(|r| **r).count();
                    let live = s.0.len();
                    s.1 = s.1.min(ready);
                    s.2 = s.2.max(live);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let d = complete(&deployments, "web").await;
    watch.abort();
    let (_, min_ready, max_live) = *seen.lock().unwrap();
    assert!(min_ready >= 3, "ready pods went down to {min_ready}");
    assert!(max_live <= 5, "live pods went up to {max_live}");
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let live = live_pods(&pods, "web").await;
    assert_eq!(live.len(), 4);
    assert!(live.iter().all(|p| image(p) == "nginx:2"));
    assert_eq!(
        d.annotations()
            .get("deployment.kubernetes.io/revision")
            .unwrap(),
        "2"
    );
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    let mut sets = owned_sets(&sets, "web").await;
    sets.sort_by_key(revision);
    assert_eq!(sets.len(), 2);
    assert_eq!(
        sets[0].spec.as_ref().unwrap().replicas,
        Some(0),
        "the old set is kept, empty"
    );
    assert_eq!(revision(&sets[1]), "2");
    drop(kubelet);
}

#[tokio::test]
async fn recreate_removes_every_old_pod_before_starting_new_ones() {
    let t = start().await;
    let _kubelet = fake_kubelet::start(t.client.clone(), 8);
    let _manager = manager(&t);
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &deployment("db", 2, "pg:1", json!({"type": "Recreate"})),
        )
        .await
        .unwrap();
    complete(&deployments, "db").await;
    let mixed = Arc::new(Mutex::new(false));
    let watch = {
        let mixed = mixed.clone();
        let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
        tokio::spawn(async move {
            let mut live: BTreeMap<String, String> = BTreeMap::new();
            let mut stream = std::pin::pin!(watcher(pods, watcher::Config::default()));
            while let Some(Ok(event)) = stream.next().await {
                match event {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        live.insert(p.name_any(), image(&p));
                    }
                    watcher::Event::Delete(p) => {
                        live.remove(&p.name_any());
                    }
                    _ => {}
                }
                let images: std::collections::BTreeSet<_> = live.values().collect();
                if images.len() > 1 {
                    *mixed.lock().unwrap() = true;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "pg:2"}]}}}});
    deployments
        .patch("db", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    complete(&deployments, "db").await;
    watch.abort();
    assert!(
        !*mixed.lock().unwrap(),
        "old and new pods existed at the same time"
    );
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    assert!(
        live_pods(&pods, "db")
            .await
            .iter()
            .all(|p| image(p) == "pg:2")
    );
}

#[tokio::test]
async fn going_back_to_an_old_template_reuses_its_replica_set_as_the_next_revision() {
    let t = start().await;
    let _kubelet = fake_kubelet::start(t.client.clone(), 8);
    let _manager = manager(&t);
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", 2, "nginx:1", json!({})),
        )
        .await
        .unwrap();
    complete(&deployments, "web").await;
    let first = owned_sets(&sets, "web").await[0].name_any();
    for image in ["nginx:2", "nginx:1"] {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
        deployments
            .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .unwrap();
        eventually("the new generation is observed", async || {
            let d = deployments.get("web").await.unwrap();
            (d.status?.observed_generation == d.metadata.generation).then_some(())
        })
        .await;
        complete(&deployments, "web").await;
    }
    let all = owned_sets(&sets, "web").await;
    assert_eq!(
        all.len(),
        2,
        "no third ReplicaSet for a template seen before"
    );
    let reused = all.iter().find(|rs| rs.name_any() == first).unwrap();
    assert_eq!(revision(reused), "3");
    assert_eq!(reused.spec.as_ref().unwrap().replicas, Some(2));
}

#[tokio::test]
async fn a_paused_deployment_does_not_roll_out_until_resumed() {
    let t = start().await;
    let _kubelet = fake_kubelet::start(t.client.clone(), 8);
    let _manager = manager(&t);
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", 2, "nginx:1", json!({})),
        )
        .await
        .unwrap();
    complete(&deployments, "web").await;
    let patch = json!({"spec": {"paused": true, "template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let d = eventually("the pause is reported", async || {
        let d = deployments.get("web").await.unwrap();
        let c = d.status.as_ref()?.conditions.clone()?;
        c.iter()
            .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("DeploymentPaused"))
            .then_some(d)
    })
    .await;
    assert_eq!(d.status.unwrap().observed_generation, d.metadata.generation);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        owned_sets(&sets, "web").await.len(),
        1,
        "no rollout while paused"
    );
    let patch = json!({"spec": {"paused": false}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    complete(&deployments, "web").await;
    assert_eq!(owned_sets(&sets, "web").await.len(), 2);
}

#[tokio::test]
async fn a_rollout_that_makes_no_progress_exceeds_its_deadline() {
    let t = start().await;
    let kubelet = fake_kubelet::start(t.client.clone(), 8);
    kubelet.set_ready(false);
    let _manager = manager(&t);
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let mut d = deployment("stuck", 2, "nginx:1", json!({}));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(1);
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let cond = eventually("the deadline is exceeded", async || {
        let d = deployments.get("stuck").await.unwrap();
        d.status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Progressing" && c.status == "False")
    })
    .await;
    assert_eq!(cond.reason.as_deref(), Some("ProgressDeadlineExceeded"));
    assert!(
        cond.message
            .unwrap()
            .ends_with("has timed out progressing.")
    );
}

#[tokio::test]
async fn scaling_a_deployment_scales_its_replica_set() {
    let t = start().await;
    let _kubelet = fake_kubelet::start(t.client.clone(), 8);
    let _manager = manager(&t);
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", 2, "nginx:1", json!({})),
        )
        .await
        .unwrap();
    complete(&deployments, "web").await;
    let patch = json!({"spec": {"replicas": 5}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    complete(&deployments, "web").await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    assert_eq!(live_pods(&pods, "web").await.len(), 5);
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    let rs = owned_sets(&sets, "web").await;
    assert_eq!(rs.len(), 1);
    assert_eq!(
        rs[0]
            .annotations()
            .get("deployment.kubernetes.io/desired-replicas")
            .unwrap(),
        "5"
    );
}

#[tokio::test]
async fn deleting_a_deployment_removes_its_replica_sets_and_pods() {
    let t = start().await;
    let _kubelet = fake_kubelet::start(t.client.clone(), 8);
    let _manager = manager(&t);
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", 3, "nginx:1", json!({})),
        )
        .await
        .unwrap();
    complete(&deployments, "web").await;
    deployments
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    eventually("replica sets and pods are gone", async || {
        let rs = owned_sets(&sets, "web").await;
        let p = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items;
        (rs.is_empty() && p.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn old_replica_sets_beyond_the_revision_history_limit_are_deleted() {
    let t = start().await;
    let _kubelet = fake_kubelet::start(t.client.clone(), 8);
    let _manager = manager(&t);
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let mut d = deployment("web", 1, "nginx:1", json!({}));
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    complete(&deployments, "web").await;
    for image in ["nginx:2", "nginx:3"] {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
        deployments
            .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .unwrap();
        eventually("the new generation is observed", async || {
            let d = deployments.get("web").await.unwrap();
            (d.status?.observed_generation == d.metadata.generation).then_some(())
        })
        .await;
        complete(&deployments, "web").await;
    }
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    let revisions = eventually("one old set is kept", async || {
        let mut r: Vec<_> = owned_sets(&sets, "web")
            .await
            .iter()
            .map(revision)
            .collect();
        r.sort();
        (r.len() == 2).then_some(r)
    })
    .await;
    assert_eq!(revisions, ["2", "3"]);
}
