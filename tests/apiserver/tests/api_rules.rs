//! Upstream rules of the write and response paths that clients and upstream's own API checks
//! rely on, through `kube::Api` over the in-process transport: what a status or approval write
//! keeps, which responses can be a Table, and what a Service's type change allocates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rkube_apiserver_tests::{api_error, start};
use serde_json::{Value, json};

fn cronjob(name: &str) -> CronJob {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "schedule": "*/1 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure",
                "containers": [{"name": "c", "image": "busybox"}],
            }}}},
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn status_writes_keep_the_label_and_annotation_changes_they_carry() {
    let t = start().await;
    let cronjobs: Api<CronJob> = Api::namespaced(t.client.clone(), "default");
    cronjobs
        .create(&PostParams::default(), &cronjob("tick"))
        .await
        .unwrap();

    // A merge patch of the status with metadata, as upstream's CronJob API check sends it.
    let patch = json!({
        "metadata": {"annotations": {"patchedstatus": "true"}, "labels": {"tier": "batch"}},
        "status": {"lastScheduleTime": "2025-01-01T00:00:00Z"},
        "spec": {"schedule": "*/5 * * * *"},
    });
    let patched = cronjobs
        .patch_status("tick", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let meta = &patched.metadata;
    assert_eq!(meta.annotations.as_ref().unwrap()["patchedstatus"], "true");
    assert_eq!(meta.labels.as_ref().unwrap()["tier"], "batch");
    assert_eq!(
        patched.spec.as_ref().unwrap().schedule,
        "*/1 * * * *",
        "the status subresource never changes the spec"
    );
    assert!(patched.status.unwrap().last_schedule_time.is_some());
    assert_eq!(meta.generation, Some(1));

    // An update (PUT) of the status keeps its metadata too.
    let mut current = cronjobs.get("tick").await.unwrap();
    current
        .metadata
        .annotations
        .get_or_insert_default()
        .insert("updatedstatus".into(), "true".into());
    let updated = cronjobs
        .replace_status("tick", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(
        updated.metadata.annotations.as_ref().unwrap()["updatedstatus"],
        "true"
    );

    // A JSON patch and a strategic merge patch of an Ingress's status.
    let ingresses: Api<Ingress> = Api::namespaced(t.client.clone(), "default");
    let ingress = json!({
        "metadata": {"name": "web"},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
    });
    ingresses
        .create(
            &PostParams::default(),
            &serde_json::from_value(ingress).unwrap(),
        )
        .await
        .unwrap();
    let ops = json!([
        {"op": "add", "path": "/metadata/labels", "value": {"patched": "json"}},
        {"op": "add", "path": "/status", "value": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}},
    ]);
    ingresses
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::<()>::Json(serde_json::from_value(ops).unwrap()),
        )
        .await
        .unwrap();
    let strategic = json!({"metadata": {"annotations": {"patchedstatus": "true"}}});
    let patched = ingresses
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(&strategic),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["patched"], "json");
    assert_eq!(
        patched.metadata.annotations.unwrap()["patchedstatus"],
        "true"
    );
    let lb = patched.status.unwrap().load_balancer.unwrap();
    assert_eq!(lb.ingress.unwrap()[0].ip.as_deref(), Some("192.0.2.1"));
}

