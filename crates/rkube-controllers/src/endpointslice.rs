//! The EndpointSlice controller: each Service with a selector gets discovery.k8s.io/v1
//! EndpointSlices listing its pods, each endpoint with the ready / serving / terminating
//! conditions, at most [`MAX_ENDPOINTS_PER_SLICE`] endpoints and one set of ports per slice.
//! Slices are labelled with the Service name and this controller's name and owned by the
//! Service. A Service with no endpoints keeps one empty slice, as upstream does.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use crate::endpoints::{
    HEADLESS_LABEL, ServiceCaches, ServiceKey, address_type, is_headless, is_pod_ready,
    pod_hostname, pod_ip, pod_ports, pod_reference, service_informers, service_selector,
    should_pod_be_in_endpoints,
};
use crate::informer::SharedInformers;
use crate::informer::{AbortOnDrop, Change, Next, WorkQueue, feed, informer, is_not_found};
use kube::runtime::watcher;

/// Endpoints per slice (upstream's `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's controller.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's name in [`MANAGED_BY_LABEL`].
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";

/// One slice's contents: its ports and endpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceContent {
    /// The ports every endpoint in the slice serves.
    pub ports: Vec<EndpointPort>,
    /// The endpoints, sorted by address.
    pub endpoints: Vec<Endpoint>,
}

/// A pod as an endpoint of `service`, with upstream's conditions: serving is the pod's
/// readiness, terminating its deletion, and ready is serving and not terminating (always true
/// when the Service publishes not-ready addresses).
pub fn pod_endpoint(service: &Service, pod: &Pod, ip: String) -> Endpoint {
    let publish_not_ready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(publish_not_ready || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: pod_hostname(pod, service),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(pod_reference(pod)),
        ..Endpoint::default()
    }
}

/// The slices `service` should have given the pods it selects: endpoints grouped by their
/// ports, each group cut into slices of at most `max_per_slice`; one empty slice when there
/// is nothing to list.
pub fn desired_slices(service: &Service, pods: &[&Pod], max_per_slice: usize) -> Vec<SliceContent> {
    let family = address_type(service);
    let needs_ports = !is_headless(service)
        || service
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .is_some_and(|p| !p.is_empty());
    let mut groups: BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for pod in pods {
        // Terminating pods stay, with their conditions saying so.
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = pod_ip(pod, family) else {
            continue;
        };
        let mut ports: Vec<EndpointPort> = pod_ports(pod, service)
            .into_iter()
            .map(|p| EndpointPort {
                name: Some(p.name.unwrap_or_default()),
                port: Some(p.port),
                protocol: p.protocol,
                app_protocol: p.app_protocol,
            })
            .collect();
        if ports.is_empty() && needs_ports {
            continue;
        }
        ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let key = serde_json::to_string(&ports).unwrap_or_default();
        groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(pod_endpoint(service, pod, ip));
    }
    let mut slices = Vec::new();
    for (ports, mut endpoints) in groups.into_values() {
        endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
        for chunk in endpoints.chunks(max_per_slice.max(1)) {
            slices.push(SliceContent {
                ports: ports.clone(),
                endpoints: chunk.to_vec(),
            });
        }
    }
    if slices.is_empty() {
        slices.push(SliceContent {
            ports: Vec::new(),
            endpoints: Vec::new(),
        });
    }
    slices
}

