//! HorizontalPodAutoscalers served as autoscaling/v1 from the autoscaling/v2 storage: every
//! verb reads and writes the v1 form, and what v1 cannot say survives in annotations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::autoscaling::{v1, v2};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use rkube_apiserver_tests::start;
use serde_json::{Value, json};

const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";

fn hpa_v1(name: &str, cpu: Option<i32>) -> v1::HorizontalPodAutoscaler {
    serde_json::from_value(json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 3,
            "targetCPUUtilizationPercentage": cpu,
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn a_v1_autoscaler_is_read_as_v2_and_a_v2_one_as_v1() {
    let t = start().await;
    let old: Api<v1::HorizontalPodAutoscaler> = Api::namespaced(t.client.clone(), "default");
    let new: Api<v2::HorizontalPodAutoscaler> = Api::namespaced(t.client.clone(), "default");
    let created = old
        .create(&PostParams::default(), &hpa_v1("web", Some(50)))
        .await
        .unwrap();
    assert_eq!(
        created
            .spec
            .as_ref()
            .unwrap()
            .target_cpu_utilization_percentage,
        Some(50)
    );
    let stored = new.get("web").await.unwrap();
    let metrics = serde_json::to_value(&stored.spec.as_ref().unwrap().metrics).unwrap();
    assert_eq!(
        metrics,
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}}])
    );
    assert!(stored.metadata.annotations.is_none());

    // A v2 object with more than v1 can say: the rest goes into annotations, and comes
    // back when the v1 form is written.
    let rich: v2::HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "rich"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 4,
            "metrics": [
                {"type": "Pods", "pods": {"metric": {"name": "qps"},
                    "target": {"type": "AverageValue", "averageValue": "10"}}},
                {"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70}}},
            ],
        },
    }))
    .unwrap();
    new.create(&PostParams::default(), &rich).await.unwrap();
    let as_v1 = old.get("rich").await.unwrap();
    assert_eq!(
        as_v1
            .spec
            .as_ref()
            .unwrap()
            .target_cpu_utilization_percentage,
        Some(70)
    );
    let annotations = as_v1.metadata.annotations.clone().unwrap();
    let others: Value = serde_json::from_str(&annotations[METRICS]).unwrap();
    assert_eq!(
        others,
        json!([{"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}}])
    );
    let mut changed = as_v1;
    changed.spec.as_mut().unwrap().max_replicas = 6;
    let replaced = old
        .replace("rich", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(replaced.spec.as_ref().unwrap().max_replicas, 6);
    let stored = new.get("rich").await.unwrap();
    let spec = stored.spec.unwrap();
    assert_eq!(spec.max_replicas, 6);
    assert_eq!(spec.metrics.unwrap().len(), 2);
    assert!(stored.metadata.annotations.is_none());

    // Both versions list the same objects.
    let listed = old.list(&ListParams::default()).await.unwrap();
    let names: Vec<_> = listed
        .items
        .iter()
        .map(|h| h.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["rich", "web"]);
    assert_eq!(
        listed.items[1]
            .spec
            .as_ref()
            .unwrap()
            .target_cpu_utilization_percentage,
        Some(50)
    );
}

#[tokio::test]
async fn patches_apply_to_the_v1_form() {
    let t = start().await;
    let old: Api<v1::HorizontalPodAutoscaler> = Api::namespaced(t.client.clone(), "default");
    let new: Api<v2::HorizontalPodAutoscaler> = Api::namespaced(t.client.clone(), "default");
    old.create(&PostParams::default(), &hpa_v1("web", None))
        .await
        .unwrap();
    // Without a CPU target, v1 means 80%.
    let read = old.get("web").await.unwrap();
    assert_eq!(
        read.spec.unwrap().target_cpu_utilization_percentage,
        Some(80)
    );

    let merge = json!({"spec": {"targetCPUUtilizationPercentage": 40}});
    let patched = old
        .patch("web", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .unwrap();
    assert_eq!(
        patched.spec.unwrap().target_cpu_utilization_percentage,
        Some(40)
    );
    let strategic = json!({"spec": {"maxReplicas": 7}});
    old.patch(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(&strategic),
    )
    .await
    .unwrap();
    let request = http::Request::patch(
        "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web",
    )
    .header("content-type", "application/json-patch+json")
    .body(br#"[{"op": "replace", "path": "/spec/minReplicas", "value": 2}]"#.to_vec())
    .unwrap();
    let patched: Value =
        serde_json::from_str(&t.client.request_text(request).await.unwrap()).unwrap();
    assert_eq!(patched["apiVersion"], "autoscaling/v1");
    let stored = new.get("web").await.unwrap().spec.unwrap();
    assert_eq!((stored.min_replicas, stored.max_replicas), (Some(2), 7));
    assert_eq!(
        serde_json::to_value(&stored.metrics).unwrap()[0]["resource"]["target"]["averageUtilization"],
        40
    );

    // Server-side apply of a v1 configuration, creating and then changing.
    let apply = PatchParams::apply("tester");
    let config = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "applied"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                 "maxReplicas": 2, "targetCPUUtilizationPercentage": 30}});
    old.patch("applied", &apply, &Patch::Apply(&config))
        .await
        .unwrap();
    let mut config = config;
    config["spec"]["targetCPUUtilizationPercentage"] = json!(35);
    let applied = old
        .patch("applied", &apply, &Patch::Apply(&config))
        .await
        .unwrap();
    assert_eq!(
        applied.spec.unwrap().target_cpu_utilization_percentage,
        Some(35)
    );
    let stored = new.get("applied").await.unwrap().spec.unwrap();
    assert_eq!(
        serde_json::to_value(&stored.metrics).unwrap()[0]["resource"]["target"]["averageUtilization"],
        35
    );
}

#[tokio::test]
async fn the_status_is_written_and_read_in_v1() {
    let t = start().await;
    let old: Api<v1::HorizontalPodAutoscaler> = Api::namespaced(t.client.clone(), "default");
    let new: Api<v2::HorizontalPodAutoscaler> = Api::namespaced(t.client.clone(), "default");
    old.create(&PostParams::default(), &hpa_v1("web", Some(50)))
        .await
        .unwrap();
    let status = json!({"status": {"currentReplicas": 2, "desiredReplicas": 3,
        "currentCPUUtilizationPercentage": 65}});
    let written = old
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let got = written.status.unwrap();
    assert_eq!(
        (
            got.current_replicas,
            got.desired_replicas,
            got.current_cpu_utilization_percentage
        ),
        (2, 3, Some(65))
    );
    let stored = new.get_status("web").await.unwrap().status.unwrap();
    assert_eq!(stored.desired_replicas, 3);
    assert_eq!(
        serde_json::to_value(&stored.current_metrics).unwrap(),
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "current": {"averageUtilization": 65}}}])
    );
    let read = old.get_status("web").await.unwrap().status.unwrap();
    assert_eq!(read.current_cpu_utilization_percentage, Some(65));
}

