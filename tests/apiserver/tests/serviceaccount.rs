//! ServiceAccount admission against the real API server, in process: a new pod runs as its
//! namespace's `default` account unless it names one, must name an account that exists, and
//! gets the `kube-api-access-…` token volume mounted in its containers unless automounting is
//! off.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use rkube_apiserver_tests::{TestServer, api_error, start_with};
use rkube_controllers::ControllerManager;
use serde_json::{Value, json};

const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A server with the ServiceAccount plugin on, as `rkube server` runs it.
async fn start() -> TestServer {
    start_with(|config| config.disable_admission_plugins.clear()).await
}

async fn create_account(client: &kube::Client, ns: &str, account: Value) {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(account).unwrap(),
        )
        .await
        .unwrap();
}

fn pod(name: &str, spec: Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// The created pod as JSON (the fields as the server stored them).
async fn create(pods: &Api<Pod>, pod: &Pod) -> Result<Value, kube::core::Status> {
    match pods.create(&PostParams::default(), pod).await {
        Ok(created) => Ok(serde_json::to_value(created).unwrap()),
        Err(err) => Err(api_error(err)),
    }
}

#[tokio::test]
async fn a_pod_runs_as_the_default_account_with_its_token_mounted() {
    let t = start().await;
    create_account(
        &t.client,
        "default",
        json!({"metadata": {"name": "default"}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let spec = json!({
        "initContainers": [{"name": "init", "image": "busybox"}],
        "containers": [
            {"name": "app", "image": "nginx"},
            {"name": "own", "image": "nginx",
             "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]},
        ],
        "volumes": [{"name": "mine", "emptyDir": {}}],
    });
    let created = create(&pods, &pod("web", spec)).await.unwrap();
    let spec = &created["spec"];
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["serviceAccount"], "default");

    let volumes = spec["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 2);
    let name = volumes[1]["name"].as_str().unwrap();
    let suffix = name.strip_prefix("kube-api-access-").unwrap();
    assert!(
        suffix.len() == 5
            && suffix
                .bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)),
        "{name}"
    );
    assert_eq!(
        volumes[1]["projected"],
        json!({
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        })
    );
    let mount = json!([{"name": name, "readOnly": true, "mountPath": MOUNT_PATH}]);
    assert_eq!(spec["initContainers"][0]["volumeMounts"], mount);
    assert_eq!(spec["containers"][0]["volumeMounts"], mount);
    assert_eq!(
        spec["containers"][1]["volumeMounts"],
        json!([{"name": "mine", "mountPath": MOUNT_PATH}]),
        "a container mounting something at the path keeps it"
    );
}

#[tokio::test]
async fn a_pod_naming_a_missing_account_is_forbidden() {
    let t = start().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let named =
        json!({"serviceAccountName": "robot", "containers": [{"name": "c", "image": "nginx"}]});
    let status = create(&pods, &pod("x", named)).await.unwrap_err();
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "pods \"x\" is forbidden: error looking up service account default/robot: serviceaccount \"robot\" not found"
    );

    // A pod whose name is to be generated is named by its prefix, as upstream generates the
    // name after admission.
    let generated: Pod = serde_json::from_value(json!({
        "metadata": {"generateName": "web-"},
        "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "nginx"}]},
    }))
    .unwrap();
    let status = create(&pods, &generated).await.unwrap_err();
    assert_eq!(
        status.message,
        "pods \"web-\" is forbidden: error looking up service account default/robot: serviceaccount \"robot\" not found"
    );

    // Without an account of its own the pod needs `default`, which is looked for a while.
    let started = std::time::Instant::now();
    let status = create(
        &pods,
        &pod(
            "y",
            json!({"containers": [{"name": "c", "image": "nginx"}]}),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "pods \"y\" is forbidden: error looking up service account default/default: serviceaccount \"default\" not found"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));

    create_account(&t.client, "default", json!({"metadata": {"name": "robot"}})).await;
    let named =
        json!({"serviceAccountName": "robot", "containers": [{"name": "c", "image": "nginx"}]});
    let created = create(&pods, &pod("x", named)).await.unwrap();
    assert_eq!(created["spec"]["serviceAccountName"], "robot");
}

#[tokio::test]
async fn automounting_can_be_turned_off_by_the_pod_or_its_account() {
    let t = start().await;
    create_account(
        &t.client,
        "default",
        json!({"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "registry"}]}),
    )
    .await;
    create_account(
        &t.client,
        "default",
        json!({"metadata": {"name": "quiet"}, "automountServiceAccountToken": false}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let containers = json!([{"name": "c", "image": "nginx"}]);
    let declined = create(
        &pods,
        &pod(
            "a",
            json!({"automountServiceAccountToken": false, "containers": containers}),
        ),
    )
    .await
    .unwrap();
    assert!(declined["spec"].get("volumes").is_none());
    assert!(
        declined["spec"]["containers"][0]
            .get("volumeMounts")
            .is_none()
    );
    assert_eq!(
        declined["spec"]["imagePullSecrets"],
        json!([{"name": "registry"}]),
        "the account's pull secrets are the pod's"
    );

    let quiet = create(
        &pods,
        &pod(
            "b",
            json!({"serviceAccountName": "quiet", "containers": containers}),
        ),
    )
    .await
    .unwrap();
    assert!(quiet["spec"].get("volumes").is_none());
    let insisting = create(
        &pods,
        &pod(
            "c",
            json!({"serviceAccountName": "quiet", "automountServiceAccountToken": true, "containers": containers}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(insisting["spec"]["volumes"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_mirror_pod_gets_no_account_and_may_not_name_one() {
    let t = start().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let mirror = |name: &str, spec: Value| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {"kubernetes.io/config.mirror": "0123abcd"}},
            "spec": spec,
        }))
        .unwrap()
    };
    let containers = json!([{"name": "c", "image": "nginx"}]);
    let created = create(
        &pods,
        &mirror("static-web", json!({"containers": containers})),
    )
    .await
    .unwrap();
    assert!(
        created["spec"].get("serviceAccountName").is_none(),
        "{created}"
    );
    assert!(created["spec"].get("volumes").is_none());
    let status = create(
        &pods,
        &mirror(
            "named",
            json!({"serviceAccountName": "default", "containers": containers}),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "pods \"named\" is forbidden: a mirror pod may not reference service accounts"
    );
}

#[tokio::test]
async fn a_pod_created_right_after_its_namespace_waits_for_the_default_account() {
    let t = start().await;
    let manager = ControllerManager::new(t.client.clone(), t.server.ca_cert())
        .with_controllers(&["serviceaccount"]);
    let _manager = tokio::spawn(manager.run());
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    for round in 0..3 {
        let ns = format!("fresh-{round}");
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
            .unwrap();
        let pods: Api<Pod> = Api::namespaced(t.client.clone(), &ns);
        let created = create(
            &pods,
            &pod(
                "first",
                json!({"containers": [{"name": "c", "image": "nginx"}]}),
            ),
        )
        .await
        .unwrap();
        assert_eq!(created["spec"]["serviceAccountName"], "default");
        assert_eq!(created["spec"]["volumes"].as_array().unwrap().len(), 1);
    }

    // A deleted `default` account is put back.
    let accounts: Api<ServiceAccount> = Api::namespaced(t.client.clone(), "fresh-0");
    accounts
        .delete("default", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    for _ in 0..100 {
        if accounts.get_opt("default").await.unwrap().is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the default account was not recreated");
}
