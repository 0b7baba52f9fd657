//! Watch streams in protobuf, as client-go asks for them: 4-byte big-endian length-prefixed
//! `metav1.WatchEvent` messages whose object is the `k8s\0` + `runtime.Unknown` envelope,
//! checked with k8s-pb's reference types.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::AsyncReadExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use kube::api::{Api, PostParams};
use prost::Message;
use rkube_apiserver_tests::start;
use serde_json::{Value, json};

async fn frames(
    client: &kube::Client,
    uri: &str,
    accept: &str,
    count: usize,
) -> Vec<meta::WatchEvent> {
    let request = http::Request::get(uri)
        .header("Accept", accept)
        .body(Vec::new())
        .unwrap();
    let mut body = client.request_stream(request).await.unwrap();
    let mut events = Vec::new();
    for _ in 0..count {
        let mut len = [0u8; 4];
        body.read_exact(&mut len).await.unwrap();
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        body.read_exact(&mut frame).await.unwrap();
        events.push(meta::WatchEvent::decode(frame.as_slice()).expect("a WatchEvent message"));
    }
    events
}

fn object_of(event: &meta::WatchEvent) -> Value {
    let raw = event
        .object
        .as_ref()
        .and_then(|o| o.raw.as_ref())
        .expect("raw object");
    assert_eq!(
        &raw[..4],
        b"k8s\0",
        "the embedded object carries the protobuf magic"
    );
    rkube_proto::decode(raw).expect("the embedded object decodes")
}

#[tokio::test]
async fn a_protobuf_watch_sends_length_prefixed_watch_events() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "pb"}, "data": {"k": "v"}})).unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let rv = created.metadata.resource_version.unwrap();

    // client-go's watch Accept header, from the version before the create: the creation
    // replays, then a change arrives live.
    let uri = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={}&timeoutSeconds=10",
        rv.parse::<i64>().unwrap() - 1
    );
    let watching = {
        let client = t.client.clone();
        tokio::spawn(async move {
            frames(
                &client,
                &uri,
                "application/vnd.kubernetes.protobuf;stream=watch, application/json",
                2,
            )
            .await
        })
    };
    let patch = json!({"data": {"k": "w"}});
    cms.patch(
        "pb",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
    let events = watching.await.unwrap();
    assert_eq!(events[0].r#type.as_deref(), Some("ADDED"));
    let added = object_of(&events[0]);
    assert_eq!(added["kind"], "ConfigMap");
    assert_eq!(added["apiVersion"], "v1");
    assert_eq!(added["metadata"]["name"], "pb");
    assert_eq!(added["metadata"]["resourceVersion"], json!(rv));
    assert_eq!(added["data"]["k"], "v");
    assert_eq!(events[1].r#type.as_deref(), Some("MODIFIED"));
    assert_eq!(object_of(&events[1])["data"]["k"], "w");
}

#[tokio::test]
async fn a_plain_protobuf_accept_on_a_watch_streams_initial_events_and_bookmarks() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "one"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let uri = "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=5";
    let events = frames(&t.client, uri, "application/vnd.kubernetes.protobuf", 2).await;
    assert_eq!(events[0].r#type.as_deref(), Some("ADDED"));
    assert_eq!(object_of(&events[0])["metadata"]["name"], "one");
    assert_eq!(events[1].r#type.as_deref(), Some("BOOKMARK"));
    let bookmark = object_of(&events[1]);
    assert_eq!(bookmark["kind"], "ConfigMap");
    assert_eq!(
        bookmark["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[tokio::test]
async fn a_protobuf_watch_from_a_compacted_version_gets_an_error_status_frame() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "old"}})).unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let rv: i64 = created.metadata.resource_version.unwrap().parse().unwrap();
    let again: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "new"}})).unwrap();
    let newer = cms.create(&PostParams::default(), &again).await.unwrap();
    let store = rkube_apiserver_tests::open_store(t.dir.path()).await;
    store
        .compact(newer.metadata.resource_version.unwrap().parse().unwrap())
        .await
        .unwrap();
    let uri = format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}");
    let events = frames(
        &t.client,
        &uri,
        "application/vnd.kubernetes.protobuf;stream=watch",
        1,
    )
    .await;
    assert_eq!(events[0].r#type.as_deref(), Some("ERROR"));
    let status = object_of(&events[0]);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 410);
}
