//! The EndpointSliceMirroring controller (upstream's `endpointslicemirroring`): a Service
//! without a selector whose Endpoints someone else writes gets those Endpoints mirrored as
//! discovery.k8s.io/v1 EndpointSlices, so that slice readers (the proxy, DNS) see them.
//! Slices are labelled with the Service name and `endpointslice.kubernetes.io/managed-by:
//! endpointslicemirroring-controller.k8s.io`, carry the Endpoints' other labels and
//! annotations, and are owned by the Endpoints; they go when the Endpoints, or the Service,
//! go, when the Service gains a selector, or when the Endpoints are labelled
//! `endpointslice.kubernetes.io/skip-mirror: "true"`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::endpoints::{ServiceKey, service_selector};
use crate::endpointslice::{MANAGED_BY_LABEL, SERVICE_NAME_LABEL, SliceContent};
use crate::informer::SharedInformers;
use crate::informer::{AbortOnDrop, Change, Next, WorkQueue, feed, informer, is_not_found};

/// This controller's name in [`MANAGED_BY_LABEL`].
pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
/// Endpoints labelled with this (`"true"`) are not mirrored.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Addresses mirrored from one subset (upstream's `--mirroring-max-endpoints-per-subset`).
pub const MAX_ENDPOINTS_PER_SUBSET: usize = 1000;
/// Annotations of the Endpoints that are not carried over.
const DROPPED_ANNOTATIONS: &[&str] = &[
    "endpoints.kubernetes.io/last-change-trigger-time",
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// One mirrored slice: its address type and contents.
#[derive(Clone, Debug, PartialEq)]
pub struct MirroredSlice {
    /// `IPv4` or `IPv6`.
    pub address_type: &'static str,
    /// Ports and endpoints.
    pub content: SliceContent,
}

fn endpoint(address: &EndpointAddress, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![address.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            ..EndpointConditions::default()
        }),
        hostname: address.hostname.clone().filter(|h| !h.is_empty()),
        node_name: address.node_name.clone(),
        target_ref: address.target_ref.clone(),
        ..Endpoint::default()
    }
}

/// The slices `endpoints` mirror to: per subset, its ready then not-ready addresses (at
/// most [`MAX_ENDPOINTS_PER_SUBSET`]), one slice per port set and address type (subsets with
/// the same ports share one); addresses that are not IPs are left out.
pub fn desired_slices(endpoints: &Endpoints) -> Vec<MirroredSlice> {
    let mut slices: Vec<MirroredSlice> = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: p.name.clone(),
                port: Some(p.port),
                protocol: p.protocol.clone(),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let addresses = subset
            .addresses
            .iter()
            .flatten()
            .map(|a| (a, true))
            .chain(
                subset
                    .not_ready_addresses
                    .iter()
                    .flatten()
                    .map(|a| (a, false)),
            )
            .take(MAX_ENDPOINTS_PER_SUBSET);
        for (address, ready) in addresses {
            let address_type = match address.ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => "IPv4",
                Ok(IpAddr::V6(_)) => "IPv6",
                Err(_) => continue,
            };
            let slot = slices
                .iter()
                .position(|s| s.address_type == address_type && s.content.ports == ports);
            let slot = match slot {
                Some(i) => i,
                None => {
                    slices.push(MirroredSlice {
                        address_type,
                        content: SliceContent {
                            ports: ports.clone(),
                            endpoints: Vec::new(),
                        },
                    });
                    slices.len() - 1
                }
            };
            slices[slot]
                .content
                .endpoints
                .push(endpoint(address, ready));
        }
    }
    slices
}

