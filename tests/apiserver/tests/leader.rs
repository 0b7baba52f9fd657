//! Leader election over Leases against the real API server, in process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use rkube_apiserver_tests::start;
use rkube_lease::{LeaderElectionConfig, LeaderElector};

fn fast() -> LeaderElectionConfig {
    LeaderElectionConfig {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(200),
    }
}

async fn lease(client: &kube::Client) -> Lease {
    Api::<Lease>::namespaced(client.clone(), "kube-system")
        .get("demo")
        .await
        .unwrap()
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn only_one_candidate_holds_the_lease_and_a_released_lease_passes_at_once() {
    let t = start().await;
    let a = LeaderElector::new(t.client.clone(), "kube-system", "demo", "a", fast());
    let b = LeaderElector::new(t.client.clone(), "kube-system", "demo", "b", fast());
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    assert!(a.try_acquire_or_renew().await.unwrap(), "the holder renews");

    let spec = lease(&t.client).await.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_duration_seconds, Some(3));
    assert_eq!(spec.lease_transitions, Some(0));
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());

    a.release().await.unwrap();
    let spec = lease(&t.client).await.spec.unwrap();
    assert_eq!(spec.holder_identity, None);
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "no wait after a release"
    );
    let spec = lease(&t.client).await.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert!(!a.try_acquire_or_renew().await.unwrap());
}

#[tokio::test]
async fn a_lease_not_renewed_for_its_duration_is_taken_over() {
    let t = start().await;
    let a = LeaderElector::new(t.client.clone(), "kube-system", "demo", "a", fast());
    let b = LeaderElector::new(t.client.clone(), "kube-system", "demo", "b", fast());
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    // `a` stops renewing; `b` must wait a full lease duration from when it saw the record.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!b.try_acquire_or_renew().await.unwrap());
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert!(b.try_acquire_or_renew().await.unwrap());
    let spec = lease(&t.client).await.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
}

#[tokio::test]
async fn work_runs_only_while_leading_and_a_deposed_leader_drops_it() {
    let t = start().await;
    let a = LeaderElector::new(t.client.clone(), "kube-system", "demo", "a", fast());
    let running = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let task = {
        let (a, running, started) = (a.clone(), running.clone(), started.clone());
        tokio::spawn(async move {
            a.run_while_leader(|| {
                let (running, started) = (running.clone(), started.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    running.fetch_add(1, Ordering::SeqCst);
                    let _guard = Decrement(running);
                    std::future::pending::<()>().await
                }
            })
            .await
        })
    };
    wait_until("a leads", || running.load(Ordering::SeqCst) == 1).await;
    assert!(a.is_leader());

    // Someone else overwrites the Lease (as a partitioned leader would find on return): the
    // renewals fail, and within the renew deadline the work is dropped.
    let leases: Api<Lease> = Api::namespaced(t.client.clone(), "kube-system");
    let mut stolen = lease(&t.client).await;
    let spec = stolen.spec.as_mut().unwrap();
    spec.holder_identity = Some("intruder".into());
    spec.lease_duration_seconds = Some(3600);
    leases
        .replace("demo", &Default::default(), &stolen)
        .await
        .unwrap();
    wait_until("the work is dropped", || {
        running.load(Ordering::SeqCst) == 0
    })
    .await;
    assert!(!a.is_leader());
    assert_eq!(started.load(Ordering::SeqCst), 1);

    task.abort();
}

#[tokio::test]
async fn a_clean_shutdown_releases_the_lease() {
    let t = start().await;
    let a = LeaderElector::new(t.client.clone(), "kube-system", "demo", "a", fast());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = {
        let a = a.clone();
        tokio::spawn(async move {
            a.run_until(std::future::pending, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    wait_until("a leads", || a.is_leader()).await;
    stop.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(lease(&t.client).await.spec.unwrap().holder_identity, None);
}

struct Decrement(Arc<AtomicUsize>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

mod managers {
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use futures::StreamExt;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;
    use kube::ResourceExt;
    use kube::api::{DeleteParams, ListParams, PostParams};
    use kube::runtime::watcher;
    use rkube_controllers::ControllerManager;
    use serde_json::json;

    use super::*;

    fn manager(
        t: &rkube_apiserver_tests::TestServer,
        identity: &str,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(
            ControllerManager::new(t.client.clone(), t.server.ca_cert())
                .with_controllers(&["replicaset"])
                .with_leader_election(identity, fast())
                .run(),
        )
    }

    async fn holder(client: &kube::Client) -> Option<String> {
        Api::<Lease>::namespaced(client.clone(), "kube-system")
            .get_opt("kube-controller-manager")
            .await
            .unwrap()
            .and_then(|l| l.spec?.holder_identity)
    }

    async fn live_pods(pods: &Api<Pod>) -> Vec<Pod> {
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    #[tokio::test]
    async fn of_two_managers_one_acts_and_the_other_takes_over_when_it_stops() {
        let t = start().await;
        let first = manager(&t, "first");
        for _ in 0..100 {
            if holder(&t.client).await.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(holder(&t.client).await.as_deref(), Some("first"));
        let second = manager(&t, "second");

        // Every pod ever created, by name.
        let created = Arc::new(Mutex::new(BTreeSet::new()));
        let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
        let watch = {
            let (created, pods) = (created.clone(), pods.clone());
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(watcher(pods, watcher::Config::default()));
                while let Some(Ok(event)) = stream.next().await {
                    if let watcher::Event::Apply(p) | watcher::Event::InitApply(p) = event {
                        created.lock().unwrap().insert(p.name_any());
                    }
                }
            })
        };
        let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        }))
        .unwrap();
        sets.create(&PostParams::default(), &rs).await.unwrap();
        for _ in 0..200 {
            if live_pods(&pods).await.len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(live_pods(&pods).await.len(), 3);
        assert_eq!(holder(&t.client).await.as_deref(), Some("first"));

        // The leader stops; the other must lead within the lease duration.
        first.abort();
        let stopped = tokio::time::Instant::now();
        while holder(&t.client).await.as_deref() != Some("second") {
            assert!(
                stopped.elapsed() < fast().lease_duration,
                "no takeover within the lease duration"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // The new leader acts: a deleted pod is replaced, once.
        let victim = live_pods(&pods).await[0].name_any();
        pods.delete(&victim, &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
        for _ in 0..200 {
            let live = live_pods(&pods).await;
            if live.len() == 3 && live.iter().all(|p| p.name_any() != victim) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(live_pods(&pods).await.len(), 3);
        assert_eq!(created.lock().unwrap().len(), 4, "no pod created twice");
        watch.abort();
        second.abort();
    }
}