/// The labels a Service's slices carry: the Service's own, its name, this controller's name,
/// and the headless marker.
pub fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(
        SERVICE_NAME_LABEL.into(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    labels
}

fn owner_reference(service: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: service.metadata.name.clone().unwrap_or_default(),
        uid: service.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn content_of(slice: &EndpointSlice) -> SliceContent {
    SliceContent {
        ports: slice.ports.clone().unwrap_or_default(),
        endpoints: slice.endpoints.clone(),
    }
}

/// Keeps each selector Service's EndpointSlices true.
pub struct EndpointSliceController {
    client: kube::Client,
    informers: SharedInformers,
}

impl EndpointSliceController {
    /// A controller acting through `client`.
    pub fn new(client: impl Into<SharedInformers>) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            client: informers.client().clone(),
            informers,
        }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let queue = WorkQueue::new();
        let (caches, mut guards) = service_informers(&self.informers, &queue).await;
        // Slices of this controller deleted by someone else are written again.
        let (_slices, slice_events) = informer(
            Api::<EndpointSlice>::all(self.client.clone()),
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={CONTROLLER_NAME}")),
        );
        guards.push(AbortOnDrop(tokio::spawn(feed(
            queue.clone(),
            slice_events,
            |change: &Change<EndpointSlice>| match change {
                Change::Deleted(slice) => {
                    let service = slice
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(SERVICE_NAME_LABEL).cloned());
                    service
                        .map(|name| (slice.metadata.namespace.clone().unwrap_or_default(), name))
                        .into_iter()
                        .collect()
                }
                Change::Added(_) | Change::Updated { .. } => Vec::new(),
            },
        ))));
        if caches.services.wait_until_ready().await.is_err()
            || caches.pods.wait_until_ready().await.is_err()
        {
            return;
        }
        let this = &self;
        let caches = &caches;
        queue
            .run("endpointslice", |key| async move {
                this.reconcile(caches, &key).await
            })
            .await;
    }

    /// Brings the slices of the Service `key` names up to date: slices whose contents are
    /// still wanted are kept, others are rewritten or deleted, missing ones created.
    pub async fn reconcile(
        &self,
        caches: &ServiceCaches,
        key: &ServiceKey,
    ) -> Result<Next, kube::Error> {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &key.0);
        let selector = format!(
            "{SERVICE_NAME_LABEL}={},{MANAGED_BY_LABEL}={CONTROLLER_NAME}",
            key.1
        );
        let existing = api
            .list(&ListParams::default().labels(&selector))
            .await?
            .items;
        let service = caches.service(key);
        let Some(service) = service.filter(|s| service_selector(s).is_some()) else {
            // Gone, or no longer selecting pods: this controller's slices go.
            for slice in existing {
                let name = slice.metadata.name.unwrap_or_default();
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(err) if is_not_found(&err) => {}
                    Err(err) => return Err(err),
                }
            }
            return Ok(Next::Wait);
        };
        let pods = caches.selected_pods(&service);
        let refs: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
        let mut wanted = desired_slices(&service, &refs, MAX_ENDPOINTS_PER_SLICE);
        let labels = slice_labels(&service);
        let owner = owner_reference(&service);
        let family = address_type(&service);

        // Slices already right stay as they are.
        let mut stale = Vec::new();
        for slice in existing {
            let right = slice.address_type == family
                && slice.metadata.labels.as_ref() == Some(&labels)
                && slice
                    .metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| o.contains(&owner));
            match wanted
                .iter()
                .position(|w| right && *w == content_of(&slice))
            {
                Some(i) => {
                    wanted.remove(i);
                }
                None => stale.push(slice),
            }
        }
        stale.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let mut stale = stale.into_iter();
        for content in wanted {
            match stale.next() {
                Some(mut slice) if slice.address_type == family => {
                    let name = slice.metadata.name.clone().unwrap_or_default();
                    slice.metadata.labels = Some(labels.clone());
                    slice.metadata.owner_references = Some(vec![owner.clone()]);
                    slice.ports = Some(content.ports);
                    slice.endpoints = content.endpoints;
                    api.replace(&name, &PostParams::default(), &slice).await?;
                }
                other => {
                    if let Some(slice) = other {
                        // An address type cannot change: replace the slice.
                        let name = slice.metadata.name.unwrap_or_default();
                        api.delete(&name, &DeleteParams::default()).await?;
                    }
                    let mut slice = EndpointSlice {
                        address_type: family.to_owned(),
                        endpoints: content.endpoints,
                        ports: Some(content.ports),
                        ..EndpointSlice::default()
                    };
                    let prefix: String = key.1.chars().take(57).collect();
                    slice.metadata.generate_name = Some(format!("{prefix}-"));
                    slice.metadata.namespace = Some(key.0.clone());
                    slice.metadata.labels = Some(labels.clone());
                    slice.metadata.owner_references = Some(vec![owner.clone()]);
                    api.create(&PostParams::default(), &slice).await?;
                }
            }
        }
        for slice in stale {
            let name = slice.metadata.name.unwrap_or_default();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(err) if is_not_found(&err) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(Next::Wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::tests::{pod, service};
    use serde_json::json;

    fn conditions(e: &Endpoint) -> (bool, bool, bool) {
        let c = e.conditions.as_ref().unwrap();
        (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
    }

    #[test]
    fn endpoint_conditions_follow_readiness_and_termination() {
        let svc = service(json!({}));
        let ready = pod("a", "10.42.0.2", true, json!({}));
        let unready = pod("b", "10.42.0.3", false, json!({}));
        let going = pod(
            "c",
            "10.42.0.4",
            true,
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        );
        let slices = desired_slices(&svc, &[&ready, &unready, &going], 100);
        assert_eq!(slices.len(), 1);
        let got: Vec<_> = slices[0].endpoints.iter().map(conditions).collect();
        assert_eq!(
            got,
            [
                (true, true, false),
                (false, false, false),
                (false, true, true)
            ]
        );
        assert_eq!(slices[0].ports[0].port, Some(8080));
        assert_eq!(slices[0].ports[0].name.as_deref(), Some("http"));
        let e = &slices[0].endpoints[0];
        assert_eq!(e.node_name.as_deref(), Some("n1"));
        assert_eq!(e.target_ref.as_ref().unwrap().kind.as_deref(), Some("Pod"));
    }

    #[test]
    fn publishing_not_ready_addresses_makes_every_endpoint_ready() {
        let svc = service(json!({"spec": {"publishNotReadyAddresses": true}}));
        let unready = pod("b", "10.42.0.3", false, json!({}));
        let slices = desired_slices(&svc, &[&unready], 100);
        assert_eq!(conditions(&slices[0].endpoints[0]), (true, false, false));
    }

    #[test]
    fn slices_hold_at_most_the_limit_and_one_port_set_each() {
        let svc = service(json!({}));
        let mut pods: Vec<Pod> = (0..5)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.42.0.{}", i + 2),
                    true,
                    json!({}),
                )
            })
            .collect();
        pods.push(pod(
            "other",
            "10.42.1.2",
            true,
            json!({"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"name": "http", "containerPort": 9000}]}]}}),
        ));
        let refs: Vec<&Pod> = pods.iter().collect();
        let slices = desired_slices(&svc, &refs, 2);
        let shape: Vec<(i32, usize)> = slices
            .iter()
            .map(|s| (s.ports[0].port.unwrap(), s.endpoints.len()))
            .collect();
        assert_eq!(shape, [(8080, 2), (8080, 2), (8080, 1), (9000, 1)]);
    }

    #[test]
    fn a_service_without_pods_keeps_one_empty_slice() {
        let svc = service(json!({}));
        let slices = desired_slices(&svc, &[], 100);
        assert_eq!(
            slices,
            [SliceContent {
                ports: vec![],
                endpoints: vec![]
            }]
        );
    }

    #[test]
    fn slice_labels_name_the_service_and_the_controller() {
        let svc = service(json!({"spec": {"clusterIP": "None"}}));
        let labels = slice_labels(&svc);
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY_LABEL], CONTROLLER_NAME);
        assert_eq!(labels[HEADLESS_LABEL], "");
        assert_eq!(labels["team"], "a");
    }
}
