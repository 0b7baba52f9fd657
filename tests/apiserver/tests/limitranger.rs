//! LimitRanger admission: LimitRange defaults on new pods' containers, and min / max /
//! maxLimitRequestRatio for containers, pods and claims refused with upstream's 403s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::{LimitRange, PersistentVolumeClaim, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use rkube_apiserver_tests::{api_error, start};
use serde_json::{Value, json};

fn from<T: k8s_openapi::serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn new_pods_get_the_namespaces_defaults_and_are_held_to_its_limits() {
    let t = start().await;
    let ranges: Api<LimitRange> = Api::namespaced(t.client.clone(), "default");
    ranges
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "limits"}, "spec": {"limits": [
                {"type": "Container",
                 "max": {"cpu": "800m"},
                 "default": {"memory": "256Mi"},
                 "defaultRequest": {"memory": "128Mi"},
                 "maxLimitRequestRatio": {"memory": "4"}},
                {"type": "Pod", "max": {"memory": "1Gi"}},
                {"type": "PersistentVolumeClaim", "max": {"storage": "2Gi"}},
            ]}})),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let created = pods
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "app"}, "spec": {
                "initContainers": [{"name": "setup", "image": "i", "resources": {"limits": {"cpu": "100m"}}}],
                "containers": [{"name": "web", "image": "i"}]}})),
        )
        .await
        .unwrap();
    let created = serde_json::to_value(created).unwrap();
    // The stored range's own defaults (max → default → defaultRequest) apply too.
    assert_eq!(
        created["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "800m", "memory": "256Mi"}, "requests": {"cpu": "800m", "memory": "128Mi"}})
    );
    assert_eq!(
        created["spec"]["initContainers"][0]["resources"],
        json!({"limits": {"cpu": "100m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}})
    );
    assert_eq!(
        created["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container web; cpu, memory limit for \
         container web; memory request for init container setup; memory limit for init \
         container setup"
    );

    let refused = |name: &str, resources: Value| {
        let pods = pods.clone();
        let pod: Pod = from(json!({"metadata": {"name": name}, "spec": {
            "containers": [{"name": "c", "image": "i", "resources": resources}]}}));
        async move { api_error(pods.create(&PostParams::default(), &pod).await.unwrap_err()) }
    };
    let status = refused("big", json!({"limits": {"cpu": "1500m"}})).await;
    assert_eq!(status.code, 403);
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(
        status.message,
        "pods \"big\" is forbidden: maximum cpu usage per Container is 800m, but limit is 1500m."
    );
    let status = refused(
        "ratio",
        json!({"limits": {"memory": "1Gi"}, "requests": {"memory": "128Mi"}}),
    )
    .await;
    assert_eq!(
        status.message,
        "pods \"ratio\" is forbidden: memory max limit to request ratio per Container is 4, \
         but provided ratio is 8.000000."
    );

    // Two containers of 1Gi each pass the Container max but not the Pod max.
    let pod: Pod = from(
        json!({"metadata": {"name": "pair"}, "spec": {"containers": [
            {"name": "a", "image": "i", "resources": {"limits": {"memory": "1Gi"}, "requests": {"memory": "512Mi"}}},
            {"name": "b", "image": "i", "resources": {"limits": {"memory": "1Gi"}, "requests": {"memory": "512Mi"}}},
        ]}}),
    );
    let status = api_error(pods.create(&PostParams::default(), &pod).await.unwrap_err());
    assert_eq!(
        status.message,
        "pods \"pair\" is forbidden: maximum memory usage per Pod is 1Gi, but limit is 2147483648."
    );

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(t.client.clone(), "default");
    let claim: PersistentVolumeClaim = from(json!({"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}}));
    let status = api_error(
        claims
            .create(&PostParams::default(), &claim)
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "persistentvolumeclaims \"data\" is forbidden: maximum storage usage per \
         PersistentVolumeClaim is 2Gi, but request is 5Gi."
    );
}

#[tokio::test]
async fn updates_of_claims_and_pod_resizes_are_held_to_the_ranges_but_pod_updates_are_not() {
    let t = start().await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(t.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    claims
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}})),
        )
        .await
        .unwrap();
    pods.create(
        &PostParams::default(),
        &from(
            json!({"metadata": {"name": "app"}, "spec": {"containers": [{
            "name": "web", "image": "i",
            "resources": {"requests": {"cpu": "200m"}, "limits": {"cpu": "400m"}}}]}}),
        ),
    )
    .await
    .unwrap();
    // A range that the existing claim and pod already break.
    let ranges: Api<LimitRange> = Api::namespaced(t.client.clone(), "default");
    ranges
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "limits"}, "spec": {"limits": [
                {"type": "Container", "max": {"cpu": "300m"}},
                {"type": "PersistentVolumeClaim", "min": {"storage": "2Gi"}},
            ]}})),
        )
        .await
        .unwrap();
    let label = json!({"metadata": {"labels": {"touched": "yes"}}});
    let params = PatchParams::default();
    // Any update of a claim is checked, as upstream's LimitRanger does.
    let status = api_error(
        claims
            .patch("data", &params, &Patch::Merge(&label))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "persistentvolumeclaims \"data\" is forbidden: minimum storage usage per \
         PersistentVolumeClaim is 2Gi, but request is 1Gi."
    );
    // A pod's own update cannot change its containers and is not checked.
    pods.patch("app", &params, &Patch::Merge(&label))
        .await
        .unwrap();
    // Its resize is.
    let resize = |cpu: &str| {
        json!({"spec": {"containers": [{"name": "web",
            "resources": {"requests": {"cpu": "200m"}, "limits": {"cpu": cpu}}}]}})
    };
    let status = api_error(
        pods.patch_subresource("resize", "app", &params, &Patch::Strategic(&resize("600m")))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 403, "{}", status.message);
    assert_eq!(
        status.message,
        "pods \"app\" is forbidden: maximum cpu usage per Container is 300m, but limit is 600m."
    );
    let resized = pods
        .patch_subresource("resize", "app", &params, &Patch::Strategic(&resize("250m")))
        .await
        .unwrap();
    let resources = serde_json::to_value(&resized.spec.unwrap().containers[0].resources).unwrap();
    assert_eq!(
        resources,
        json!({"requests": {"cpu": "200m"}, "limits": {"cpu": "250m"}})
    );
    assert_eq!(
        resized.metadata.labels.unwrap()["touched"],
        "yes",
        "a resize keeps the rest of the pod"
    );
}
