//! Admission webhooks against the real API server, in process: webhook servers on 127.0.0.1
//! over HTTPS with their own CA, reached by URL or through a Service's endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use rkube_apiserver_tests::{api_error, start};
use serde_json::{Value, json};

/// A webhook server: its address and the CA (PEM) its certificate chains to.
struct WebhookServer {
    addr: SocketAddr,
    ca_pem: String,
}

impl WebhookServer {
    /// Serves `decide` at any path, with a certificate for 127.0.0.1 and
    /// `webhook.default.svc`.
    async fn start(decide: impl Fn(&Value) -> Value + Send + Sync + 'static) -> Self {
        let (addr, ca_pem) = rkube_apiserver_tests::json_server(
            "webhook-ca",
            &["127.0.0.1", "webhook.default.svc"],
            move |review| {
                let mut response = decide(&review["request"]);
                response["uid"] = review["request"]["uid"].clone();
                json!({
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": response,
                })
            },
        )
        .await;
        Self { addr, ca_pem }
    }

    fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }
}

/// A webhook entry for configmaps on CREATE (and whatever `extra` adds or overrides).
fn webhook(name: &str, client_config: Value, extra: Value) -> Value {
    let mut hook = json!({
        "name": name,
        "clientConfig": client_config,
        "rules": [{
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["configmaps"],
        }],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 5,
    });
    for (k, v) in extra.as_object().unwrap() {
        hook[k] = v.clone();
    }
    hook
}

async fn validating(client: &kube::Client, name: &str, hooks: Vec<Value>) {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let config = json!({"metadata": {"name": name}, "webhooks": hooks});
    api.create(
        &PostParams::default(),
        &serde_json::from_value(config).unwrap(),
    )
    .await
    .unwrap();
}

fn configmap(name: &str, labels: Value, data: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": data}))
        .unwrap()
}

/// Retries `attempt` (given a fresh suffix) until it gives `Some`: a configuration takes
/// effect once the API server's watch cache has seen it.
async fn eventually<T, F: Future<Output = Option<T>>>(mut attempt: impl FnMut(usize) -> F) -> T {
    for i in 0..100 {
        if let Some(done) = attempt(i).await {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the webhook configuration never took effect");
}

/// Denies configmaps that carry the key `forbidden`.
fn deny_forbidden_key(request: &Value) -> Value {
    if request["object"]["data"].get("forbidden").is_some() {
        json!({"allowed": false, "status": {"code": 403, "message": "the configmap contains unwanted key"}})
    } else {
        json!({"allowed": true})
    }
}

#[tokio::test]
async fn a_validating_webhook_denies_with_its_message() {
    let t = start().await;
    let hook = WebhookServer::start(deny_forbidden_key).await;
    let config = json!({"url": hook.url("/validate"), "caBundle": hook.ca_bundle()});
    validating(
        &t.client,
        "deny-configmaps",
        vec![webhook("deny.example.com", config, json!({}))],
    )
    .await;
    let configmaps: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let status = eventually(|i| {
        let configmaps = configmaps.clone();
        async move {
            let cm = configmap(&format!("bad-{i}"), json!({}), json!({"forbidden": "x"}));
            configmaps
                .create(&PostParams::default(), &cm)
                .await
                .err()
                .map(api_error)
        }
    })
    .await;
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "admission webhook \"deny.example.com\" denied the request: the configmap contains unwanted key"
    );
    let fine = configmap("fine", json!({}), json!({"a": "b"}));
    configmaps
        .create(&PostParams::default(), &fine)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_mutating_webhook_adds_a_label_with_a_json_patch() {
    let t = start().await;
    let hook = WebhookServer::start(|request| {
        let patch = json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}]);
        let patch = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
        assert_eq!(request["operation"], "CREATE");
        assert_eq!(request["userInfo"]["username"], "system:apiserver");
        json!({"allowed": true, "patchType": "JSONPatch", "patch": patch})
    })
    .await;
    let api: Api<MutatingWebhookConfiguration> = Api::all(t.client.clone());
    let config = json!({
        "metadata": {"name": "add-label"},
        "webhooks": [webhook(
            "label.example.com",
            json!({"url": hook.url("/mutate"), "caBundle": hook.ca_bundle()}),
            json!({"reinvocationPolicy": "IfNeeded"}),
        )],
    });
    api.create(
        &PostParams::default(),
        &serde_json::from_value(config).unwrap(),
    )
    .await
    .unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let created = eventually(|i| {
        let configmaps = configmaps.clone();
        async move {
            let cm = configmap(&format!("cm-{i}"), json!({"app": "web"}), json!({}));
            let created = configmaps
                .create(&PostParams::default(), &cm)
                .await
                .unwrap();
            let labels = created.metadata.labels.clone().unwrap_or_default();
            labels.contains_key("mutated").then_some(created)
        }
    })
    .await;
    let labels = created.metadata.labels.unwrap();
    assert_eq!(labels["mutated"], "yes");
    assert_eq!(labels["app"], "web");
    let stored = configmaps
        .get(created.metadata.name.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(stored.metadata.labels.unwrap()["mutated"], "yes");
}

