//! `?fieldValidation=`: unknown and duplicate fields in JSON and YAML bodies, reported as
//! upstream's strict decoding does (a 400 under Strict, `Warning` headers under Warn).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kube::client::Body;
use rkube_apiserver_tests::start;
use serde_json::Value;

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

/// Upstream's field validation test body: a repeated name, unknown fields, a field both
/// unknown and repeated, repeated known fields.
fn json_body(name: &str) -> String {
    format!(
        r#"{{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {{"name": "{name}", "name": "{name}", "unknownMeta": "x", "labels": {{"app": "nginx"}}}},
  "spec": {{"unknown1": "val1", "unknownDupe": "valDupe", "unknownDupe": "valDupe2",
    "paused": true, "paused": false,
    "selector": {{"matchLabels": {{"app": "nginx"}}}},
    "template": {{"metadata": {{"labels": {{"app": "nginx"}}}},
      "spec": {{"containers": [{{"name": "nginx", "image": "nginx:latest", "unknownNested": "val1",
        "imagePullPolicy": "Always", "imagePullPolicy": "Never"}}]}}}}}}}}"#
    )
}

fn yaml_body(name: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  name: {name}
  unknownMeta: x
  labels:
    app: nginx
spec:
  unknown1: val1
  unknownDupe: valDupe
  unknownDupe: valDupe2
  paused: true
  paused: false
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:latest
        unknownNested: val1
        imagePullPolicy: Always
        imagePullPolicy: Never
"
    )
}

const JSON_FINDINGS: [&str; 7] = [
    r#"duplicate field "metadata.name""#,
    r#"unknown field "metadata.unknownMeta""#,
    r#"unknown field "spec.unknown1""#,
    r#"unknown field "spec.unknownDupe""#,
    r#"duplicate field "spec.paused""#,
    r#"unknown field "spec.template.spec.containers[0].unknownNested""#,
    r#"duplicate field "spec.template.spec.containers[0].imagePullPolicy""#,
];

const YAML_FINDINGS: [&str; 8] = [
    r#"line 5: key "name" already set in map"#,
    r#"line 12: key "unknownDupe" already set in map"#,
    r#"line 14: key "paused" already set in map"#,
    r#"line 28: key "imagePullPolicy" already set in map"#,
    r#"unknown field "metadata.unknownMeta""#,
    r#"unknown field "spec.template.spec.containers[0].unknownNested""#,
    r#"unknown field "spec.unknown1""#,
    r#"unknown field "spec.unknownDupe""#,
];

async fn send(
    client: &kube::Client,
    method: &str,
    uri: &str,
    content_type: &str,
    body: String,
) -> (u16, Vec<String>, Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("Content-Type", content_type)
        .header("Accept", "application/json")
        .body(Body::from(body.into_bytes()))
        .unwrap();
    let response = client.send(request).await.unwrap();
    let status = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| {
            let text = v.to_str().unwrap();
            let text = text
                .strip_prefix("299 - \"")
                .unwrap()
                .strip_suffix('"')
                .unwrap();
            text.replace("\\\"", "\"")
        })
        .collect();
    let body = response.into_body().collect_bytes().await.unwrap();
    (status, warnings, serde_json::from_slice(&body).unwrap())
}

fn strict_error(findings: &[&str]) -> String {
    format!(
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: {}",
        findings.join(", ")
    )
}

