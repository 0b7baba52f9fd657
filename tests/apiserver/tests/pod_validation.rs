//! Pod validation of security settings, answered as upstream's 422s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use rkube_apiserver_tests::{api_error, start};
use serde_json::json;

#[tokio::test]
async fn sysctls_and_security_ids_are_validated_as_upstream_does() {
    let t = start().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "tuned"},
        "spec": {
            "hostNetwork": true,
            "securityContext": {"runAsUser": -1, "sysctls": [
                {"name": "net.core.somaxconn", "value": "1024"},
                {"name": "kernel.shm_rmid_forced", "value": "1"},
                {"name": "kernel.shm_rmid_forced", "value": "0"},
                {"name": "no way", "value": "1"},
            ]},
            "containers": [{"name": "c", "image": "i"}],
        },
    }))
    .unwrap();
    let status = api_error(pods.create(&PostParams::default(), &pod).await.unwrap_err());
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    let causes: Vec<(String, String)> = status
        .details
        .unwrap()
        .causes
        .into_iter()
        .map(|c| (c.field, c.message))
        .collect();
    assert_eq!(
        causes,
        [
            (
                "spec.securityContext.runAsUser".to_owned(),
                "Invalid value: -1: must be between 0 and 2147483647, inclusive".to_owned()
            ),
            (
                "spec.securityContext.sysctls[0].name".to_owned(),
                "Invalid value: \"net.core.somaxconn\": may not be specified when 'hostNetwork' is true"
                    .to_owned()
            ),
            (
                "spec.securityContext.sysctls[2].name".to_owned(),
                "Duplicate value: \"kernel.shm_rmid_forced\"".to_owned()
            ),
            (
                "spec.securityContext.sysctls[3].name".to_owned(),
                "Invalid value: \"no way\": must have at most 253 characters and match regex \
                 ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$"
                    .to_owned()
            ),
        ]
    );

    // Namespaced sysctls without the host namespaces are fine.
    let ok: Pod = serde_json::from_value(json!({
        "metadata": {"name": "ok"},
        "spec": {
            "securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
            "containers": [{"name": "c", "image": "i"}],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &ok).await.unwrap();
}
