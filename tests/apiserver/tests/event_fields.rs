//! core/v1 Events filtered by the field selectors upstream supports for them, in lists and
//! watches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use rkube_apiserver_tests::{api_error, start};
use serde_json::json;

fn event(name: &str, kind: &str, object: &str, reason: &str, ty: &str, component: &str) -> Event {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "involvedObject": {"kind": kind, "name": object, "namespace": "default", "uid": format!("uid-{object}"),
            "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec.containers{c}"},
        "reason": reason,
        "message": "m",
        "type": ty,
        "source": {"component": component},
        "reportingComponent": component,
    }))
    .unwrap()
}

async fn names(events: &Api<Event>, selector: &str) -> Vec<String> {
    let list = events
        .list(&ListParams::default().fields(selector))
        .await
        .unwrap();
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .map(|e| e.metadata.name.unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn event_lists_and_watches_filter_by_upstreams_event_fields() {
    let t = start().await;
    let events: Api<Event> = Api::namespaced(t.client.clone(), "default");
    for e in [
        event(
            "a",
            "Pod",
            "web",
            "Scheduled",
            "Normal",
            "default-scheduler",
        ),
        event("b", "Pod", "web", "BackOff", "Warning", "kubelet"),
        event("c", "Node", "n1", "NodeReady", "Normal", "kubelet"),
    ] {
        events.create(&PostParams::default(), &e).await.unwrap();
    }
    for (selector, want) in [
        ("involvedObject.kind=Pod", vec!["a", "b"]),
        ("involvedObject.name=n1", vec!["c"]),
        ("involvedObject.namespace=default", vec!["a", "b", "c"]),
        ("involvedObject.uid=uid-web", vec!["a", "b"]),
        ("involvedObject.apiVersion=v1", vec!["a", "b", "c"]),
        ("involvedObject.resourceVersion=7", vec!["a", "b", "c"]),
        (
            "involvedObject.fieldPath=spec.containers{c}",
            vec!["a", "b", "c"],
        ),
        ("reason=BackOff", vec!["b"]),
        ("type=Warning", vec!["b"]),
        ("type!=Warning", vec!["a", "c"]),
        ("source=kubelet", vec!["b", "c"]),
        ("reportingComponent=default-scheduler", vec!["a"]),
        ("metadata.name=c", vec!["c"]),
        (
            "metadata.namespace=default,involvedObject.kind=Pod,type=Normal",
            vec!["a"],
        ),
    ] {
        assert_eq!(names(&events, selector).await, want, "{selector}");
    }
    let err = events
        .list(&ListParams::default().fields("message=m"))
        .await
        .unwrap_err();
    let status = api_error(err);
    assert_eq!(status.code, 400);
    assert_eq!(status.message, "field label not supported: message");

    // A watch sends only the matching events.
    let rv = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = events
        .watch(
            &WatchParams::default().fields("type=Warning,involvedObject.kind=Pod"),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    events
        .create(
            &PostParams::default(),
            &event("d", "Pod", "api", "Pulled", "Normal", "kubelet"),
        )
        .await
        .unwrap();
    events
        .create(
            &PostParams::default(),
            &event("e", "Node", "n2", "Failed", "Warning", "kubelet"),
        )
        .await
        .unwrap();
    events
        .create(
            &PostParams::default(),
            &event("f", "Pod", "api", "Failed", "Warning", "kubelet"),
        )
        .await
        .unwrap();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        WatchEvent::Added(e) => assert_eq!(e.metadata.name.as_deref(), Some("f")),
        other => panic!("expected f added, got {other:?}"),
    }
}