#[tokio::test]
async fn a_v1_watch_sees_v1_objects() {
    let t = start().await;
    let old: Api<v1::HorizontalPodAutoscaler> = Api::namespaced(t.client.clone(), "default");
    let new: Api<v2::HorizontalPodAutoscaler> = Api::namespaced(t.client.clone(), "default");
    let mut events = old
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let created = new
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 2,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 45}}}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    match events.try_next().await.unwrap().expect("an event") {
        WatchEvent::Added(hpa) => {
            assert_eq!(hpa.metadata.name.as_deref(), Some("web"));
            assert_eq!(
                hpa.spec.unwrap().target_cpu_utilization_percentage,
                Some(45)
            );
            assert_eq!(
                hpa.metadata.resource_version,
                created.metadata.resource_version
            );
        }
        other => panic!("expected ADDED, got {other:?}"),
    }
}

#[tokio::test]
async fn autoscaling_lists_v2_first_then_v1() {
    let t = start().await;
    let request = http::Request::get("/apis/autoscaling")
        .body(Vec::new())
        .unwrap();
    let group: Value =
        serde_json::from_str(&t.client.request_text(request).await.unwrap()).unwrap();
    assert_eq!(group["preferredVersion"]["version"], "v2");
    let versions: Vec<&str> = group["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v2", "v1"]);
    let request = http::Request::get("/apis/autoscaling/v1")
        .body(Vec::new())
        .unwrap();
    let list: Value = serde_json::from_str(&t.client.request_text(request).await.unwrap()).unwrap();
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "horizontalpodautoscalers",
            "horizontalpodautoscalers/status"
        ]
    );
}
