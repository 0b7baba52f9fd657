//! Gets and lists from the cache: one consistent view of a resource under its read lock,
//! pages with continue tokens, and list bodies assembled from the stored bytes.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use rkube_api::ApiError;
use rkube_store::Revision;

use super::{CachedObject, EventKind, ResourceCache, WatchCache};

/// One page of a list read from the cache.
pub(crate) struct CachedPage {
    /// The objects, in key order.
    pub items: Vec<Arc<CachedObject>>,
    /// The revision the page reflects.
    pub revision: Revision,
    /// Where the next page starts (below the listed prefix), when there is one.
    pub continue_start: Option<String>,
    /// How many keys follow the page.
    pub remaining: i64,
}

/// A list request against the cache.
pub(crate) struct CachedList<'a> {
    /// The namespace listed (`None`: all).
    pub namespace: Option<&'a str>,
    /// Start at this key below the listed prefix (from a continue token).
    pub start: Option<&'a str>,
    /// The revision a continue token was issued at, which the page shows.
    pub at: Option<Revision>,
    /// At most this many objects.
    pub limit: Option<usize>,
}

impl WatchCache {
    /// One object and the revision the answer reflects.
    pub fn get(
        &self,
        resource: &ResourceCache,
        namespace: Option<&str>,
        name: &str,
    ) -> (Option<Arc<CachedObject>>, Revision) {
        let key = match namespace {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_owned(),
        };
        let state = resource.read();
        let revision = state.revision(self.seen());
        (state.objects.get(key.as_str()).cloned(), revision)
    }

    /// A page of the objects `keep` accepts; `None` when a continue token's revision cannot
    /// be served from the cache, so the store must answer: the cache has not reached it yet,
    /// or some change after it has left the window. A continue token's page shows the
    /// resource as it was at the token's revision: the objects changed since are taken back
    /// to their state then, from the window's events.
    pub fn list(
        &self,
        resource: &ResourceCache,
        request: &CachedList<'_>,
        keep: &dyn Fn(&CachedObject) -> bool,
    ) -> Option<CachedPage> {
        let state = resource.read();
        let revision = state.revision(self.seen());
        // Per key changed after the token's revision, the object as it was then.
        let mut then: BTreeMap<&str, Option<Arc<CachedObject>>> = BTreeMap::new();
        if let Some(at) = request.at {
            if revision < at || (state.last > at && at < state.floor) {
                return None;
            }
            let first = state.events.partition_point(|e| e.revision <= at);
            for event in state.events.iter().skip(first) {
                then.entry(&*event.object.key)
                    .or_insert_with(|| match event.kind {
                        EventKind::Added => None,
                        EventKind::Modified | EventKind::Deleted => event.prev.clone(),
                    });
            }
        }
        let base = match request.namespace {
            Some(ns) => format!("{ns}/"),
            None => String::new(),
        };
        let lower = format!("{base}{}", request.start.unwrap_or(""));
        let from = (Bound::Included(lower.as_str()), Bound::Unbounded);
        let unchanged = state
            .objects
            .range::<str, _>(from)
            .map(|(k, o)| (&**k, o))
            .filter(|(k, _)| !then.contains_key(k));
        let changed = then
            .range::<str, _>(from)
            .filter_map(|(k, o)| o.as_ref().map(|o| (*k, o)));
        let mut range = merged(unchanged, changed).take_while(|(k, _)| k.starts_with(&base));
        let limit = request.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut page = CachedPage {
            items: Vec::new(),
            revision: request.at.unwrap_or(revision),
            continue_start: None,
            remaining: 0,
        };
        for (_, object) in range.by_ref() {
            if keep(object) {
                page.items.push(object.clone());
                if page.items.len() >= limit {
                    break;
                }
            }
        }
        if page.items.len() >= limit {
            let rest = range.count();
            if rest > 0
                && let Some(last) = page.items.last()
            {
                let below = last.key.strip_prefix(base.as_str()).unwrap_or(&last.key);
                page.continue_start = Some(rkube_store::continue_after(below));
                page.remaining = rest as i64;
            }
        }
        Some(page)
    }
}

/// Two key-ordered sequences with no key in common, as one in key order.
fn merged<'a, T: 'a>(
    a: impl Iterator<Item = (&'a str, T)>,
    b: impl Iterator<Item = (&'a str, T)>,
) -> impl Iterator<Item = (&'a str, T)> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some((x, _)), Some((y, _))) if y < x => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

/// A list body in JSON, assembled from the cached bytes: items go without their type, as
/// upstream's do.
pub(crate) fn list_json(
    list_kind: &str,
    api_version: &str,
    page: &CachedPage,
    continue_token: Option<&str>,
    remaining: Option<i64>,
) -> Result<Vec<u8>, ApiError> {
    let size: usize = page.items.iter().map(|o| o.value.len() + 32).sum();
    let mut out = Vec::with_capacity(size + 256);
    out.extend_from_slice(b"{\"kind\":");
    json_string(&mut out, list_kind);
    out.extend_from_slice(b",\"apiVersion\":");
    json_string(&mut out, api_version);
    out.extend_from_slice(b",\"metadata\":{\"resourceVersion\":\"");
    out.extend_from_slice(page.revision.to_string().as_bytes());
    out.push(b'"');
    if let Some(token) = continue_token {
        out.extend_from_slice(b",\"continue\":");
        json_string(&mut out, token);
    }
    if let Some(remaining) = remaining {
        out.extend_from_slice(b",\"remainingItemCount\":");
        out.extend_from_slice(remaining.to_string().as_bytes());
    }
    out.extend_from_slice(b"},\"items\":[");
    for (i, object) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        object.write_json(&mut out, object.revision, true)?;
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    // serde_json writes a &str as a JSON string and cannot fail doing so into a Vec.
    let _ = serde_json::to_writer(&mut *out, s);
}
