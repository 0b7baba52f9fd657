//! The endpoints and EndpointSlice controllers against the real API server, in process. Pods
//! are made Running and Ready through the status subresource, as a kubelet would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rkube_apiserver_tests::start;
use rkube_controllers::endpoints::EndpointsController;
use rkube_controllers::endpointslice::EndpointSliceController;
use serde_json::{Value, json};

/// Polls `check` until it returns `Some`, for up to ten seconds.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn start_controllers(client: &kube::Client) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(EndpointsController::new(client.clone()).run()),
        tokio::spawn(EndpointSliceController::new(client.clone()).run()),
    ]
}

async fn create_pod(pods: &Api<Pod>, name: &str, labels: Value, port: i32) {
    let pod = json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": "node-a", "hostname": name, "subdomain": "web",
            "containers": [{"name": "app", "image": "app:1",
                "ports": [{"name": "http", "containerPort": port}]}]},
    });
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod).unwrap(),
    )
    .await
    .unwrap();
}

/// Reports the pod Running with `ip`, ready or not, as its kubelet would.
async fn set_status(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": status}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn create_service(services: &Api<Service>, name: &str, spec: Value) {
    let svc = json!({"metadata": {"name": name, "labels": {"team": "a"}}, "spec": spec});
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(svc).unwrap(),
        )
        .await
        .unwrap();
}

fn addresses(
    subsets: &Option<Vec<k8s_openapi::api::core::v1::EndpointSubset>>,
    ready: bool,
) -> Vec<String> {
    let mut ips: Vec<String> = subsets
        .iter()
        .flatten()
        .flat_map(|s| {
            if ready {
                s.addresses.clone()
            } else {
                s.not_ready_addresses.clone()
            }
        })
        .flatten()
        .map(|a| a.ip)
        .collect();
    ips.sort();
    ips
}