/// The labels of the mirrored slices: the Endpoints' own, with the Service name and this
/// controller's name.
pub fn mirrored_labels(endpoints: &Endpoints) -> BTreeMap<String, String> {
    let mut labels = endpoints.metadata.labels.clone().unwrap_or_default();
    labels.insert(
        SERVICE_NAME_LABEL.into(),
        endpoints.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    labels
}

fn mirrored_annotations(endpoints: &Endpoints) -> Option<BTreeMap<String, String>> {
    let mut annotations = endpoints.metadata.annotations.clone().unwrap_or_default();
    for key in DROPPED_ANNOTATIONS {
        annotations.remove(*key);
    }
    (!annotations.is_empty()).then_some(annotations)
}

fn owner_reference(endpoints: &Endpoints) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Endpoints".into(),
        name: endpoints.metadata.name.clone().unwrap_or_default(),
        uid: endpoints.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `endpoints` of `service` are mirrored: a Service without a selector, and no
/// skip-mirror label.
pub fn should_mirror(endpoints: &Endpoints, service: &Service) -> bool {
    let skip = endpoints
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SKIP_MIRROR_LABEL))
        .is_some_and(|v| v == "true");
    !skip && service_selector(service).is_none_or(BTreeMap::is_empty)
}

/// Keeps the mirrored slices of selector-less Services true.
pub struct EndpointSliceMirroringController {
    client: kube::Client,
    informers: SharedInformers,
}

fn get<K>(store: &Store<K>, key: &ServiceKey) -> Option<std::sync::Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    store.get(&ObjectRef::new(&key.1).within(&key.0))
}

impl EndpointSliceMirroringController {
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
        let queue: WorkQueue<ServiceKey> = WorkQueue::new();
        let key_of = |meta: &kube::api::ObjectMeta| {
            vec![(
                meta.namespace.clone().unwrap_or_default(),
                meta.name.clone().unwrap_or_default(),
            )]
        };
        let (endpoints, endpoint_events) = self.informers.informer::<Endpoints>().await;
        let (services, service_events) = self.informers.informer::<Service>().await;
        let (_slices, slice_events) = informer(
            Api::<EndpointSlice>::all(self.client.clone()),
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={CONTROLLER_NAME}")),
        );
        let _guards = [
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                endpoint_events,
                move |change: &Change<Endpoints>| key_of(&change.object().metadata),
            ))),
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                service_events,
                move |change: &Change<Service>| key_of(&change.object().metadata),
            ))),
            // A mirrored slice changed or deleted by someone else is written again.
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                slice_events,
                |change: &Change<EndpointSlice>| {
                    let slice = change.object();
                    slice
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(SERVICE_NAME_LABEL).cloned())
                        .map(|name| (slice.metadata.namespace.clone().unwrap_or_default(), name))
                        .into_iter()
                        .collect()
                },
            ))),
        ];
        if endpoints.wait_until_ready().await.is_err() || services.wait_until_ready().await.is_err()
        {
            return;
        }
        let this = &self;
        let (endpoints, services) = (&endpoints, &services);
        queue
            .run("endpointslicemirroring", |key| async move {
                this.reconcile(get(endpoints, &key), get(services, &key), &key)
                    .await
            })
            .await;
    }

    /// Brings the mirrored slices of `key` (an Endpoints and Service name) up to date.
    pub async fn reconcile(
        &self,
        endpoints: Option<std::sync::Arc<Endpoints>>,
        service: Option<std::sync::Arc<Service>>,
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
        let mirrored = match (endpoints, service) {
            (Some(e), Some(s)) if should_mirror(&e, &s) => Some(e),
            _ => None,
        };
        let Some(endpoints) = mirrored else {
            for slice in existing {
                delete(&api, slice).await?;
            }
            return Ok(Next::Wait);
        };
        let mut wanted = desired_slices(&endpoints);
        let labels = mirrored_labels(&endpoints);
        let annotations = mirrored_annotations(&endpoints);
        let owner = owner_reference(&endpoints);
        let mut stale = Vec::new();
        for slice in existing {
            let meta_right = slice.metadata.labels.as_ref() == Some(&labels)
                && slice.metadata.annotations == annotations
                && slice.metadata.owner_references.as_deref() == Some(std::slice::from_ref(&owner));
            let found = wanted.iter().position(|w| {
                meta_right
                    && w.address_type == slice.address_type
                    && w.content.ports == slice.ports.clone().unwrap_or_default()
                    && w.content.endpoints == slice.endpoints
            });
            match found {
                Some(i) => {
                    wanted.remove(i);
                }
                None => stale.push(slice),
            }
        }
        stale.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let mut stale = stale.into_iter();
        for slice in wanted {
            match stale.next() {
                Some(mut old) if old.address_type == slice.address_type => {
                    let name = old.metadata.name.clone().unwrap_or_default();
                    old.metadata.labels = Some(labels.clone());
                    old.metadata.annotations = annotations.clone();
                    old.metadata.owner_references = Some(vec![owner.clone()]);
                    old.ports = Some(slice.content.ports);
                    old.endpoints = slice.content.endpoints;
                    api.replace(&name, &PostParams::default(), &old).await?;
                }
                other => {
                    if let Some(old) = other {
                        // An address type cannot change: replace the slice.
                        delete(&api, old).await?;
                    }
                    let mut new = EndpointSlice {
                        address_type: slice.address_type.to_owned(),
                        endpoints: slice.content.endpoints,
                        ports: Some(slice.content.ports),
                        ..EndpointSlice::default()
                    };
                    let prefix: String = key.1.chars().take(57).collect();
                    new.metadata.generate_name = Some(format!("{prefix}-"));
                    new.metadata.namespace = Some(key.0.clone());
                    new.metadata.labels = Some(labels.clone());
                    new.metadata.annotations = annotations.clone();
                    new.metadata.owner_references = Some(vec![owner.clone()]);
                    api.create(&PostParams::default(), &new).await?;
                }
            }
        }
        for slice in stale {
            delete(&api, slice).await?;
        }
        Ok(Next::Wait)
    }
}

