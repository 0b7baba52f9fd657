//! Volume-aware scheduling against the real API server: the scheduler's VolumeBinding and
//! VolumeRestrictions plugins with the controller manager's PersistentVolume binder running
//! beside them, nodes as plain Node objects. What happens is read back through the API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use rkube_controllers::persistentvolume::PersistentVolumeController;
use rkube_scheduler_tests::{Cluster, start};
use serde_json::json;

/// A cluster with two nodes (`node-a`, `node-b`, labelled with their hostnames) and the
/// PersistentVolume binder; the binder stops when the returned handle is dropped.
async fn cluster() -> (Cluster, AbortOnDrop) {
    let c = start().await;
    for name in ["node-a", "node-b"] {
        c.node(
            name,
            "4",
            json!({"kubernetes.io/hostname": name}),
            json!([]),
        )
        .await;
    }
    let binder = tokio::spawn(PersistentVolumeController::new(c.client.clone()).run());
    (c, AbortOnDrop(binder))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..400 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn volumes(c: &Cluster) -> Api<PersistentVolume> {
    Api::all(c.client.clone())
}

fn claims(c: &Cluster) -> Api<PersistentVolumeClaim> {
    Api::namespaced(c.client.clone(), "default")
}

async fn class(c: &Cluster, name: &str, mode: &str) {
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": name},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": mode,
    }))
    .unwrap();
    Api::<StorageClass>::all(c.client.clone())
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
}

/// A ReadWriteOnce local volume of `size` on `node`, in `class` ("" for none), reclaim
/// policy Retain.
async fn local_volume(c: &Cluster, name: &str, size: &str, class: &str, node: &str) {
    local_volume_with_mode(c, name, size, class, node, "ReadWriteOnce").await
}

async fn local_volume_with_mode(
    c: &Cluster,
    name: &str,
    size: &str,
    class: &str,
    node: &str,
    mode: &str,
) {
    let mut spec = json!({
        "capacity": {"storage": size},
        "accessModes": [mode],
        "persistentVolumeReclaimPolicy": "Retain",
        "local": {"path": format!("/mnt/{name}")},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
    });
    if !class.is_empty() {
        spec["storageClassName"] = json!(class);
    }
    let volume: PersistentVolume =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    volumes(c)
        .create(&PostParams::default(), &volume)
        .await
        .unwrap();
}

async fn claim(c: &Cluster, name: &str, size: &str, class: &str, mode: &str) {
    let mut spec = json!({
        "accessModes": [mode],
        "resources": {"requests": {"storage": size}},
    });
    if !class.is_empty() {
        spec["storageClassName"] = json!(class);
    }
    let claim: PersistentVolumeClaim =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    claims(c)
        .create(&PostParams::default(), &claim)
        .await
        .unwrap();
}

async fn pod_using(c: &Cluster, name: &str, claim: &str) {
    c.pod(
        name,
        "100m",
        json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}),
        json!({}),
    )
    .await;
}

fn phase_of_volume(v: &PersistentVolume) -> String {
    v.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn phase_of_claim(c: &PersistentVolumeClaim) -> String {
    c.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

/// Waits until the claim and the volume are Bound to each other.
async fn bound_pair(c: &Cluster, claim_name: &str, volume_name: &str) {
    let claim = eventually("the claim to be Bound", || async {
        let claim = claims(c).get(claim_name).await.unwrap();
        (phase_of_claim(&claim) == "Bound").then_some(claim)
    })
    .await;
    assert_eq!(
        claim.spec.as_ref().unwrap().volume_name.as_deref(),
        Some(volume_name)
    );
    let annotations = claim.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("pv.kubernetes.io/bind-completed")
            .map(String::as_str),
        Some("yes")
    );
    let status = claim.status.unwrap();
    assert!(status.capacity.unwrap().contains_key("storage"));
    assert!(
        status
            .access_modes
            .unwrap()
            .contains(&"ReadWriteOnce".to_owned())
    );
    let volume = eventually("the volume to be Bound", || async {
        let volume = volumes(c).get(volume_name).await.unwrap();
        (phase_of_volume(&volume) == "Bound").then_some(volume)
    })
    .await;
    let reference = volume.spec.unwrap().claim_ref.unwrap();
    assert_eq!(reference.name.as_deref(), Some(claim_name));
    assert_eq!(reference.uid, claim.metadata.uid);
}

async fn claim_events(c: &Cluster, claim_name: &str, reason: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(c.client.clone(), "default");
    eventually(&format!("a {reason} event for {claim_name}"), || async {
        let found: Vec<Event> = api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| {
                e.involved_object.kind.as_deref() == Some("PersistentVolumeClaim")
                    && e.involved_object.name.as_deref() == Some(claim_name)
                    && e.reason.as_deref() == Some(reason)
            })
            .collect();
        (!found.is_empty()).then_some(found)
    })
    .await
}