/// A PEM certificate request for `cn`.
fn certificate_request(cn: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

#[tokio::test]
async fn an_approval_write_keeps_its_annotations_and_changes_only_the_conditions() {
    let t = start().await;
    let csrs: Api<CertificateSigningRequest> = Api::all(t.client.clone());
    let csr = json!({
        "metadata": {"name": "e2e"},
        "spec": {
            "request": serde_json::to_value(ByteString(certificate_request("e2e").into_bytes())).unwrap(),
            "signerName": "example.com/e2e",
            "usages": ["client auth"],
        },
    });
    csrs.create(
        &PostParams::default(),
        &serde_json::from_value(csr).unwrap(),
    )
    .await
    .unwrap();

    let approval = json!({
        "metadata": {"annotations": {"patchedapproval": "true"}},
        "spec": {"signerName": "example.com/other"},
        "status": {"conditions": [{
            "type": "Approved", "status": "True", "reason": "E2E", "message": "set from a test",
        }]},
    });
    let approved = csrs
        .patch_approval("e2e", &PatchParams::default(), &Patch::Merge(&approval))
        .await
        .unwrap();
    assert_eq!(
        approved.metadata.annotations.as_ref().unwrap()["patchedapproval"],
        "true"
    );
    assert_eq!(approved.spec.signer_name, "example.com/e2e");
    let conditions = approved.status.unwrap().conditions.unwrap();
    assert_eq!(
        (conditions[0].type_.as_str(), conditions[0].status.as_str()),
        ("Approved", "True")
    );

    let status = json!({"metadata": {"annotations": {"patchedstatus": "true"}}});
    let patched = csrs
        .patch_status("e2e", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let annotations = patched.metadata.annotations.unwrap();
    assert_eq!(
        (
            annotations["patchedapproval"].as_str(),
            annotations["patchedstatus"].as_str()
        ),
        ("true", "true")
    );
}

/// Posts `body` to `path` accepting `accept`: the answer, or the error's Status.
async fn post(
    client: &kube::Client,
    path: &str,
    accept: &str,
    body: &Value,
) -> Result<Value, kube::core::Status> {
    let request = http::Request::post(path)
        .header("Accept", accept)
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .unwrap();
    match client.request_text(request).await {
        Ok(text) => Ok(serde_json::from_str(&text).unwrap()),
        Err(err) => Err(api_error(err)),
    }
}

#[tokio::test]
async fn a_table_of_a_review_is_not_acceptable() {
    let t = start().await;
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"nonResourceAttributes": {"path": "/", "verb": "get"}},
    });
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io";
    let status = post(&t.client, path, table, &review).await.unwrap_err();
    assert_eq!(
        (status.code, status.reason.as_str()),
        (406, "NotAcceptable")
    );
    assert_eq!(
        status.message,
        "only the following media types are accepted: application/json, application/yaml, \
         application/vnd.kubernetes.protobuf"
    );

    // A client that also lists plain JSON gets the review in JSON.
    let answered = post(
        &t.client,
        path,
        &format!("{table},application/json"),
        &review,
    )
    .await
    .unwrap();
    assert_eq!(answered["kind"], "SelfSubjectAccessReview");
    assert_eq!(answered["status"]["allowed"], true);

    // Stored resources still answer with a Table.
    let request = http::Request::get("/api/v1/namespaces")
        .header("Accept", table)
        .body(Vec::new())
        .unwrap();
    let listed: Value =
        serde_json::from_str(&t.client.request_text(request).await.unwrap()).unwrap();
    assert_eq!(listed["kind"], "Table");
}

