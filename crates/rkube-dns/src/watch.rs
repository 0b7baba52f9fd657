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
    let listed = AtomicU8::new(0);
    let mark = |kind: u8| {
        if (listed.fetch_or(kind, Ordering::SeqCst) | kind) == (SERVICES | SLICES | NAMESPACES) {
            records.change(|index| index.synced = true);
        }
    };
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