#[tokio::test]
async fn a_wait_for_first_consumer_claim_is_bound_to_a_local_volume_on_the_node_the_pod_goes_to() {
    let (c, _binder) = cluster().await;
    class(&c, "local", "WaitForFirstConsumer").await;
    local_volume(&c, "local-b", "10Gi", "local", "node-b").await;
    claim(&c, "data", "5Gi", "local", "ReadWriteOnce").await;
    // Unbound until a pod uses it, with upstream's event.
    let waiting = claim_events(&c, "data", "WaitForFirstConsumer").await;
    assert_eq!(
        waiting[0].message.as_deref(),
        Some("waiting for first consumer to be created before binding")
    );
    assert_eq!(
        phase_of_claim(&claims(&c).get("data").await.unwrap()),
        "Pending"
    );

    pod_using(&c, "app", "data").await;
    assert_eq!(c.bound("app").await, "node-b");
    // The pod is bound only once its claim is: PreBind waited for the binder.
    let claim = claims(&c).get("data").await.unwrap();
    assert_eq!(phase_of_claim(&claim), "Bound");
    bound_pair(&c, "data", "local-b").await;
    let volume = volumes(&c).get("local-b").await.unwrap();
    assert_eq!(
        volume
            .metadata
            .annotations
            .unwrap_or_default()
            .get("pv.kubernetes.io/bound-by-controller")
            .map(String::as_str),
        Some("yes")
    );
}

#[tokio::test]
async fn an_immediate_claim_is_bound_by_the_controller_and_the_pod_follows_its_volume() {
    let (c, _binder) = cluster().await;
    class(&c, "fast", "Immediate").await;
    local_volume(&c, "big-a", "100Gi", "fast", "node-a").await;
    local_volume(&c, "fits-a", "2Gi", "fast", "node-a").await;
    local_volume(&c, "other-class-b", "2Gi", "", "node-b").await;
    claim(&c, "data", "1Gi", "fast", "ReadWriteOnce").await;
    // Bound before any pod exists: the smallest volume of the class that fits.
    bound_pair(&c, "data", "fits-a").await;
    assert_eq!(
        phase_of_volume(&volumes(&c).get("big-a").await.unwrap()),
        "Available"
    );
    pod_using(&c, "app", "data").await;
    assert_eq!(c.bound("app").await, "node-a");
}

#[tokio::test]
async fn a_pod_whose_claim_finds_no_volume_stays_pending_with_upstream_reasons() {
    let (c, _binder) = cluster().await;
    class(&c, "local", "WaitForFirstConsumer").await;
    local_volume(&c, "tiny-a", "1Gi", "local", "node-a").await;
    claim(&c, "data", "50Gi", "local", "ReadWriteOnce").await;
    pod_using(&c, "app", "data").await;
    let (reason, message) = c.unschedulable("app").await;
    assert_eq!(reason, "Unschedulable");
    assert!(
        message.starts_with(
            "0/2 nodes are available: 2 node(s) didn't find available persistent volumes to bind."
        ),
        "{message}"
    );
    let events = c.events("app", "FailedScheduling").await;
    assert!(
        events[0]
            .message
            .as_deref()
            .unwrap()
            .contains("didn't find available persistent volumes to bind"),
        "{events:?}"
    );
    // A volume that fits appears: the pod is tried again and lands on its node.
    local_volume(&c, "large-b", "60Gi", "local", "node-b").await;
    assert_eq!(c.bound("app").await, "node-b");
    bound_pair(&c, "data", "large-b").await;
}