#[tokio::test]
async fn namespace_and_object_selectors_exclude_requests() {
    let t = start().await;
    let hook =
        WebhookServer::start(|_| json!({"allowed": false, "status": {"message": "guarded"}})).await;
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    for (name, labels) in [("guarded", json!({"webhook": "on"})), ("open", json!({}))] {
        let ns = json!({"metadata": {"name": name, "labels": labels}});
        namespaces
            .create(&PostParams::default(), &serde_json::from_value(ns).unwrap())
            .await
            .unwrap();
    }
    let config = json!({"url": hook.url("/"), "caBundle": hook.ca_bundle()});
    validating(
        &t.client,
        "guard",
        vec![webhook(
            "guard.example.com",
            config,
            json!({
                "namespaceSelector": {"matchLabels": {"webhook": "on"}},
                "objectSelector": {"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]},
            }),
        )],
    )
    .await;
    let guarded: Api<ConfigMap> = Api::namespaced(t.client.clone(), "guarded");
    let status = eventually(|i| {
        let guarded = guarded.clone();
        async move {
            let cm = configmap(&format!("cm-{i}"), json!({}), json!({}));
            guarded
                .create(&PostParams::default(), &cm)
                .await
                .err()
                .map(api_error)
        }
    })
    .await;
    assert_eq!(status.code, 400);
    assert_eq!(
        status.message,
        "admission webhook \"guard.example.com\" denied the request: guarded"
    );
    let skipped = configmap("skipped", json!({"skip": "yes"}), json!({}));
    guarded
        .create(&PostParams::default(), &skipped)
        .await
        .unwrap();
    let open: Api<ConfigMap> = Api::namespaced(t.client.clone(), "open");
    open.create(
        &PostParams::default(),
        &configmap("any", json!({}), json!({})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_unreachable_webhook_fails_the_request_only_under_failure_policy_fail() {
    let t = start().await;
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("https://127.0.0.1:{closed}/x");
    let only = |value: &str| json!({"matchLabels": {"policy": value}});
    validating(
        &t.client,
        "unreachable",
        vec![
            webhook(
                "fail.example.com",
                json!({"url": url}),
                json!({"failurePolicy": "Fail", "objectSelector": only("fail")}),
            ),
            webhook(
                "ignore.example.com",
                json!({"url": url}),
                json!({"failurePolicy": "Ignore", "objectSelector": only("ignore")}),
            ),
        ],
    )
    .await;
    let configmaps: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let status = eventually(|i| {
        let configmaps = configmaps.clone();
        async move {
            let cm = configmap(&format!("fail-{i}"), json!({"policy": "fail"}), json!({}));
            configmaps
                .create(&PostParams::default(), &cm)
                .await
                .err()
                .map(api_error)
        }
    })
    .await;
    assert_eq!(status.code, 500);
    assert!(
        status.message.starts_with(&format!(
            "Internal error occurred: failed calling webhook \"fail.example.com\": failed to call webhook: Post \"https://127.0.0.1:{closed}/x?timeout=5s\": "
        )),
        "{}",
        status.message
    );
    configmaps
        .create(
            &PostParams::default(),
            &configmap("ignored", json!({"policy": "ignore"}), json!({})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_webhook_is_reached_through_its_service() {
    let t = start().await;
    let hook = WebhookServer::start(deny_forbidden_key).await;
    let services: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let svc = json!({
        "metadata": {"name": "webhook"},
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": hook.addr.port()}]},
    });
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(svc).unwrap(),
        )
        .await
        .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), "default");
    let slice = json!({
        "metadata": {"name": "webhook-1", "labels": {"kubernetes.io/service-name": "webhook"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": hook.addr.port(), "protocol": "TCP"}],
    });
    slices
        .create(
            &PostParams::default(),
            &serde_json::from_value(slice).unwrap(),
        )
        .await
        .unwrap();
    let config = json!({
        "service": {"namespace": "default", "name": "webhook", "path": "/validate"},
        "caBundle": hook.ca_bundle(),
    });
    validating(
        &t.client,
        "by-service",
        vec![webhook("service.example.com", config, json!({}))],
    )
    .await;
    let configmaps: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let status = eventually(|i| {
        let configmaps = configmaps.clone();
        async move {
            let cm = configmap(&format!("bad-{i}"), json!({}), json!({"forbidden": "x"}));
            configmaps
                .create(&PostParams::default(), &cm)
                .await
                .err()
                .map(api_error)
        }
    })
    .await;
    assert_eq!(
        status.message,
        "admission webhook \"service.example.com\" denied the request: the configmap contains unwanted key"
    );
}

#[tokio::test]
async fn a_webhooks_warnings_reach_the_client() {
    let t = start().await;
    let hook =
        WebhookServer::start(|_| json!({"allowed": true, "warnings": ["configmaps are watched"]}))
            .await;
    let config = json!({"url": hook.url("/"), "caBundle": hook.ca_bundle()});
    validating(
        &t.client,
        "warn",
        vec![webhook("warn.example.com", config, json!({}))],
    )
    .await;
    let warning = eventually(|i| {
        let client = t.client.clone();
        async move {
            let body = json!({"metadata": {"name": format!("cm-{i}")}});
            let request = http::Request::post("/api/v1/namespaces/default/configmaps")
                .header("content-type", "application/json")
                .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap();
            let response = client.send(request).await.unwrap();
            assert_eq!(response.status(), 201);
            response
                .headers()
                .get("warning")
                .map(|w| w.to_str().unwrap().to_owned())
        }
    })
    .await;
    assert_eq!(warning, "299 - \"configmaps are watched\"");
}

#[tokio::test]
async fn dry_run_requests_reach_webhooks_without_side_effects_marked_as_dry_runs() {
    let t = start().await;
    let hook = WebhookServer::start(|request| {
        let dry = request["dryRun"] == true;
        json!({"allowed": !dry, "status": {"message": "dry run seen"}})
    })
    .await;
    let config = json!({"url": hook.url("/"), "caBundle": hook.ca_bundle()});
    validating(
        &t.client,
        "effects",
        vec![webhook(
            "effects.example.com",
            config,
            json!({"sideEffects": "NoneOnDryRun"}),
        )],
    )
    .await;
    let configmaps: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let status = eventually(|i| {
        let (configmaps, dry) = (configmaps.clone(), dry.clone());
        async move {
            let cm = configmap(&format!("cm-{i}"), json!({}), json!({}));
            configmaps.create(&dry, &cm).await.err().map(api_error)
        }
    })
    .await;
    assert_eq!(
        status.message,
        "admission webhook \"effects.example.com\" denied the request: dry run seen"
    );
    configmaps
        .create(
            &PostParams::default(),
            &configmap("real", json!({}), json!({})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_validating_webhook_can_refuse_a_delete() {
    let t = start().await;
    let hook = WebhookServer::start(|request| {
        assert!(request["object"].is_null());
        let keep = request["oldObject"]["metadata"]["labels"]["keep"] == "yes";
        json!({"allowed": !keep, "status": {"message": "this configmap is kept"}})
    })
    .await;
    let config = json!({"url": hook.url("/"), "caBundle": hook.ca_bundle()});
    let delete_rule = json!({"rules": [{
        "operations": ["DELETE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"],
    }]});
    validating(
        &t.client,
        "keep",
        vec![webhook("keep.example.com", config, delete_rule)],
    )
    .await;
    let configmaps: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let status = eventually(|i| {
        let configmaps = configmaps.clone();
        async move {
            let name = format!("kept-{i}");
            let cm = configmap(&name, json!({"keep": "yes"}), json!({}));
            configmaps
                .create(&PostParams::default(), &cm)
                .await
                .unwrap();
            configmaps
                .delete(&name, &DeleteParams::default())
                .await
                .err()
                .map(api_error)
        }
    })
    .await;
    assert_eq!(
        status.message,
        "admission webhook \"keep.example.com\" denied the request: this configmap is kept"
    );
    let gone = configmap("gone", json!({}), json!({}));
    configmaps
        .create(&PostParams::default(), &gone)
        .await
        .unwrap();
    configmaps
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn webhook_configurations_are_never_sent_to_webhooks() {
    let t = start().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let everything = json!({"rules": [{
        "operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"],
    }]});
    let url = json!({"url": format!("https://127.0.0.1:{closed}/")});
    validating(
        &t.client,
        "everything",
        vec![webhook("everything.example.com", url, everything)],
    )
    .await;
    let configmaps: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    eventually(|i| {
        let configmaps = configmaps.clone();
        async move {
            let cm = configmap(&format!("cm-{i}"), json!({}), json!({}));
            configmaps.create(&PostParams::default(), &cm).await.err()
        }
    })
    .await;
    // Everything else is refused, yet the configuration itself can be changed and removed.
    let api: Api<ValidatingWebhookConfiguration> = Api::all(t.client.clone());
    validating(&t.client, "another", vec![]).await;
    let mut current = api.get("everything").await.unwrap();
    current.metadata.labels = Some([("edited".to_owned(), "yes".to_owned())].into());
    api.replace("everything", &PostParams::default(), &current)
        .await
        .unwrap();
    api.delete("everything", &DeleteParams::default())
        .await
        .unwrap();
    eventually(|i| {
        let configmaps = configmaps.clone();
        async move {
            let cm = configmap(&format!("after-{i}"), json!({}), json!({}));
            configmaps.create(&PostParams::default(), &cm).await.ok()
        }
    })
    .await;
}

#[tokio::test]
async fn a_webhook_configuration_is_validated_as_upstream_does() {
    let t = start().await;
    let api: Api<ValidatingWebhookConfiguration> = Api::all(t.client.clone());
    let config = json!({
        "metadata": {"name": "bad"},
        "webhooks": [webhook("deny", json!({"url": "http://127.0.0.1/x"}), json!({}))],
    });
    let status = api_error(
        api.create(
            &PostParams::default(),
            &serde_json::from_value(config).unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "ValidatingWebhookConfiguration.admissionregistration.k8s.io \"bad\" is invalid: [\
         webhooks[0].name: Invalid value: \"deny\": should be a domain with at least three segments separated by dots, \
         webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme]"
    );
}

/// A webhook for CONNECT on `pods/exec` sees the exec's options as its object and can refuse
/// the exec before it reaches any node.
#[tokio::test]
async fn a_validating_webhook_can_refuse_an_exec() {
    let t = start().await;
    let hook = WebhookServer::start(|request| {
        assert_eq!(request["operation"], "CONNECT");
        assert_eq!(request["kind"]["kind"], "PodExecOptions");
        assert_eq!(request["resource"]["resource"], "pods");
        assert_eq!(request["subResource"], "exec");
        assert_eq!(request["object"]["kind"], "PodExecOptions");
        assert!(request["options"].is_null());
        let command = request["object"]["command"].clone();
        let shell = command[0] == "sh";
        json!({"allowed": !shell, "status": {"code": 403, "message": format!("no shells: {command}")}})
    })
    .await;
    let config = json!({"url": hook.url("/"), "caBundle": hook.ca_bundle()});
    let connect_rule = json!({"rules": [{
        "operations": ["CONNECT"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/exec"],
    }]});
    validating(
        &t.client,
        "no-shells",
        vec![webhook("shells.example.com", config, connect_rule)],
    )
    .await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(t.client.clone(), "default");
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod).unwrap(),
    )
    .await
    .unwrap();
    let exec = |command: &'static str| {
        let client = t.client.clone();
        async move {
            let path = format!(
                "/api/v1/namespaces/default/pods/p/exec?command={command}&command=-c&container=c&stdout=true"
            );
            let request = http::Request::post(path).body(Vec::new()).unwrap();
            client.request_text(request).await.unwrap_err()
        }
    };
    let refused = eventually(|_| async {
        match exec("sh").await {
            kube::Error::Api(status) if status.message.contains("shells.example.com") => {
                Some(status)
            }
            _ => None,
        }
    })
    .await;
    assert_eq!(refused.code, 403);
    assert_eq!(
        refused.message,
        "admission webhook \"shells.example.com\" denied the request: no shells: [\"sh\",\"-c\"]"
    );
    // Another command passes admission and goes on to the node, which this pod lacks.
    match exec("ls").await {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 400, "{status:?}");
            assert!(
                status.message.contains("does not have a host assigned"),
                "{status:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}
