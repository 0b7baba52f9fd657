//! Informers: one watch per kind, turned into messages for the scheduling loop. A relist
//! (after the watch is lost) reports the objects that disappeared meanwhile as deleted.

use std::collections::HashSet;
use std::fmt::Debug;

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;

use crate::trimmed::Trimmed;

/// A change to one object.
#[derive(Debug)]
pub enum Change<K> {
    /// Added or modified. Boxed: the scheduler's messages are moved through a channel, and
    /// an object (a pod especially) is large.
    Apply(Box<K>),
    /// Deleted; the last state seen.
    Delete(Box<K>),
    /// Deleted while the watch was down: only the key (`namespace/name` or `name`).
    Gone(String),
    /// The initial list (or a relist) is complete.
    Synced,
}

/// Writes the object's key (`namespace/name`, or `name`) into `buf`.
fn key_into<K: Resource>(obj: &K, buf: &mut String) {
    let meta = obj.meta();
    buf.clear();
    if let Some(ns) = &meta.namespace {
        buf.push_str(ns);
        buf.push('/');
    }
    buf.push_str(meta.name.as_deref().unwrap_or_default());
}

/// Adds the object's key to `set`, allocating only for a key not there yet (most changes
/// are to objects already known).
fn remember<K: Resource>(set: &mut HashSet<String>, obj: &K, buf: &mut String) {
    key_into(obj, buf);
    if !set.contains(buf.as_str()) {
        set.insert(buf.clone());
    }
}

/// Starts [`run`] over every object of `K` in the cluster.
pub fn spawn<K, M>(
    client: &kube::Client,
    tx: &UnboundedSender<M>,
    wrap: fn(Change<K>) -> M,
) -> tokio::task::JoinHandle<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
    M: Send + 'static,
{
    tokio::spawn(run(Api::all(client.clone()), tx.clone(), wrap))
}

/// Watches `api` forever, sending each change through `wrap`. Returns when the receiver
/// is gone.
/// Objects arrive without `metadata.managedFields` ([`Trimmed`]).
pub async fn run<K, M>(api: Api<Trimmed<K>>, tx: UnboundedSender<M>, wrap: fn(Change<K>) -> M)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut known: HashSet<String> = HashSet::new();
    let mut listing: HashSet<String> = HashSet::new();
    let mut buf = String::new();
    while let Some(event) = stream.next().await {
        let change = match event {
            Ok(Event::Apply(Trimmed(obj))) => {
                remember(&mut known, &obj, &mut buf);
                Change::Apply(Box::new(obj))
            }
            Ok(Event::Delete(Trimmed(obj))) => {
                key_into(&obj, &mut buf);
                known.remove(buf.as_str());
                Change::Delete(Box::new(obj))
            }
            Ok(Event::Init) => {
                listing.clear();
                continue;
            }
            Ok(Event::InitApply(Trimmed(obj))) => {
                remember(&mut listing, &obj, &mut buf);
                Change::Apply(Box::new(obj))
            }
            Ok(Event::InitDone) => {
                for gone in known.difference(&listing) {
                    if tx.send(wrap(Change::Gone(gone.clone()))).is_err() {
                        return;
                    }
                }
                known = std::mem::take(&mut listing);
                Change::Synced
            }
            Err(err) => {
                tracing::debug!(error = %err, "scheduler watch");
                continue;
            }
        };
        if tx.send(wrap(change)).is_err() {
            return;
        }
    }
}
