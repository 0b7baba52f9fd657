//! Custom-resource cases: creates of Gateway API HTTPRoutes (a real definition with a large
//! structural schema, defaults and about 180 CEL rules), and what a validating admission
//! webhook on loopback adds to each create.

use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use crate::webhook::Webhook;
use crate::{line, percentile};

/// Gateway API v1.6.1's HTTPRoute definition, as the apiserver tests keep it.
const HTTPROUTE_CRD: &str = include_str!(
    "../../../tests/apiserver/testdata/crds/gateway-api/gateway.networking.k8s.io_httproutes.yaml"
);

/// An HTTPRoute as an ingress user writes one: two rules with path and header matches, a
/// header filter, weighted backends and timeouts.
fn route(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "parentRefs": [{"name": "gateway", "sectionName": "https"}],
            "hostnames": ["shop.example.com", "www.shop.example.com"],
            "rules": [
                {
                    "matches": [
                        {"path": {"type": "PathPrefix", "value": "/api"},
                         "headers": [{"name": "x-canary", "value": "true"}]},
                        {"path": {"type": "Exact", "value": "/healthz"}, "method": "GET"},
                    ],
                    "filters": [{"type": "RequestHeaderModifier",
                                 "requestHeaderModifier": {"set": [{"name": "x-route", "value": name}]}}],
                    "backendRefs": [{"name": "api-v2", "port": 8080, "weight": 90},
                                    {"name": "api-v3", "port": 8080, "weight": 10}],
                    "timeouts": {"request": "10s", "backendRequest": "5s"},
                },
                {"backendRefs": [{"name": "web", "port": 80}]},
            ],
        },
    }))
    .unwrap()
}

/// Creates routes `from..to` with `clients` concurrent clients; returns creates/s.
async fn create_routes(
    api: &Api<DynamicObject>,
    prefix: &str,
    from: usize,
    to: usize,
    clients: usize,
) -> f64 {
    let t = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let api = api.clone();
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                for i in (from + c..to).step_by(clients) {
                    let object = route(&format!("{prefix}-{i:06}"));
                    api.create(&PostParams::default(), &object).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (to - from) as f64 / t.elapsed().as_secs_f64()
}

/// The latency of one create through `api`.
async fn timed_create(api: &Api<DynamicObject>, name: &str) -> Duration {
    let object = route(name);
    let started = Instant::now();
    api.create(&PostParams::default(), &object).await.unwrap();
    started.elapsed()
}

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    )
}

/// Creates the HTTPRoute definition and waits until its resources are served.
async fn establish(client: &kube::Client) -> Api<DynamicObject> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_norway::from_str(HTTPROUTE_CRD).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource());
    for _ in 0..400 {
        if api
            .create(&PostParams::default(), &route("probe"))
            .await
            .is_ok()
        {
            return api;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("httproutes were never served");
}

/// Runs the custom-resource cases with `count` creates each.
pub async fn run(client: &kube::Client, count: usize) {
    let api = establish(client).await;

    let rate = create_routes(&api, "one", 0, count, 1).await;
    line("httproutes-1-client", "creates_per_s", rate, "1/s");
    let rate = create_routes(&api, "many", 0, count * 4, 64).await;
    line("httproutes-64-clients", "creates_per_s", rate, "1/s");

    // The webhook reviews creates in one namespace only; creates there and in `default`
    // alternate, so both latencies are measured under the same conditions.
    let webhook = Webhook::start().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "hooked",
                "labels": {"bench-webhook": "on"}}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let configurations: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let configuration = webhook.configuration("gateway.networking.k8s.io", "v1", "httproutes");
    configurations
        .create(
            &PostParams::default(),
            &serde_json::from_value(configuration).unwrap(),
        )
        .await
        .unwrap();
    let hooked_api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "hooked", &resource());
    // The configuration takes effect once the server's watch has seen it.
    let mut warm = 0;
    while webhook.answered() == 0 {
        assert!(warm < 400, "the webhook was never called");
        timed_create(&hooked_api, &format!("warm-{warm:03}")).await;
        warm += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let reviewed = webhook.answered();
    let (mut plain, mut hooked) = (Vec::new(), Vec::new());
    for i in 0..count {
        plain.push(timed_create(&api, &format!("plain-{i:06}")).await);
        hooked.push(timed_create(&hooked_api, &format!("hooked-{i:06}")).await);
    }
    assert_eq!(
        webhook.answered() - reviewed,
        count,
        "the webhook reviewed each create in its namespace only"
    );
    plain.sort();
    hooked.sort();
    let case = "httproutes-no-webhook";
    line(case, "create_p50", percentile(&plain, 0.5), "ms");
    line(case, "create_p99", percentile(&plain, 0.99), "ms");
    let case = "httproutes-validating-webhook";
    line(case, "create_p50", percentile(&hooked, 0.5), "ms");
    line(case, "create_p99", percentile(&hooked, 0.99), "ms");
    line(
        case,
        "webhook_added_p50",
        percentile(&hooked, 0.5) - percentile(&plain, 0.5),
        "ms",
    );
    line(
        case,
        "webhook_added_p99",
        percentile(&hooked, 0.99) - percentile(&plain, 0.99),
        "ms",
    );
    configurations
        .delete("bench", &Default::default())
        .await
        .unwrap();
}