#[tokio::test]
async fn a_missing_or_unbound_immediate_claim_is_reported_before_filtering() {
    let (c, _binder) = cluster().await;
    pod_using(&c, "orphan", "nowhere").await;
    let (_, message) = c.unschedulable("orphan").await;
    assert!(
        message
            .starts_with("0/2 nodes are available: persistentvolumeclaim \"nowhere\" not found."),
        "{message}"
    );
    // No volume and no class: the binder leaves the claim Pending with upstream's event.
    claim(&c, "unmatched", "1Gi", "", "ReadWriteOnce").await;
    let events = claim_events(&c, "unmatched", "FailedBinding").await;
    assert_eq!(
        events[0].message.as_deref(),
        Some("no persistent volumes available for this claim and no storage class is set")
    );
    pod_using(&c, "waiting", "unmatched").await;
    let (_, message) = eventually("the unbound-claim message", || async {
        let (reason, message) = c.unschedulable("waiting").await;
        message
            .contains("pod has unbound immediate PersistentVolumeClaims")
            .then_some((reason, message))
    })
    .await;
    assert!(
        message.starts_with(
            "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_read_write_once_pod_claim_in_use_keeps_a_second_pod_off_every_node() {
    let (c, _binder) = cluster().await;
    local_volume_with_mode(&c, "solo-a", "1Gi", "", "node-a", "ReadWriteOncePod").await;
    claim(&c, "solo", "1Gi", "", "ReadWriteOncePod").await;
    bound_pair_rwop(&c).await;
    pod_using(&c, "first", "solo").await;
    assert_eq!(c.bound("first").await, "node-a");
    pod_using(&c, "second", "solo").await;
    let (reason, message) = c.unschedulable("second").await;
    assert_eq!(reason, "Unschedulable");
    assert!(
        message.starts_with(
            "0/2 nodes are available: 2 node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode."
        ),
        "{message}"
    );
    // Once the first pod is gone the claim is free again.
    c.pods()
        .delete("first", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(c.bound("second").await, "node-a");
}

/// The ReadWriteOncePod claim of the test above, bound by the controller.
async fn bound_pair_rwop(c: &Cluster) {
    let claim = eventually("the claim to be Bound", || async {
        let claim = claims(c).get("solo").await.unwrap();
        (phase_of_claim(&claim) == "Bound").then_some(claim)
    })
    .await;
    assert_eq!(claim.spec.unwrap().volume_name.as_deref(), Some("solo-a"));
}

#[tokio::test]
async fn deleting_a_bound_claim_releases_a_retained_volume() {
    let (c, _binder) = cluster().await;
    local_volume(&c, "kept", "1Gi", "", "node-a").await;
    claim(&c, "data", "1Gi", "", "ReadWriteOnce").await;
    bound_pair(&c, "data", "kept").await;
    claims(&c)
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    let volume = eventually("the volume to be Released", || async {
        let volume = volumes(&c).get("kept").await.unwrap();
        (phase_of_volume(&volume) == "Released").then_some(volume)
    })
    .await;
    // Retain keeps the claimRef, so no new claim can take the data by accident.
    assert_eq!(
        volume.spec.unwrap().claim_ref.unwrap().name.as_deref(),
        Some("data")
    );
    claim(&c, "data", "1Gi", "", "ReadWriteOnce").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        phase_of_claim(&claims(&c).get("data").await.unwrap()),
        "Pending"
    );
}

#[tokio::test]
async fn a_generic_ephemeral_volume_waits_for_its_claim_then_binds_like_any_other() {
    use k8s_openapi::api::core::v1::Pod;
    let (c, _binder) = cluster().await;
    class(&c, "local", "WaitForFirstConsumer").await;
    local_volume(&c, "local-b", "10Gi", "local", "node-b").await;
    let template = json!({"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local",
        "resources": {"requests": {"storage": "1Gi"}}}});
    c.pod(
        "eph",
        "100m",
        json!({"volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}}]}),
        json!({}),
    )
    .await;
    let (reason, message) = c.unschedulable("eph").await;
    assert_eq!(reason, "Unschedulable");
    assert!(
        message.starts_with(
            "0/2 nodes are available: waiting for ephemeral volume controller to create the \
             persistentvolumeclaim \"eph-scratch\"."
        ),
        "{message}"
    );
    // The claim the ephemeral volume controller would make: named for the pod and volume,
    // controlled by the pod.
    let pod = Api::<Pod>::namespaced(c.client.clone(), "default")
        .get("eph")
        .await
        .unwrap();
    let mut claim = template.clone();
    claim["metadata"] = json!({"name": "eph-scratch", "ownerReferences": [{
        "apiVersion": "v1", "kind": "Pod", "name": "eph",
        "uid": pod.metadata.uid.unwrap(), "controller": true, "blockOwnerDeletion": true}]});
    claims(&c)
        .create(
            &PostParams::default(),
            &serde_json::from_value(claim).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(c.bound("eph").await, "node-b");
    bound_pair(&c, "eph-scratch", "local-b").await;
}
