//! `/openapi/v2`: the Swagger 2.0 document in JSON, and 406 for a client that accepts only
//! the protobuf form (client-go then goes on without it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rkube_apiserver_tests::start;
use serde_json::Value;

#[tokio::test]
async fn the_v2_document_is_served_in_json_with_kinds_and_patch_strategies() {
    let t = start().await;
    let request = http::Request::get("/openapi/v2")
        .header("Accept", "application/json")
        .body(Vec::new())
        .unwrap();
    let text = t.client.request_text(request).await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["swagger"], "2.0");
    let pod_spec = &doc["definitions"]["io.k8s.api.core.v1.PodSpec"];
    assert_eq!(
        pod_spec["properties"]["containers"]["x-kubernetes-patch-merge-key"],
        "name"
    );
    assert_eq!(
        doc["definitions"]["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Pod"
    );
    assert!(doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["get"].is_object());
}

#[tokio::test]
async fn a_client_that_accepts_only_the_protobuf_form_gets_not_acceptable() {
    let t = start().await;
    let request = http::Request::get("/openapi/v2")
        .header(
            "Accept",
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        )
        .body(Vec::new())
        .unwrap();
    let err = t.client.request_text(request).await.unwrap_err();
    match err {
        kube::Error::Api(status) => assert_eq!(status.code, 406),
        other => panic!("expected 406, got {other:?}"),
    }
}