async fn delete(api: &Api<EndpointSlice>, slice: EndpointSlice) -> Result<(), kube::Error> {
    let name = slice.metadata.name.unwrap_or_default();
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(err) if is_not_found(&err) => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn subsets_become_slices_per_port_set_and_address_type() {
        let endpoints: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "db", "labels": {"team": "a"},
                "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "x", "note": "n"}},
            "subsets": [
                {"addresses": [{"ip": "10.0.0.1", "hostname": "db-0", "nodeName": "n1"}, {"ip": "fd00::1"}],
                 "notReadyAddresses": [{"ip": "10.0.0.2"}, {"ip": "not-an-ip"}],
                 "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]},
                {"addresses": [{"ip": "10.0.0.3"}],
                 "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]},
                {"addresses": [{"ip": "10.0.0.4"}], "ports": [{"port": 80}]},
            ],
        }))
        .unwrap();
        let slices = desired_slices(&endpoints);
        let summary: Vec<(&str, Vec<(String, bool)>)> = slices
            .iter()
            .map(|s| {
                (
                    s.address_type,
                    s.content
                        .endpoints
                        .iter()
                        .map(|e| {
                            (
                                e.addresses[0].clone(),
                                e.conditions.as_ref().unwrap().ready.unwrap(),
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "IPv4",
                    vec![
                        ("10.0.0.1".into(), true),
                        ("10.0.0.2".into(), false),
                        ("10.0.0.3".into(), true)
                    ]
                ),
                ("IPv6", vec![("fd00::1".into(), true)]),
                ("IPv4", vec![("10.0.0.4".into(), true)]),
            ]
        );
        assert_eq!(
            slices[0].content.endpoints[0].hostname.as_deref(),
            Some("db-0")
        );
        let labels = mirrored_labels(&endpoints);
        assert_eq!(labels["team"], "a");
        assert_eq!(labels[SERVICE_NAME_LABEL], "db");
        assert_eq!(labels[MANAGED_BY_LABEL], CONTROLLER_NAME);
        assert_eq!(
            mirrored_annotations(&endpoints),
            Some(BTreeMap::from([("note".into(), "n".into())]))
        );
    }

    #[test]
    fn only_selector_less_services_without_skip_mirror_are_mirrored() {
        let endpoints: Endpoints =
            serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        let skipped: Endpoints = serde_json::from_value(
            json!({"metadata": {"name": "x", "labels": {SKIP_MIRROR_LABEL: "true"}}}),
        )
        .unwrap();
        let bare: Service = serde_json::from_value(json!({"spec": {}})).unwrap();
        let selecting: Service =
            serde_json::from_value(json!({"spec": {"selector": {"app": "x"}}})).unwrap();
        assert!(should_mirror(&endpoints, &bare));
        assert!(!should_mirror(&skipped, &bare));
        assert!(!should_mirror(&endpoints, &selecting));
    }
}