async fn slices_of(slices: &Api<EndpointSlice>, service: &str) -> Vec<EndpointSlice> {
    slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn a_service_lists_its_ready_and_unready_pods_in_endpoints_and_slices() {
    let t = start().await;
    let _controllers = start_controllers(&t.client);
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let services: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(t.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), "default");

    create_service(
        &services,
        "web",
        json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
    )
    .await;
    create_pod(&pods, "web-1", json!({"app": "web"}), 8080).await;
    create_pod(&pods, "web-2", json!({"app": "web"}), 8080).await;
    create_pod(&pods, "other", json!({"app": "other"}), 8080).await;
    set_status(&pods, "web-1", "10.42.0.11", true).await;
    set_status(&pods, "web-2", "10.42.0.12", false).await;
    set_status(&pods, "other", "10.42.0.13", true).await;

    let ep = eventually("endpoints with both pods", || async {
        let ep = endpoints.get_opt("web").await.unwrap()?;
        (addresses(&ep.subsets, true) == ["10.42.0.11"]
            && addresses(&ep.subsets, false) == ["10.42.0.12"])
        .then_some(ep)
    })
    .await;
    let subset = &ep.subsets.as_ref().unwrap()[0];
    let port = &subset.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("http"), 8080, Some("TCP"))
    );
    let address = &subset.addresses.as_ref().unwrap()[0];
    assert_eq!(address.node_name.as_deref(), Some("node-a"));
    assert_eq!(address.hostname.as_deref(), Some("web-1"));
    let target = address.target_ref.as_ref().unwrap();
    assert_eq!(
        (target.kind.as_deref(), target.name.as_deref()),
        (Some("Pod"), Some("web-1"))
    );
    assert_eq!(ep.metadata.labels.as_ref().unwrap()["team"], "a");

    let slice = eventually("a slice with both pods", || async {
        let all = slices_of(&slices, "web").await;
        (all.len() == 1 && all[0].endpoints.len() == 2).then(|| all[0].clone())
    })
    .await;
    let labels = slice.metadata.labels.as_ref().unwrap();
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(labels["kubernetes.io/service-name"], "web");
    assert_eq!(slice.address_type, "IPv4");
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    let svc = services.get("web").await.unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Service", Some(true))
    );
    assert_eq!(Some(&owner.uid), svc.metadata.uid.as_ref());
    let ports = slice.ports.as_ref().unwrap();
    assert_eq!(
        (ports[0].name.as_deref(), ports[0].port),
        (Some("http"), Some(8080))
    );
    let conditions: Vec<(String, bool, bool, bool)> = slice
        .endpoints
        .iter()
        .map(|e| {
            let c = e.conditions.as_ref().unwrap();
            (
                e.addresses[0].clone(),
                c.ready.unwrap(),
                c.serving.unwrap(),
                c.terminating.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        conditions,
        [
            ("10.42.0.11".into(), true, true, false),
            ("10.42.0.12".into(), false, false, false)
        ]
    );

    // The second pod becomes ready; the first leaves by changing its labels.
    set_status(&pods, "web-2", "10.42.0.12", true).await;
    let relabel = json!({"metadata": {"labels": {"app": "elsewhere"}}});
    pods.patch("web-1", &PatchParams::default(), &Patch::Merge(&relabel))
        .await
        .unwrap();
    eventually("only the second pod, ready", || async {
        let ep = endpoints.get("web").await.unwrap();
        (addresses(&ep.subsets, true) == ["10.42.0.12"] && addresses(&ep.subsets, false).is_empty())
            .then_some(())
    })
    .await;
    eventually("a slice with only the second pod", || async {
        let all = slices_of(&slices, "web").await;
        (all.len() == 1
            && all[0].endpoints.len() == 1
            && all[0].endpoints[0].addresses == ["10.42.0.12"]
            && all[0].endpoints[0].conditions.as_ref().unwrap().ready == Some(true))
        .then_some(())
    })
    .await;

    // Deleting the Service removes both.
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually("endpoints and slices gone", || async {
        (endpoints.get_opt("web").await.unwrap().is_none()
            && slices_of(&slices, "web").await.is_empty())
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn pods_serving_a_named_port_on_different_numbers_get_separate_subsets_and_slices() {
    let t = start().await;
    let _controllers = start_controllers(&t.client);
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let services: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(t.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), "default");
    create_service(
        &services,
        "web",
        json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
    )
    .await;
    create_pod(&pods, "old", json!({"app": "web"}), 8080).await;
    create_pod(&pods, "new", json!({"app": "web"}), 9090).await;
    set_status(&pods, "old", "10.42.0.21", true).await;
    set_status(&pods, "new", "10.42.0.22", true).await;
    let ep = eventually("two subsets", || async {
        let ep = endpoints.get_opt("web").await.unwrap()?;
        (ep.subsets.as_ref().map_or(0, Vec::len) == 2).then_some(ep)
    })
    .await;
    let mut pairs: Vec<(i32, String)> = ep
        .subsets
        .unwrap()
        .into_iter()
        .map(|s| (s.ports.unwrap()[0].port, s.addresses.unwrap()[0].ip.clone()))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            (8080, "10.42.0.21".to_owned()),
            (9090, "10.42.0.22".to_owned())
        ]
    );
    let all = eventually("two slices", || async {
        let all = slices_of(&slices, "web").await;
        (all.len() == 2 && all.iter().all(|s| s.endpoints.len() == 1)).then_some(all)
    })
    .await;
    let mut ports: Vec<i32> = all
        .iter()
        .map(|s| s.ports.as_ref().unwrap()[0].port.unwrap())
        .collect();
    ports.sort();
    assert_eq!(ports, [8080, 9090]);
}

#[tokio::test]
async fn headless_services_publishing_not_ready_addresses_list_every_pod_as_ready() {
    let t = start().await;
    let _controllers = start_controllers(&t.client);
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let services: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(t.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), "default");
    create_service(
        &services,
        "web",
        json!({"selector": {"app": "web"}, "clusterIP": "None", "publishNotReadyAddresses": true}),
    )
    .await;
    create_pod(&pods, "web-0", json!({"app": "web"}), 8080).await;
    set_status(&pods, "web-0", "10.42.0.31", false).await;
    let ep = eventually("the unready pod listed as ready", || async {
        let ep = endpoints.get_opt("web").await.unwrap()?;
        (addresses(&ep.subsets, true) == ["10.42.0.31"]).then_some(ep)
    })
    .await;
    let subset = &ep.subsets.as_ref().unwrap()[0];
    assert!(subset.ports.is_none());
    assert_eq!(
        subset.addresses.as_ref().unwrap()[0].hostname.as_deref(),
        Some("web-0")
    );
    assert_eq!(
        ep.metadata.labels.as_ref().unwrap()["service.kubernetes.io/headless"],
        ""
    );
    let slice = eventually("a slice", || async {
        let all = slices_of(&slices, "web").await;
        (all.len() == 1 && all[0].endpoints.len() == 1).then(|| all[0].clone())
    })
    .await;
    let c = slice.endpoints[0].conditions.as_ref().unwrap();
    assert_eq!((c.ready, c.serving), (Some(true), Some(false)));
    assert_eq!(slice.endpoints[0].hostname.as_deref(), Some("web-0"));
}