#[tokio::test]
async fn changing_a_service_type_allocates_and_releases_as_create_and_delete_do() {
    let t = start().await;
    let services: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let external = json!({
        "metadata": {"name": "ext"},
        "spec": {"type": "ExternalName", "externalName": "foo.example.com"},
    });
    let created = services
        .create(
            &PostParams::default(),
            &serde_json::from_value(external).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.spec.unwrap().cluster_ip, None);

    // ExternalName to ClusterIP, as upstream's Services check changes it.
    let mut ext = services.get("ext").await.unwrap();
    let spec = ext.spec.as_mut().unwrap();
    spec.type_ = Some("ClusterIP".into());
    spec.external_name = None;
    spec.ports = Some(vec![
        serde_json::from_value(json!({"name": "http", "port": 80, "protocol": "TCP"})).unwrap(),
    ]);
    let cluster = services
        .replace("ext", &PostParams::default(), &ext)
        .await
        .unwrap()
        .spec
        .unwrap();
    let ip = cluster.cluster_ip.clone().unwrap();
    assert!(ip.starts_with("10.43."), "{ip}");
    assert_eq!(cluster.cluster_ips, Some(vec![ip.clone()]));
    assert_eq!(cluster.ip_families, Some(vec!["IPv4".to_owned()]));
    assert_eq!(cluster.ip_family_policy.as_deref(), Some("SingleStack"));

    // ClusterIP to NodePort: a port is allocated, the address kept.
    let to_node_port = json!({"spec": {"type": "NodePort"}});
    let node_port = services
        .patch("ext", &PatchParams::default(), &Patch::Merge(&to_node_port))
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(node_port.cluster_ip.as_deref(), Some(ip.as_str()));
    let port = node_port.ports.unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&port));
    assert_eq!(
        node_port.external_traffic_policy.as_deref(),
        Some("Cluster")
    );

    // Back to ExternalName: the address and the port are given up...
    let back = json!({"spec": {"type": "ExternalName", "externalName": "bar.example.com"}});
    let external = services
        .patch("ext", &PatchParams::default(), &Patch::Merge(&back))
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(
        (
            external.cluster_ip,
            external.cluster_ips,
            external.ip_families,
            external.ip_family_policy
        ),
        (None, None, None, None)
    );
    assert_eq!(external.ports.unwrap()[0].node_port, None);
    assert_eq!(external.external_traffic_policy, None);

    // ...so another Service can have them.
    let taker = json!({
        "metadata": {"name": "taker"},
        "spec": {"type": "NodePort", "clusterIP": ip, "ports": [{"port": 80, "nodePort": port}]},
    });
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(taker).unwrap(),
        )
        .await
        .unwrap();

    // ExternalName straight to LoadBalancer gets both, and NodePort to ClusterIP frees the
    // port alone.
    let to_lb = json!({"spec": {"type": "LoadBalancer", "externalName": null}});
    let lb = services
        .patch("ext", &PatchParams::default(), &Patch::Merge(&to_lb))
        .await
        .unwrap()
        .spec
        .unwrap();
    let lb_ip = lb.cluster_ip.unwrap();
    assert!(lb_ip.starts_with("10.43.") && lb_ip != ip);
    assert!(lb.ports.unwrap()[0].node_port.is_some());
    let to_cluster = json!({"spec": {"type": "ClusterIP"}});
    let cluster = services
        .patch("taker", &PatchParams::default(), &Patch::Merge(&to_cluster))
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(cluster.cluster_ip.as_deref(), Some(ip.as_str()));
    assert_eq!(cluster.ports.unwrap()[0].node_port, None);
    let reuse = json!({
        "metadata": {"name": "reuse"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]},
    });
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(reuse).unwrap(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_load_balancer_keeping_traffic_local_gets_a_health_check_node_port() {
    let t = start().await;
    let services: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let lb = json!({
        "metadata": {"name": "local-lb"},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]},
    });
    let spec = services
        .create(&PostParams::default(), &serde_json::from_value(lb).unwrap())
        .await
        .unwrap()
        .spec
        .unwrap();
    let check = spec.health_check_node_port.unwrap();
    assert!((30000..=32767).contains(&check), "{check}");
    assert_ne!(Some(check), spec.ports.unwrap()[0].node_port);

    // The port is taken: another Service cannot ask for it.
    let clash = json!({
        "metadata": {"name": "clash"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": check}]},
    });
    let err = api_error(
        services
            .create(
                &PostParams::default(),
                &serde_json::from_value(clash.clone()).unwrap(),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("provided port is already allocated"),
        "{}",
        err.message
    );

    // Cluster policy gives it back.
    let to_cluster = json!({"spec": {"externalTrafficPolicy": "Cluster"}});
    let spec = services
        .patch(
            "local-lb",
            &PatchParams::default(),
            &Patch::Merge(&to_cluster),
        )
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(spec.health_check_node_port, None);
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(clash).unwrap(),
        )
        .await
        .unwrap();
}
