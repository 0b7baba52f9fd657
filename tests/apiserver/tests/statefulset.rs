//! The StatefulSet controller against the real API server, in process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod workload_support;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rkube_apiserver_tests::start;
use rkube_controllers::statefulset::StatefulSetController;
use serde_json::json;
use workload_support::{events, eventually, live_pod_names, mark_ready, spawn};

fn web(replicas: i32, management: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "serviceName": "nginx",
            "podManagementPolicy": management,
            "selector": {"matchLabels": {"app": "nginx"}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            }]
        }
    }))
    .unwrap()
}

async fn wait_for_pod(client: &kube::Client, name: &str) -> Pod {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually(name, 10, || {
        let api = api.clone();
        async move {
            api.get_opt(name)
                .await
                .unwrap()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
        }
    })
    .await
}

#[tokio::test]
async fn ordered_ready_pods_come_one_at_a_time_with_stable_names_and_claims() {
    let t = start().await;
    let _controller = spawn(StatefulSetController::new(t.client.clone()).run());
    let sets: Api<StatefulSet> = Api::namespaced(t.client.clone(), "default");
    sets.create(&PostParams::default(), &web(3, "OrderedReady"))
        .await
        .unwrap();

    let web0 = wait_for_pod(&t.client, "web-0").await;
    let labels = web0.metadata.labels.clone().unwrap();
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-0");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "0");
    assert!(labels["controller-revision-hash"].starts_with("web-"));
    let owner = &web0.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.controller,
            owner.block_owner_deletion
        ),
        ("StatefulSet", Some(true), Some(true))
    );
    let spec = web0.spec.unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let volume = &spec.volumes.unwrap()[0];
    assert_eq!(
        volume.persistent_volume_claim.as_ref().unwrap().claim_name,
        "www-web-0"
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(t.client.clone(), "default");
    assert!(claims.get("www-web-0").await.is_ok());

    // web-1 waits for web-0 to be ready.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(live_pod_names(&t.client).await, ["web-0"]);
    mark_ready(&t.client, "web-0").await;
    wait_for_pod(&t.client, "web-1").await;
    mark_ready(&t.client, "web-1").await;
    wait_for_pod(&t.client, "web-2").await;
    mark_ready(&t.client, "web-2").await;

    let status = eventually("three ready replicas", 10, || {
        let sets = sets.clone();
        async move {
            let status = sets.get("web").await.unwrap().status?;
            (status.ready_replicas == Some(3)).then_some(status)
        }
    })
    .await;
    assert_eq!(status.replicas, 3);
    assert_eq!(status.current_replicas, Some(3));
    assert_eq!(status.updated_replicas, Some(3));
    assert_eq!(status.available_replicas, Some(3));
    assert_eq!(status.current_revision, status.update_revision);
    assert_eq!(status.observed_generation, Some(1));
    let events = events(&t.client).await;
    assert!(events.contains(&(
        "SuccessfulCreate".to_owned(),
        "create Pod web-0 in StatefulSet web successful".to_owned()
    )));
    assert!(events.contains(&(
        "SuccessfulCreate".to_owned(),
        "create Claim www-web-0 Pod web-0 in StatefulSet web success".to_owned()
    )));

    // A deleted pod comes back under the same name.
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let uid = pods.get("web-1").await.unwrap().metadata.uid;
    pods.delete("web-1", &Default::default()).await.unwrap();
    let again = eventually("web-1 recreated", 10, || {
        let pods = pods.clone();
        let uid = uid.clone();
        async move {
            pods.get_opt("web-1")
                .await
                .unwrap()
                .filter(|p| p.metadata.uid != uid)
        }
    })
    .await;
    assert_eq!(again.metadata.name.as_deref(), Some("web-1"));
}

#[tokio::test]
async fn rolling_update_respects_the_partition_then_scale_down_goes_highest_first() {
    let t = start().await;
    let _controller = spawn(StatefulSetController::new(t.client.clone()).run());
    let sets: Api<StatefulSet> = Api::namespaced(t.client.clone(), "default");
    sets.create(&PostParams::default(), &web(3, "Parallel"))
        .await
        .unwrap();
    for name in ["web-0", "web-1", "web-2"] {
        wait_for_pod(&t.client, name).await;
        mark_ready(&t.client, name).await;
    }
    let first = eventually("all ready", 10, || {
        let sets = sets.clone();
        async move {
            let status = sets.get("web").await.unwrap().status?;
            (status.ready_replicas == Some(3)).then_some(status.update_revision?)
        }
    })
    .await;

    let change = json!({"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
        "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"}]}}
    }});
    sets.patch("web", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let revision_of =
        |pod: &Pod| pod.metadata.labels.as_ref().unwrap()["controller-revision-hash"].clone();
    // Highest ordinal first, each waiting for the one before to be ready again.
    for name in ["web-2", "web-1"] {
        let pod = eventually(name, 10, || {
            let pods = pods.clone();
            let first = first.clone();
            async move {
                pods.get_opt(name)
                    .await
                    .unwrap()
                    .filter(|p| p.metadata.deletion_timestamp.is_none() && revision_of(p) != first)
            }
        })
        .await;
        assert_eq!(
            pod.spec.unwrap().containers[0].image.as_deref(),
            Some("nginx:1.26")
        );
        mark_ready(&t.client, name).await;
    }
    let status = eventually("partitioned update done", 10, || {
        let sets = sets.clone();
        async move {
            let status = sets.get("web").await.unwrap().status?;
            (status.updated_replicas == Some(2) && status.ready_replicas == Some(3))
                .then_some(status)
        }
    })
    .await;
    assert_eq!(status.current_revision.as_deref(), Some(first.as_str()));
    assert_ne!(status.update_revision.as_deref(), Some(first.as_str()));
    assert_eq!(
        revision_of(&pods.get("web-0").await.unwrap()),
        first,
        "below the partition"
    );

    let revisions: Api<ControllerRevision> = Api::namespaced(t.client.clone(), "default");
    let mut numbers: Vec<i64> = revisions
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.revision)
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2]);

    // Partition 0 finishes the update and makes the new revision current.
    let change = json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}});
    sets.patch("web", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap();
    eventually("web-0 updated", 10, || {
        let pods = pods.clone();
        let first = first.clone();
        async move {
            pods.get_opt("web-0")
                .await
                .unwrap()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && revision_of(p) != first)
        }
    })
    .await;
    mark_ready(&t.client, "web-0").await;
    eventually("the update revision becomes current", 10, || {
        let sets = sets.clone();
        async move {
            let status = sets.get("web").await.unwrap().status?;
            (status.current_revision == status.update_revision
                && status.current_replicas == Some(3))
            .then_some(())
        }
    })
    .await;

    // Scale down: the highest ordinal goes; its claim is handed to the pod (whenScaled: Delete).
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(t.client.clone(), "default");
    let change = json!({"spec": {"replicas": 1}});
    sets.patch("web", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap();
    eventually("scaled to one", 10, || {
        let client = t.client.clone();
        async move { (live_pod_names(&client).await == ["web-0"]).then_some(()) }
    })
    .await;
    let claim = claims.get("www-web-2").await.unwrap();
    let owners = claim.metadata.owner_references.unwrap();
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].name.as_str()),
        ("Pod", "web-2")
    );
    let claim0 = claims.get("www-web-0").await.unwrap();
    assert!(
        claim0
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "whenDeleted: Retain"
    );
}