#[tokio::test]
async fn services_without_a_selector_and_the_kubernetes_service_are_left_alone() {
    let t = start().await;
    let endpoints: Api<Endpoints> = Api::namespaced(t.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), "default");
    let services: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let kubernetes_before = endpoints.get("kubernetes").await.unwrap();
    let kubernetes_slice_before = slices.get("kubernetes").await.unwrap();
    create_service(&services, "external", json!({"ports": [{"port": 5432}]})).await;
    let manual = json!({"metadata": {"name": "external"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}]});
    endpoints
        .create(
            &PostParams::default(),
            &serde_json::from_value(manual).unwrap(),
        )
        .await
        .unwrap();
    let _controllers = start_controllers(&t.client);
    // A Service with a selector, created afterwards, shows the controllers have caught up.
    create_service(
        &services,
        "later",
        json!({"selector": {"app": "x"}, "ports": [{"port": 80}]}),
    )
    .await;
    eventually("the later Service's endpoints and slice", || async {
        (endpoints.get_opt("later").await.unwrap().is_some()
            && slices_of(&slices, "later").await.len() == 1)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let external = endpoints.get("external").await.unwrap();
    assert_eq!(addresses(&external.subsets, true), ["192.0.2.10"]);
    assert!(slices_of(&slices, "external").await.is_empty());
    let kubernetes = endpoints.get("kubernetes").await.unwrap();
    assert_eq!(
        kubernetes.metadata.resource_version,
        kubernetes_before.metadata.resource_version
    );
    let kubernetes_slice = slices.get("kubernetes").await.unwrap();
    assert_eq!(
        kubernetes_slice.metadata.resource_version,
        kubernetes_slice_before.metadata.resource_version
    );
}

#[tokio::test]
async fn deleted_endpoints_and_slices_are_written_again() {
    let t = start().await;
    let _controllers = start_controllers(&t.client);
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let services: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(t.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), "default");
    create_service(
        &services,
        "web",
        json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}),
    )
    .await;
    create_pod(&pods, "web-1", json!({"app": "web"}), 8080).await;
    set_status(&pods, "web-1", "10.42.0.41", true).await;
    let slice = eventually("a slice with the pod", || async {
        let all = slices_of(&slices, "web").await;
        (all.len() == 1 && all[0].endpoints.len() == 1).then(|| all[0].clone())
    })
    .await;
    eventually("endpoints with the pod", || async {
        let ep = endpoints.get_opt("web").await.unwrap()?;
        (addresses(&ep.subsets, true) == ["10.42.0.41"]).then_some(())
    })
    .await;
    endpoints
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    slices
        .delete(
            slice.metadata.name.as_deref().unwrap(),
            &DeleteParams::default(),
        )
        .await
        .unwrap();
    eventually("both written again", || async {
        let ep = endpoints.get_opt("web").await.unwrap()?;
        let all = slices_of(&slices, "web").await;
        (addresses(&ep.subsets, true) == ["10.42.0.41"]
            && all.len() == 1
            && all[0].metadata.name != slice.metadata.name
            && all[0].endpoints.len() == 1)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn selector_less_services_with_custom_endpoints_get_mirrored_slices() {
    use rkube_controllers::endpointslicemirroring::EndpointSliceMirroringController;
    let t = start().await;
    let _mirroring = tokio::spawn(EndpointSliceMirroringController::new(t.client.clone()).run());
    let services: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(t.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), "default");
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "external"},
                "spec": {"ports": [{"name": "pg", "port": 5432}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let custom = json!({"metadata": {"name": "external", "labels": {"team": "db"}},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "notReadyAddresses": [{"ip": "192.0.2.11"}],
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}]});
    let created = endpoints
        .create(
            &PostParams::default(),
            &serde_json::from_value(custom).unwrap(),
        )
        .await
        .unwrap();
    let mirrored = "kubernetes.io/service-name=external,endpointslice.kubernetes.io/managed-by=endpointslicemirroring-controller.k8s.io";
    let slice = eventually("a mirrored slice", || async {
        let list = slices
            .list(&ListParams::default().labels(mirrored))
            .await
            .unwrap();
        (list.items.len() == 1).then(|| list.items[0].clone())
    })
    .await;
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.metadata.labels.as_ref().unwrap()["team"], "db");
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        (
            "Endpoints",
            created.metadata.uid.as_deref().unwrap(),
            Some(true)
        )
    );
    let seen: Vec<(String, bool)> = slice
        .endpoints
        .iter()
        .map(|e| {
            (
                e.addresses[0].clone(),
                e.conditions.as_ref().unwrap().ready.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("192.0.2.10".to_owned(), true),
            ("192.0.2.11".to_owned(), false)
        ]
    );
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("pg"), Some(5432)));

    // An update of the Endpoints is mirrored.
    let patch = json!({"subsets": [{"addresses": [{"ip": "192.0.2.20"}],
        "ports": [{"name": "pg", "port": 5433, "protocol": "TCP"}]}]});
    endpoints
        .patch("external", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("the slice follows the update", || async {
        let list = slices
            .list(&ListParams::default().labels(mirrored))
            .await
            .unwrap();
        (list.items.len() == 1
            && list.items[0].endpoints.len() == 1
            && list.items[0].endpoints[0].addresses == ["192.0.2.20"]
            && list.items[0].ports.as_ref().unwrap()[0].port == Some(5433))
        .then_some(())
    })
    .await;

    // Endpoints of a Service with a selector, or labelled skip-mirror, are not mirrored.
    let skip = json!({"metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}});
    endpoints
        .patch("external", &PatchParams::default(), &Patch::Merge(&skip))
        .await
        .unwrap();
    eventually("the skipped slice goes", || async {
        let list = slices
            .list(&ListParams::default().labels(mirrored))
            .await
            .unwrap();
        list.items.is_empty().then_some(())
    })
    .await;
    let unskip = json!({"metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": null}}});
    endpoints
        .patch("external", &PatchParams::default(), &Patch::Merge(&unskip))
        .await
        .unwrap();
    eventually("mirrored again", || async {
        let list = slices
            .list(&ListParams::default().labels(mirrored))
            .await
            .unwrap();
        (list.items.len() == 1).then_some(())
    })
    .await;

    // Deleting the Endpoints deletes the mirrored slices.
    endpoints
        .delete("external", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the mirrored slice is deleted", || async {
        let list = slices
            .list(&ListParams::default().labels(mirrored))
            .await
            .unwrap();
        list.items.is_empty().then_some(())
    })
    .await;
    // The API server's own `kubernetes` Endpoints carry skip-mirror and stay unmirrored.
    let kubernetes = slices
        .list(&ListParams::default().labels(
            "kubernetes.io/service-name=kubernetes,endpointslice.kubernetes.io/managed-by=endpointslicemirroring-controller.k8s.io",
        ))
        .await
        .unwrap();
    assert!(kubernetes.items.is_empty());
}
