//! The API server's verbs and rules, exercised through `kube::Api` over the in-process
//! transport, as a component or client program would use them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use rkube_apiserver_tests::{api_error, start, start_in};
use serde_json::json;

fn configmap(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
        "data": {"key": "value"},
    }))
    .unwrap()
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]},
            },
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn objects_are_created_read_updated_and_deleted() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let created = cms
        .create(&PostParams::default(), &configmap("a", &[]))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(
        meta.uid.is_some() && meta.creation_timestamp.is_some() && meta.resource_version.is_some()
    );

    let got = cms.get("a").await.unwrap();
    assert_eq!(got.metadata.resource_version, meta.resource_version);

    let mut changed = got.clone();
    changed.data = Some(BTreeMap::from([("key".into(), "other".into())]));
    let updated = cms
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_ne!(updated.metadata.resource_version, meta.resource_version);
    assert_eq!(updated.metadata.uid, meta.uid, "the uid never changes");

    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let err = api_error(cms.get("a").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "configmaps \"a\" not found");
}

#[tokio::test]
async fn a_stale_update_is_a_conflict_and_a_duplicate_create_already_exists() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &configmap("c", &[]))
        .await
        .unwrap();
    let mut second = first.clone();
    second.data = Some(BTreeMap::from([("key".into(), "2".into())]));
    cms.replace("c", &PostParams::default(), &second)
        .await
        .unwrap();
    let mut stale = first.clone();
    stale.data = Some(BTreeMap::from([("key".into(), "3".into())]));
    let err = api_error(
        cms.replace("c", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );

    let err = api_error(
        cms.create(&PostParams::default(), &configmap("c", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
}

#[tokio::test]
async fn an_invalid_name_is_unprocessable_with_a_field_cause() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let err = api_error(
        cms.create(&PostParams::default(), &configmap("Not_Valid", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let causes = err.details.unwrap().causes;
    assert_eq!(causes[0].field, "metadata.name");
    assert_eq!(causes[0].reason, "FieldValueInvalid");
}

#[tokio::test]
async fn lists_filter_by_label_and_page_consistently() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    for i in 0..25 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        cms.create(
            &PostParams::default(),
            &configmap(&format!("cm-{i:02}"), &[("tier", tier)]),
        )
        .await
        .unwrap();
    }
    let even = cms
        .list(&ListParams::default().labels("tier=even"))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 13);
    let odd_in = cms
        .list(&ListParams::default().labels("tier in (odd)"))
        .await
        .unwrap();
    assert_eq!(odd_in.items.len(), 12);

    let first = cms.list(&ListParams::default().limit(10)).await.unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.metadata.remaining_item_count, Some(15));
    // A write between pages does not show up in the paged snapshot.
    cms.create(&PostParams::default(), &configmap("cm-99", &[]))
        .await
        .unwrap();
    let mut names: Vec<String> = first
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    let mut token = first.metadata.continue_;
    while let Some(t2) = token.filter(|t| !t.is_empty()) {
        let page = cms
            .list(&ListParams::default().limit(10).continue_token(&t2))
            .await
            .unwrap();
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        token = page.metadata.continue_;
    }
    assert_eq!(names.len(), 25);
    assert!(!names.contains(&"cm-99".to_owned()));

    let err = api_error(
        cms.list(&ListParams::default().labels("tier in ("))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn a_watch_sees_added_modified_and_deleted() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let stream = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap();
    futures::pin_mut!(stream);
    cms.create(&PostParams::default(), &configmap("w", &[]))
        .await
        .unwrap();
    let patch = json!({"data": {"key": "changed"}});
    cms.patch("w", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        match stream.try_next().await.unwrap().expect("watch ended early") {
            WatchEvent::Added(c) => kinds.push(("ADDED", c.metadata.name.unwrap())),
            WatchEvent::Modified(c) => kinds.push(("MODIFIED", c.metadata.name.unwrap())),
            WatchEvent::Deleted(c) => kinds.push(("DELETED", c.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    let names: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
    assert_eq!(names, ["ADDED", "MODIFIED", "DELETED"]);
}

#[tokio::test]
async fn a_watch_from_a_compacted_version_reports_gone() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let old = cms
        .create(&PostParams::default(), &configmap("x", &[]))
        .await
        .unwrap();
    let newer = cms
        .create(&PostParams::default(), &configmap("y", &[]))
        .await
        .unwrap();
    let store = rkube_apiserver_tests::open_store(t.dir.path()).await;
    let compact_at: i64 = newer.metadata.resource_version.unwrap().parse().unwrap();
    store.compact(compact_at).await.unwrap();
    let stream = cms
        .watch(
            &WatchParams::default(),
            &old.metadata.resource_version.unwrap(),
        )
        .await
        .unwrap();
    futures::pin_mut!(stream);
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected a 410 error event, got {other:?}"),
    }
}

#[tokio::test]
async fn status_and_spec_change_only_through_their_own_endpoints() {
    let t = start().await;
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let created = deploys
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let status = json!({"status": {"replicas": 2, "readyReplicas": 1}});
    deploys
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let sneaky = json!({"spec": {"replicas": 5}, "status": {"replicas": 99}});
    let after = deploys
        .patch("web", &PatchParams::default(), &Patch::Merge(&sneaky))
        .await
        .unwrap();
    assert_eq!(after.spec.unwrap().replicas, Some(5));
    assert_eq!(
        after.status.unwrap().replicas,
        Some(2),
        "status is kept on the main resource"
    );
    assert_eq!(
        after.metadata.generation,
        Some(2),
        "a spec change bumps the generation"
    );

    let scale = deploys.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(5));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    let patch = json!({"spec": {"replicas": 1}});
    deploys
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(
        deploys.get("web").await.unwrap().spec.unwrap().replicas,
        Some(1)
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let mut cm = configmap("held", &[]);
    cm.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = cms.get("held").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    let release = json!({"metadata": {"finalizers": null}});
    cms.patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    assert_eq!(api_error(cms.get("held").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn a_deleted_namespace_terminates_and_refuses_new_content() {
    let t = start().await;
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = namespaces.get("team").await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "team");
    let err = api_error(
        cms.create(&PostParams::default(), &configmap("late", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 403);
    let missing: Api<ConfigMap> = Api::namespaced(t.client.clone(), "nowhere");
    assert_eq!(
        api_error(
            missing
                .create(&PostParams::default(), &configmap("x", &[]))
                .await
                .unwrap_err()
        )
        .code,
        404
    );
}

#[tokio::test]
async fn services_get_unique_cluster_ips_and_node_ports() {
    let t = start().await;
    let services: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let svc = |name: &str, extra: serde_json::Value| -> Service {
        let mut spec = json!({"ports": [{"port": 80}], "selector": {"app": name}});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    };
    let a = services
        .create(&PostParams::default(), &svc("a", json!({})))
        .await
        .unwrap();
    let b = services
        .create(
            &PostParams::default(),
            &svc("b", json!({"type": "NodePort"})),
        )
        .await
        .unwrap();
    let (ip_a, ip_b) = (
        a.spec.unwrap().cluster_ip.unwrap(),
        b.spec.clone().unwrap().cluster_ip.unwrap(),
    );
    assert!(ip_a.starts_with("10.43.") && ip_b.starts_with("10.43."));
    assert_ne!(ip_a, ip_b);
    let node_port = b.spec.unwrap().ports.unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&node_port));
    let err = api_error(
        services
            .create(
                &PostParams::default(),
                &svc("c", json!({"clusterIP": ip_a})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    // Deleting frees the address for reuse.
    services
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
    services
        .create(
            &PostParams::default(),
            &svc("d", json!({"clusterIP": ip_a})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn dry_run_services_are_given_free_addresses_and_ports_without_claiming_them() {
    let t = start().await;
    let services: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let svc = |name: &str, spec: serde_json::Value| -> Service {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    };
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    // Filled in as a real create would be.
    let auto = services
        .create(
            &dry,
            &svc("auto", json!({"type": "NodePort", "ports": [{"port": 80}]})),
        )
        .await
        .unwrap();
    let spec = auto.spec.unwrap();
    assert!(spec.cluster_ip.unwrap().starts_with("10.43."));
    assert!((30000..=32767).contains(&spec.ports.unwrap()[0].node_port.unwrap()));
    // Asked-for ones are checked and given, and stay free for a real create.
    let wanted = json!({"type": "NodePort", "clusterIP": "10.43.0.50",
        "ports": [{"port": 80, "nodePort": 30050}]});
    let answered = services
        .create(&dry, &svc("a", wanted.clone()))
        .await
        .unwrap();
    assert_eq!(
        answered.spec.unwrap().cluster_ip.as_deref(),
        Some("10.43.0.50")
    );
    assert!(services.get_opt("a").await.unwrap().is_none());
    services
        .create(&PostParams::default(), &svc("a", wanted.clone()))
        .await
        .unwrap();
    // Taken now: a dry run says so as a real create would.
    let err = api_error(services.create(&dry, &svc("b", wanted)).await.unwrap_err());
    assert_eq!(err.code, 422);
    // A dry-run update to NodePort gets a port it does not keep.
    let plain = services
        .create(
            &PostParams::default(),
            &svc("plain", json!({"ports": [{"port": 80}]})),
        )
        .await
        .unwrap();
    let mut changed = plain.clone();
    changed.spec.as_mut().unwrap().type_ = Some("NodePort".into());
    changed.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(30051);
    let updated = services.replace("plain", &dry, &changed).await.unwrap();
    assert_eq!(
        updated.spec.unwrap().ports.unwrap()[0].node_port,
        Some(30051)
    );
    services
        .create(
            &PostParams::default(),
            &svc(
                "c",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30051}]}),
            ),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn discovery_finds_every_group_the_server_serves() {
    let t = start().await;
    let discovery = kube::discovery::Discovery::new(t.client.clone())
        .run()
        .await
        .unwrap();
    let apps = discovery
        .groups()
        .find(|g| g.name() == "apps")
        .expect("apps group");
    let kinds: Vec<String> = apps
        .recommended_resources()
        .into_iter()
        .map(|(r, _)| r.kind)
        .collect();
    assert!(kinds.contains(&"Deployment".to_owned()), "{kinds:?}");
    let version = t.client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
}

#[tokio::test]
async fn events_expire_after_the_event_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = rkube_apiserver::ServerConfig::new(dir.path());
    config.https_port = 0;
    config.bind_address = [127, 0, 0, 1].into();
    config.event_ttl = std::time::Duration::from_secs(1);
    let store = rkube_apiserver_tests::open_store(dir.path()).await;
    let server = rkube_apiserver::ApiServer::start(config, store)
        .await
        .unwrap();
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(server.client(), "default");
    let event = serde_json::from_value(json!({
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Testing",
        "message": "hello",
        "type": "Normal",
    }))
    .unwrap();
    events.create(&PostParams::default(), &event).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    cms.create(&PostParams::default(), &configmap("stays", &[]))
        .await
        .unwrap();
    assert!(events.get("e1").await.is_ok());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while events.get("e1").await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the event did not expire"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(
        cms.get("stays").await.is_ok(),
        "other objects do not expire"
    );
}

fn pod(name: &str, labels: serde_json::Value) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]},
    }))
    .unwrap()
}

#[tokio::test]
async fn binding_assigns_a_node_once() {
    use kube::api::{PostParams as P, Request};
    let t = start().await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(t.client.clone(), "default");
    pods.create(&P::default(), &pod("b", json!({})))
        .await
        .unwrap();
    let bind = |node: &str| {
        let body = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": "b"}, "target": {"kind": "Node", "name": node}}))
        .unwrap();
        Request::new("/api/v1/namespaces/default/pods")
            .create_subresource("binding", "b", &P::default(), body)
            .unwrap()
    };
    let post = |body: serde_json::Value| {
        Request::new("/api/v1/namespaces/default/pods")
            .create_subresource("binding", "b", &P::default(), body.to_string().into_bytes())
            .unwrap()
    };
    for (body, code, text) in [
        (
            json!({"metadata": {"name": "b"}, "target": {"kind": "Pod", "name": "x"}}),
            422,
            "Unsupported value: \"Pod\"",
        ),
        (
            json!({"metadata": {"name": "b"}, "target": {"kind": "Node", "name": 7}}),
            422,
            "target.name: Required value",
        ),
        (
            json!({"metadata": {"name": "other"}, "target": {"name": "node-1"}}),
            400,
            "does not match",
        ),
    ] {
        let err = api_error(
            t.client
                .request::<serde_json::Value>(post(body))
                .await
                .unwrap_err(),
        );
        assert_eq!(err.code, code, "{}", err.message);
        assert!(err.message.contains(text), "{}", err.message);
    }
    let _: serde_json::Value = t.client.request(bind("node-1")).await.unwrap();
    let bound = pods.get("b").await.unwrap();
    assert_eq!(bound.spec.unwrap().node_name.as_deref(), Some("node-1"));
    let scheduled = bound.status.unwrap().conditions.unwrap();
    assert!(
        scheduled
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    );
    let err = api_error(
        t.client
            .request::<serde_json::Value>(bind("node-2"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains("already assigned to node \"node-1\""),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn eviction_honours_the_disruption_budget() {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let t = start().await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(t.client.clone(), "default");
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(t.client.clone(), "default");
    for name in ["guarded", "free"] {
        pods.create(&PostParams::default(), &pod(name, json!({"app": name})))
            .await
            .unwrap();
        let running = json!({"status": {"phase": "Running"}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&running))
            .await
            .unwrap();
    }
    let pdb = serde_json::from_value(json!({"metadata": {"name": "keep"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}}))
    .unwrap();
    budgets.create(&PostParams::default(), &pdb).await.unwrap();
    let status = json!({"status": {"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}});
    budgets
        .patch_status("keep", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();

    let err = api_error(
        pods.evict("guarded", &Default::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 429);
    assert!(err.message.contains("disruption budget"), "{}", err.message);
    assert!(pods.get("guarded").await.is_ok());

    pods.evict("free", &Default::default()).await.unwrap();
    assert_eq!(api_error(pods.get("free").await.unwrap_err()).code, 404);

    let allow = json!({"status": {"disruptionsAllowed": 1}});
    budgets
        .patch_status("keep", &PatchParams::default(), &Patch::Merge(&allow))
        .await
        .unwrap();
    pods.evict("guarded", &Default::default()).await.unwrap();
    let after = budgets.get("keep").await.unwrap().status.unwrap();
    assert_eq!(after.disruptions_allowed, 0);
    assert!(after.disrupted_pods.unwrap().contains_key("guarded"));
}

#[tokio::test]
async fn finalizing_a_terminating_namespace_deletes_it() {
    let t = start().await;
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "done"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    namespaces
        .delete("done", &DeleteParams::default())
        .await
        .unwrap();
    let mut terminating = namespaces.get("done").await.unwrap();
    terminating.spec = Some(Default::default());
    let body = serde_json::to_vec(&terminating).unwrap();
    let request = kube::api::Request::new("/api/v1/namespaces")
        .replace_subresource("finalize", "done", &PostParams::default(), body)
        .unwrap();
    let _: serde_json::Value = t.client.request(request).await.unwrap();
    assert_eq!(
        api_error(namespaces.get("done").await.unwrap_err()).code,
        404
    );
}

#[tokio::test]
async fn the_server_restarts_on_its_data() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    cms.create(&PostParams::default(), &configmap("kept", &[]))
        .await
        .unwrap();
    t.server.shutdown();
    let again = start_in(t.dir.path()).await;
    let cms: Api<ConfigMap> = Api::namespaced(again.client(), "default");
    assert_eq!(cms.get("kept").await.unwrap().data.unwrap()["key"], "value");
    let services: Api<Service> = Api::namespaced(again.client(), "default");
    assert_eq!(
        services
            .get("kubernetes")
            .await
            .unwrap()
            .spec
            .unwrap()
            .cluster_ip
            .as_deref(),
        Some("10.43.0.1")
    );
}

#[tokio::test]
async fn server_side_apply_tracks_owners_and_reports_conflicts() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"}, "data": {"a": "1", "b": "2"}});
    let created = cms
        .patch(
            "owned",
            &PatchParams::apply("alice"),
            &Patch::Apply(&config),
        )
        .await
        .unwrap();
    let fields = created.metadata.managed_fields.unwrap();
    assert_eq!(
        (fields[0].manager.as_deref(), fields[0].operation.as_deref()),
        (Some("alice"), Some("Apply"))
    );

    let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"}, "data": {"a": "other"}});
    let err = api_error(
        cms.patch("owned", &PatchParams::apply("bob"), &Patch::Apply(&theirs))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    let cause = &err.details.unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("FieldManagerConflict", ".data.a")
    );

    let forced = cms
        .patch(
            "owned",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["a"], "other");
    // alice no longer sets b: it goes, since nobody else owns it.
    let less =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"}, "data": {}});
    let after = cms
        .patch("owned", &PatchParams::apply("alice"), &Patch::Apply(&less))
        .await
        .unwrap();
    assert_eq!(after.data.unwrap_or_default().get("b"), None);
}

#[tokio::test]
async fn requests_are_counted_and_timed_on_metrics_in_upstreams_names() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "counted"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.get("counted").await.unwrap();
    assert_eq!(api_error(cms.get("missing").await.unwrap_err()).code, 404);
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = t.client.request_text(request).await.unwrap();
    let labels = |verb: &str, scope: &str| {
        format!(
            "component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"configmaps\",scope=\"{scope}\",subresource=\"\",verb=\"{verb}\",version=\"v1\""
        )
    };
    for line in [
        format!(
            "apiserver_request_total{{code=\"201\",{}}} 1",
            labels("POST", "namespace")
        ),
        format!(
            "apiserver_request_total{{code=\"200\",{}}} 1",
            labels("GET", "resource")
        ),
        format!(
            "apiserver_request_total{{code=\"404\",{}}} 1",
            labels("GET", "resource")
        ),
        format!(
            "apiserver_request_duration_seconds_count{{{}}} 2",
            labels("GET", "resource")
        ),
        format!(
            "apiserver_request_duration_seconds_bucket{{{},le=\"+Inf\"}} 1",
            labels("POST", "namespace")
        ),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
}

#[tokio::test]
async fn stored_objects_and_open_watches_are_gauges_on_metrics() {
    use k8s_openapi::api::core::v1::PodTemplate;

    let t = start().await;
    let templates: Api<PodTemplate> = Api::namespaced(t.client.clone(), "default");
    for name in ["one", "two"] {
        let template: PodTemplate =
            serde_json::from_value(json!({"metadata": {"name": name}, "template": {"spec": {
                "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}}))
            .unwrap();
        templates
            .create(&PostParams::default(), &template)
            .await
            .unwrap();
    }
    // A consistent list has waited for the watch cache to hold both.
    assert_eq!(
        templates
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let metrics = || async {
        let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
        t.client.request_text(request).await.unwrap()
    };
    let watching = |n: usize| {
        format!(
            "apiserver_longrunning_requests{{component=\"apiserver\",group=\"\",resource=\"podtemplates\",scope=\"namespace\",subresource=\"\",verb=\"WATCH\",version=\"v1\"}} {n}"
        )
    };
    let stream = templates
        .watch(&kube::api::WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let text = metrics().await;
    for line in [
        "apiserver_storage_objects{resource=\"podtemplates\"} 2".to_owned(),
        "apiserver_resource_objects{group=\"\",resource=\"podtemplates\"} 2".to_owned(),
        "apiserver_storage_objects{resource=\"deployments.apps\"} 0".to_owned(),
        watching(1),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    drop(stream);
    templates.delete("one", &Default::default()).await.unwrap();
    templates.list(&Default::default()).await.unwrap();
    // The server sees the closed watch when it next writes to it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = metrics().await;
        let closed = text.lines().any(|l| l == watching(0));
        let counted = text
            .lines()
            .any(|l| l == "apiserver_storage_objects{resource=\"podtemplates\"} 1");
        if closed && counted {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
