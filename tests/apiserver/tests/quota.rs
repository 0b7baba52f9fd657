//! The resource quota controller against the real API server, in process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ResourceQuota, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rkube_apiserver_tests::start;
use rkube_controllers::Settings;
use rkube_controllers::resourcequota::ResourceQuotaController;
use serde_json::json;

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn used(quota: &ResourceQuota) -> BTreeMap<String, String> {
    quota
        .status
        .as_ref()
        .and_then(|s| s.used.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn quota_status_shows_hard_limits_and_what_the_namespace_uses() {
    let t = start().await;
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap(),
        )
        .await
        .unwrap();
    let _controller =
        tokio::spawn(ResourceQuotaController::new(t.client.clone(), &Settings::default()).run());
    let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), "team");
    let quota = json!({"metadata": {"name": "compute"}, "spec": {"hard": {
        "pods": "10", "requests.cpu": "2", "requests.memory": "1Gi", "limits.memory": "2Gi",
        "configmaps": "5", "services": "4", "services.nodeports": "2", "resourcequotas": "1",
        "count/deployments.apps": "3",
    }}});
    quotas
        .create(
            &PostParams::default(),
            &serde_json::from_value(quota).unwrap(),
        )
        .await
        .unwrap();
    let empty = expect(&[
        ("pods", "0"),
        ("requests.cpu", "0"),
        ("requests.memory", "0"),
        ("limits.memory", "0"),
        ("configmaps", "0"),
        ("services", "0"),
        ("services.nodeports", "0"),
        ("resourcequotas", "1"),
        ("count/deployments.apps", "0"),
    ]);
    let q = eventually("an initial status", || async {
        let q = quotas.get("compute").await.unwrap();
        (used(&q) == empty).then_some(q)
    })
    .await;
    let hard = q.status.unwrap().hard.unwrap();
    assert_eq!(hard["requests.memory"].0, "1Gi");
    assert_eq!(hard.len(), 9);

    // Kinds without an informer are counted whenever the namespace is looked at again: the
    // Deployment goes first, so the changes after it bring it into the count.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(t.client.clone(), "team");
    let deployment = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment).unwrap(),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "team");
    for (name, cpu, memory) in [("a", "500m", "256Mi"), ("b", "250m", "256Mi")] {
        let pod = json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": "512Mi"}}}]}});
        pods.create(
            &PostParams::default(),
            &serde_json::from_value(pod).unwrap(),
        )
        .await
        .unwrap();
    }
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "team");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "cfg"}})).unwrap(),
    )
    .await
    .unwrap();
    let services: Api<Service> = Api::namespaced(t.client.clone(), "team");
    let svc = json!({"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}});
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(svc).unwrap(),
        )
        .await
        .unwrap();
    let busy = expect(&[
        ("pods", "2"),
        ("requests.cpu", "750m"),
        ("requests.memory", "512Mi"),
        ("limits.memory", "1Gi"),
        ("configmaps", "1"),
        ("services", "1"),
        ("services.nodeports", "2"),
        ("resourcequotas", "1"),
        ("count/deployments.apps", "1"),
    ]);
    eventually("usage of everything created", || async {
        let u = used(&quotas.get("compute").await.unwrap());
        (u == busy).then_some(())
    })
    .await;

    // A finished pod uses nothing; a deleted one is not counted.
    let finished = json!({"status": {"phase": "Succeeded"}});
    pods.patch_status("a", &PatchParams::default(), &Patch::Merge(&finished))
        .await
        .unwrap();
    services
        .delete("np", &DeleteParams::default())
        .await
        .unwrap();
    eventually("usage after the pod finished", || async {
        let u = used(&quotas.get("compute").await.unwrap());
        (u["pods"] == "1"
            && u["requests.cpu"] == "250m"
            && u["requests.memory"] == "256Mi"
            && u["services.nodeports"] == "0")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn scoped_quotas_count_only_the_pods_in_scope() {
    let t = start().await;
    let _controller =
        tokio::spawn(ResourceQuotaController::new(t.client.clone(), &Settings::default()).run());
    let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), "default");
    let quota = json!({"metadata": {"name": "best-effort"}, "spec": {"hard": {"pods": "5"}, "scopes": ["BestEffort"]}});
    quotas
        .create(
            &PostParams::default(),
            &serde_json::from_value(quota).unwrap(),
        )
        .await
        .unwrap();
    eventually("the quota counted", || async {
        let q = quotas.get("best-effort").await.unwrap();
        q.status.and_then(|s| s.used).map(|_| ())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let plain = json!({"metadata": {"name": "plain"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let sized = json!({"metadata": {"name": "sized"}, "spec": {"containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"cpu": "1"}}}]}});
    for pod in [plain, sized] {
        pods.create(
            &PostParams::default(),
            &serde_json::from_value(pod).unwrap(),
        )
        .await
        .unwrap();
    }
    eventually("one best-effort pod counted", || async {
        let u = used(&quotas.get("best-effort").await.unwrap());
        (u == expect(&[("pods", "1")])).then_some(())
    })
    .await;
}

#[tokio::test]
async fn creates_beyond_a_quota_are_refused_with_upstreams_message() {
    let t = start().await;
    let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), "default");
    let quota = json!({"metadata": {"name": "small"}, "spec": {"hard": {"pods": "2", "requests.cpu": "1", "configmaps": "1"}}});
    quotas
        .create(
            &PostParams::default(),
            &serde_json::from_value(quota).unwrap(),
        )
        .await
        .unwrap();
    // Until the controller has counted, nothing the quota limits can be created.
    let early: Pod = serde_json::from_value(json!({"metadata": {"name": "early"},
        "spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1m"}}}]}}))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let unknown = rkube_apiserver_tests::api_error(
        pods.create(&PostParams::default(), &early)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (unknown.code, unknown.message.as_str()),
        (
            403,
            "pods \"early\" is forbidden: status unknown for quota: small, resources: pods,requests.cpu"
        )
    );
    let _controller =
        tokio::spawn(ResourceQuotaController::new(t.client.clone(), &Settings::default()).run());
    eventually("the quota's status", || async {
        let q = quotas.get("small").await.unwrap();
        q.status.and_then(|s| s.hard).map(|_| ())
    })
    .await;
    let pod = |name: &str, cpu: Option<&str>| -> Pod {
        let resources = cpu.map_or(json!({}), |cpu| json!({"requests": {"cpu": cpu}}));
        serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": resources}]}}))
        .unwrap()
    };
    // A pod that does not say what it requests cannot be charged.
    let no_requests = rkube_apiserver_tests::api_error(
        pods.create(&PostParams::default(), &pod("x", None))
            .await
            .unwrap_err(),
    );
    assert_eq!(no_requests.code, 403);
    assert_eq!(
        no_requests.message,
        "pods \"x\" is forbidden: failed quota: small: must specify requests.cpu"
    );

    pods.create(&PostParams::default(), &pod("a", Some("600m")))
        .await
        .unwrap();
    let over = rkube_apiserver_tests::api_error(
        pods.create(&PostParams::default(), &pod("b", Some("500m")))
            .await
            .unwrap_err(),
    );
    assert_eq!((over.code, over.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        over.message,
        "pods \"b\" is forbidden: exceeded quota: small, requested: requests.cpu=500m, used: requests.cpu=600m, limited: requests.cpu=1"
    );
    pods.create(&PostParams::default(), &pod("c", Some("400m")))
        .await
        .unwrap();
    let third = rkube_apiserver_tests::api_error(
        pods.create(&PostParams::default(), &pod("d", Some("0")))
            .await
            .unwrap_err(),
    );
    assert!(
        third
            .message
            .contains("exceeded quota: small, requested: pods=1, used: pods=2, limited: pods=2"),
        "{}",
        third.message
    );

    // Other kinds are charged too; deleting frees the room once the controller has recounted.
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    cms.create(&PostParams::default(), &cm("one"))
        .await
        .unwrap();
    let refused = rkube_apiserver_tests::api_error(
        cms.create(&PostParams::default(), &cm("two"))
            .await
            .unwrap_err(),
    );
    assert_eq!(refused.code, 403);
    cms.delete("one", &DeleteParams::default()).await.unwrap();
    eventually("room for another config map", || async {
        cms.create(&PostParams::default(), &cm("two"))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let used = used(&quotas.get("small").await.unwrap());
    assert_eq!(used["pods"], "2");
    assert_eq!(used["requests.cpu"], "1");
}

#[tokio::test]
async fn extended_resources_and_storage_classes_are_charged_and_counted() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let t = start().await;
    let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), "default");
    let quota = json!({"metadata": {"name": "devices"}, "spec": {"hard": {
        "requests.example.com/gpu": "2",
        "requests.hugepages-2Mi": "4Mi",
        "gold.storageclass.storage.k8s.io/requests.storage": "5Gi",
        "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "2",
        "requests.storage": "20Gi",
    }}});
    quotas
        .create(
            &PostParams::default(),
            &serde_json::from_value(quota).unwrap(),
        )
        .await
        .unwrap();
    let _controller =
        tokio::spawn(ResourceQuotaController::new(t.client.clone(), &Settings::default()).run());
    eventually("the quota's usage", || async {
        let q = quotas.get("devices").await.unwrap();
        (used(&q).len() == 5).then_some(())
    })
    .await;

    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pod = |name: &str, gpus: &str| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"containers": [
            {"name": "c", "image": "i", "resources": {
                "requests": {"example.com/gpu": gpus}, "limits": {"example.com/gpu": gpus}}}]}}))
        .unwrap()
    };
    pods.create(&PostParams::default(), &pod("a", "2"))
        .await
        .unwrap();
    let over = rkube_apiserver_tests::api_error(
        pods.create(&PostParams::default(), &pod("b", "1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(over.code, 403);
    assert_eq!(
        over.message,
        "pods \"b\" is forbidden: exceeded quota: devices, requested: requests.example.com/gpu=1, used: requests.example.com/gpu=2, limited: requests.example.com/gpu=2"
    );

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(t.client.clone(), "default");
    let claim = |name: &str, class: &str, size: &str| -> PersistentVolumeClaim {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {
            "storageClassName": class, "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}}}}))
        .unwrap()
    };
    claims
        .create(&PostParams::default(), &claim("g1", "gold", "3Gi"))
        .await
        .unwrap();
    let over = rkube_apiserver_tests::api_error(
        claims
            .create(&PostParams::default(), &claim("g2", "gold", "3Gi"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        over.message,
        "persistentvolumeclaims \"g2\" is forbidden: exceeded quota: devices, requested: gold.storageclass.storage.k8s.io/requests.storage=3Gi, used: gold.storageclass.storage.k8s.io/requests.storage=3Gi, limited: gold.storageclass.storage.k8s.io/requests.storage=5Gi"
    );
    claims
        .create(&PostParams::default(), &claim("s1", "silver", "3Gi"))
        .await
        .unwrap();

    eventually("the controller's count", || async {
        let q = quotas.get("devices").await.unwrap();
        let want = expect(&[
            ("requests.example.com/gpu", "2"),
            ("requests.hugepages-2Mi", "0"),
            ("gold.storageclass.storage.k8s.io/requests.storage", "3Gi"),
            (
                "gold.storageclass.storage.k8s.io/persistentvolumeclaims",
                "1",
            ),
            ("requests.storage", "6Gi"),
        ]);
        (used(&q) == want).then_some(())
    })
    .await;
}