#[tokio::test]
async fn strict_json_creates_and_updates_are_refused_naming_duplicate_and_unknown_fields() {
    let t = start().await;
    let uri = format!("{DEPLOYMENTS}?fieldValidation=Strict");
    let (status, _, body) = send(&t.client, "POST", &uri, "application/json", json_body("d")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["reason"], "BadRequest");
    assert_eq!(body["message"], strict_error(&JSON_FINDINGS));

    // An update of an existing object is judged the same way.
    let valid = json_body("d")
        .replace(
            r#""name": "d", "name": "d", "unknownMeta": "x","#,
            r#""name": "d","#,
        )
        .replace(
            r#""unknown1": "val1", "unknownDupe": "valDupe", "unknownDupe": "valDupe2","#,
            "",
        )
        .replace(r#""paused": true, "paused": false,"#, "")
        .replace(r#""unknownNested": "val1","#, "")
        .replace(r#""imagePullPolicy": "Always", "#, "");
    let (status, warnings, body) = send(&t.client, "POST", &uri, "application/json", valid).await;
    assert_eq!(status, 201, "{body}");
    assert!(warnings.is_empty(), "{warnings:?}");
    let (status, _, body) = send(
        &t.client,
        "PUT",
        &format!("{DEPLOYMENTS}/d?fieldValidation=Strict"),
        "application/json",
        json_body("d"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], strict_error(&JSON_FINDINGS));
}

#[tokio::test]
async fn warn_reports_each_finding_as_a_warning_and_the_last_duplicate_wins() {
    let t = start().await;
    for (name, uri) in [
        ("warned", format!("{DEPLOYMENTS}?fieldValidation=Warn")),
        ("defaulted", DEPLOYMENTS.to_owned()),
    ] {
        let (status, warnings, body) =
            send(&t.client, "POST", &uri, "application/json", json_body(name)).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(warnings, JSON_FINDINGS, "{name}");
        assert_eq!(body["spec"]["paused"], false);
        assert_eq!(
            body["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Never"
        );
    }
    let (status, warnings, _) = send(
        &t.client,
        "POST",
        &format!("{DEPLOYMENTS}?fieldValidation=Ignore"),
        "application/json",
        json_body("ignored"),
    )
    .await;
    assert_eq!(status, 201);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[tokio::test]
async fn yaml_duplicates_are_reported_by_line_before_the_unknown_fields() {
    let t = start().await;
    let (status, _, body) = send(
        &t.client,
        "POST",
        &format!("{DEPLOYMENTS}?fieldValidation=Strict"),
        "application/yaml",
        yaml_body("y"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = format!(
        "yaml: unmarshal errors:\n  {}",
        YAML_FINDINGS[..4].join("\n  ")
    );
    let mut findings = vec![message.as_str()];
    findings.extend(&YAML_FINDINGS[4..]);
    assert_eq!(body["message"], strict_error(&findings));

    let (status, warnings, body) = send(
        &t.client,
        "POST",
        &format!("{DEPLOYMENTS}?fieldValidation=Warn"),
        "application/yaml",
        yaml_body("y"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(warnings, YAML_FINDINGS);
}

#[tokio::test]
async fn patches_that_repeat_fields_are_refused_or_warned_as_upstream() {
    let t = start().await;
    let uri = "/api/v1/namespaces/default/configmaps";
    let (status, _, _) = send(
        &t.client,
        "POST",
        uri,
        "application/json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"k":"v"}}"#.into(),
    )
    .await;
    assert_eq!(status, 201);
    let one = format!("{uri}/c");
    let strict = format!("{one}?fieldValidation=Strict");
    let warn = format!("{one}?fieldValidation=Warn");

    // Merge patch: the repeated member, on `patch`, with the patched object as the value.
    let merge = r#"{"data":{"a":"1","a":"2"}}"#;
    let (status, _, body) = send(
        &t.client,
        "PATCH",
        &strict,
        "application/merge-patch+json",
        merge.into(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let cause = &body["details"]["causes"][0];
    assert_eq!(cause["field"], "patch");
    assert!(
        cause["message"]
            .as_str()
            .unwrap()
            .ends_with("strict decoding error: duplicate field \"data.a\""),
        "{body}"
    );
    // Strategic merge patch: the value is the patch as Go prints a map.
    let (status, _, body) = send(
        &t.client,
        "PATCH",
        &strict,
        "application/strategic-merge-patch+json",
        merge.into(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["message"],
        " \"\" is invalid: patch: Invalid value: \"map[data:map[a:2]]\": strict decoding error: \
         duplicate field \"data.a\""
    );
    // JSON patch: the operation's repeated member, prefixed.
    let json_patch = r#"[{"op":"add","op":"add","path":"/data/b","value":"x"}]"#;
    let (status, _, body) = send(
        &t.client,
        "PATCH",
        &strict,
        "application/json-patch+json",
        json_patch.into(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("strict decoding error: json patch duplicate field \"[0].op\""),
        "{body}"
    );
    // Warn: applied, last member winning, with one warning per repeat.
    let (status, warnings, body) = send(
        &t.client,
        "PATCH",
        &warn,
        "application/merge-patch+json",
        merge.into(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["a"], "2");
    assert_eq!(warnings, ["duplicate field \"data.a\""]);
    // Server-side apply: the configuration's repeated keys, as YAML decoding words them.
    let apply = format!("{one}?fieldManager=tester&fieldValidation=Strict");
    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata: {x: '1', x: '2'}\n";
    let (status, _, body) = send(
        &t.client,
        "PATCH",
        &apply,
        "application/apply-patch+yaml",
        config.into(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "error strict decoding patch: error converting YAML to JSON: yaml: unmarshal errors:\n  \
         line 5: key \"x\" already set in map"
    );
    // Without a repeat, nothing is said.
    let (status, warnings, _) = send(
        &t.client,
        "PATCH",
        &warn,
        "application/merge-patch+json",
        r#"{"data":{"z":"1"}}"#.into(),
    )
    .await;
    assert_eq!((status, warnings.len()), (200, 0));
}
