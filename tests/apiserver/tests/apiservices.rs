//! APIServices (apiregistration.k8s.io/v1): every group version served has a local
//! APIService, Available with reason Local, shown by `kubectl get apiservices`' Table; those
//! of a CustomResourceDefinition come and go with it; APIServices are validated with
//! upstream's messages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, DeleteParams, PostParams};
use rkube_apiserver_tests::{api_error, start};
use serde_json::{Value, json};

/// Waits until the APIService `name` exists (or, with `present` false, is gone).
async fn eventually(api: &Api<APIService>, name: &str, present: bool) -> Option<APIService> {
    for _ in 0..200 {
        let found = api.get_opt(name).await.unwrap();
        if found.is_some() == present
            && found.as_ref().is_none_or(|s| {
                s.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| !c.is_empty())
            })
        {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "APIService {name} did not become {}",
        if present { "present" } else { "absent" }
    );
}

#[tokio::test]
async fn every_served_group_version_has_an_available_local_api_service() {
    let t = start().await;
    let api: Api<APIService> = Api::all(t.client.clone());
    for name in [
        "v1.",
        "v1.apps",
        "v2.autoscaling",
        "v1.apiextensions.k8s.io",
    ] {
        let service = eventually(&api, name, true).await.unwrap();
        assert!(
            service.spec.as_ref().unwrap().service.is_none(),
            "{name} is local"
        );
        let conditions = service.status.unwrap().conditions.unwrap();
        let available = conditions.iter().find(|c| c.type_ == "Available").unwrap();
        assert_eq!(
            (
                available.status.as_str(),
                available.reason.as_deref(),
                available.message.as_deref()
            ),
            (
                "True",
                Some("Local"),
                Some("Local APIServices are always available")
            )
        );
    }
    let core = api.get("v1.").await.unwrap();
    assert_eq!(
        {
            let spec = core.spec.unwrap();
            (spec.group_priority_minimum, spec.version_priority)
        },
        (18000, 1)
    );

    let request = http::Request::get("/apis/apiregistration.k8s.io/v1/apiservices/v1.apps")
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .unwrap();
    let table: Value =
        serde_json::from_str(&t.client.request_text(request).await.unwrap()).unwrap();
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "Service", "Available", "Age"]);
    assert_eq!(
        table["rows"][0]["cells"].as_array().unwrap()[0..3],
        [json!("v1.apps"), json!("Local"), json!("True")]
    );
}

#[tokio::test]
async fn a_definitions_group_versions_get_local_api_services_while_it_lasts() {
    let t = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let crd = json!({
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab"},
            "versions": [
                {"name": "v1", "served": true, "storage": true,
                 "schema": {"openAPIV3Schema": {"type": "object"}}},
                {"name": "v2", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object"}}},
            ],
        },
    });
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd).unwrap(),
    )
    .await
    .unwrap();
    let api: Api<APIService> = Api::all(t.client.clone());
    for name in ["v1.stable.example.com", "v2.stable.example.com"] {
        let service = eventually(&api, name, true).await.unwrap();
        assert_eq!(
            (
                service.spec.as_ref().unwrap().group_priority_minimum,
                service.spec.as_ref().unwrap().version_priority
            ),
            (1000, 100)
        );
        assert_eq!(
            service.metadata.labels.unwrap()["kube-aggregator.kubernetes.io/automanaged"],
            "true"
        );
    }
    crds.delete("crontabs.stable.example.com", &DeleteParams::default())
        .await
        .unwrap();
    eventually(&api, "v1.stable.example.com", false).await;
    eventually(&api, "v2.stable.example.com", false).await;
    // Built-in ones stay.
    assert!(api.get_opt("v1.apps").await.unwrap().is_some());
}

#[tokio::test]
async fn api_services_are_validated_with_upstreams_messages() {
    let t = start().await;
    let api: Api<APIService> = Api::all(t.client.clone());
    let bad = json!({
        "metadata": {"name": "v1.wrong.example.com"},
        "spec": {"group": "metrics.example.com", "version": "v1",
                 "groupPriorityMinimum": 0, "versionPriority": 100,
                 "insecureSkipTLSVerify": true},
    });
    let err = api_error(
        api.create(
            &PostParams::default(),
            &serde_json::from_value(bad).unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "APIService.apiregistration.k8s.io \"v1.wrong.example.com\" is invalid: [metadata.name: Invalid value: \"v1.wrong.example.com\": must be `spec.version+\".\"+spec.group`: \"v1.metrics.example.com\", spec.groupPriorityMinimum: Invalid value: 0: must be positive and less than 20000, spec.insecureSkipTLSVerify: Invalid value: true: local APIServices may not have insecureSkipTLSVerify]"
    );
    let remote = json!({
        "metadata": {"name": "v1.metrics.example.com"},
        "spec": {"group": "metrics.example.com", "version": "v1",
                 "groupPriorityMinimum": 100, "versionPriority": 100,
                 "insecureSkipTLSVerify": true,
                 "service": {"namespace": "default", "name": "metrics"}},
    });
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(remote).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.spec.unwrap().service.unwrap().port, Some(443));
}
