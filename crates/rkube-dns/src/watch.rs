//! Keeping the index current: one watch each on Services, EndpointSlices and Namespaces of
//! all namespaces. A watch's complete list (at start and after every relist) replaces what
//! the index had of that kind; the index counts as synced once all three have listed.

use std::pin::pin;
use std::sync::atomic::{AtomicU8, Ordering};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use crate::server::Records;

/// The three kinds, as bits of the synced mask.
const SERVICES: u8 = 1;
const SLICES: u8 = 2;
const NAMESPACES: u8 = 4;

/// What one watch event does to the index.
enum Change<K> {
    Replace(Vec<K>),
    Apply(K),
    Delete(K),
}

/// Follows the three watches; never returns (each retries with backoff).
pub(crate) async fn watch(client: Client, records: Records) {
    let listed = Listed::default();
    let mark = |kind: u8| listed.mark(kind, &records);
    let services = follow(Api::<Service>::all(client.clone()), |change| match change {
        Change::Replace(all) => {
            records.change(|index| index.replace_services(&all));
            mark(SERVICES);
        }
        Change::Apply(service) => records.apply_service(&service),
        Change::Delete(service) => {
            records.delete_service(
                &service.namespace().unwrap_or_default(),
                &service.name_any(),
            );
        }
    });
    let slices = follow(
        Api::<EndpointSlice>::all(client.clone()),
        |change| match change {
            Change::Replace(all) => {
                records.change(|index| index.replace_slices(&all));
                mark(SLICES);
            }
            Change::Apply(slice) => records.apply_endpoint_slice(&slice),
            Change::Delete(slice) => {
                let namespace = slice.namespace().unwrap_or_default();
                records.delete_endpoint_slice(&namespace, &slice.name_any());
            }
        },
    );
    let namespaces = follow(Api::<Namespace>::all(client), |change| match change {
        Change::Replace(all) => {
            records.change(|index| {
                index.replace_namespaces(all.iter().filter_map(|n| n.metadata.name.as_deref()))
            });
            mark(NAMESPACES);
        }
        Change::Apply(namespace) => records.apply_namespace(&namespace.name_any()),
        Change::Delete(namespace) => records.delete_namespace(&namespace.name_any()),
    });
    tokio::join!(services, slices, namespaces);
}

/// Which kinds have delivered a complete list.
#[derive(Default)]
struct Listed(AtomicU8);

impl Listed {
    /// Notes that `kind` has listed; once all three have, the index is synced.
    fn mark(&self, kind: u8, records: &Records) {
        let all = SERVICES | SLICES | NAMESPACES;
        if (self.0.fetch_or(kind, Ordering::SeqCst) | kind) == all {
            records.change(|index| index.synced = true);
        }
    }
}

/// Feeds one kind's watch events to `apply`, a complete list at a time.
async fn follow<K>(api: Api<K>, mut apply: impl FnMut(Change<K>))
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let kind = std::any::type_name::<K>()
        .rsplit("::")
        .next()
        .unwrap_or("object");
    let events = watcher(api, watcher::Config::default()).default_backoff();
    follow_events(kind, events, &mut apply).await;
}

async fn follow_events<K>(
    kind: &str,
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    apply: &mut impl FnMut(Change<K>),
) {
    let mut events = pin!(events);
    let mut listing = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(object)) => listing.push(object),
            Ok(watcher::Event::InitDone) => {
                tracing::debug!(kind, count = listing.len(), "listed");
                apply(Change::Replace(std::mem::take(&mut listing)));
            }
            Ok(watcher::Event::Apply(object)) => apply(Change::Apply(object)),
            Ok(watcher::Event::Delete(object)) => apply(Change::Delete(object)),
            Err(error) => tracing::warn!(kind, %error, "watch failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::stream;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn namespace(name: &str) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// What `follow_events` made of `events`, as (change, names) pairs.
    async fn changes(
        events: Vec<Result<watcher::Event<Namespace>, watcher::Error>>,
    ) -> Vec<String> {
        let mut seen = Vec::new();
        let mut record = |change: Change<Namespace>| {
            seen.push(match change {
                Change::Replace(all) => {
                    let names: Vec<String> = all.iter().map(ResourceExt::name_any).collect();
                    format!("replace {}", names.join(","))
                }
                Change::Apply(object) => format!("apply {}", object.name_any()),
                Change::Delete(object) => format!("delete {}", object.name_any()),
            });
        };
        follow_events("Namespace", stream::iter(events), &mut record).await;
        seen
    }

    #[tokio::test]
    async fn the_records_are_ready_once_all_three_kinds_have_listed() {
        let config = crate::DnsConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            upstreams: vec!["127.0.0.1:9".parse().expect("address")],
            ..crate::DnsConfig::default()
        };
        let dns = crate::Dns::bind(config).await.expect("bind");
        let listed = Listed::default();
        listed.mark(SERVICES, &dns.records());
        listed.mark(NAMESPACES, &dns.records());
        assert!(!dns.is_ready());
        listed.mark(SLICES, &dns.records());
        assert!(dns.is_ready() && dns.records().is_ready());
    }

    #[tokio::test]
    async fn a_listing_replaces_everything_at_once_and_later_events_apply_one_by_one() {
        let events = vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(namespace("default"))),
            Ok(watcher::Event::InitApply(namespace("kube-system"))),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(namespace("team-a"))),
            Err(watcher::Error::NoResourceVersion),
            Ok(watcher::Event::Delete(namespace("default"))),
            // A relist starts over: only its objects remain.
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(namespace("team-a"))),
            Ok(watcher::Event::InitDone),
        ];
        assert_eq!(
            changes(events).await,
            [
                "replace default,kube-system",
                "apply team-a",
                "delete default",
                "replace team-a",
            ]
        );
    }
}
