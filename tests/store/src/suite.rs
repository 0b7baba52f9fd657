//! The conformance suite: what every backend must do, written once against [`Store`].
//!
//! Each check uses its own key prefix, so it does not care what else the store holds.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use rkube_store::{
    Error, KeyValue, ListOptions, Revision, Store, WatchEvent, WatchOptions, WatchStream,
    continue_after,
};

const WAIT: Duration = Duration::from_secs(20);

/// The next event that is not a progress notification.
pub async fn next_change(watch: &mut WatchStream) -> WatchEvent {
    loop {
        let item = tokio::time::timeout(WAIT, watch.next())
            .await
            .expect("no watch event in time")
            .expect("watch ended");
        match item.expect("watch failed") {
            WatchEvent::Progress { .. } => continue,
            event => return event,
        }
    }
}

fn value_of(event: &WatchEvent) -> Option<&[u8]> {
    match event {
        WatchEvent::Put { kv, .. } => Some(&kv.value),
        _ => None,
    }
}

fn prev_value_of(event: &WatchEvent) -> Option<&[u8]> {
    match event {
        WatchEvent::Put { prev, .. } | WatchEvent::Delete { prev, .. } => {
            prev.as_ref().map(|p| &p.value[..])
        }
        WatchEvent::Progress { .. } => None,
    }
}

/// Each write raises the revision by exactly one and stamps the key with it.
pub async fn revisions_strictly_increase_by_one_per_write(store: &dyn Store) {
    let start = store.current_revision().await.unwrap();
    let r1 = store.create("/rev/a", b"1".to_vec(), None).await.unwrap();
    assert_eq!(r1, start + 1);
    let r2 = store.create("/rev/b", b"1".to_vec(), None).await.unwrap();
    assert_eq!(r2, r1 + 1);
    let r3 = store
        .update("/rev/a", b"2".to_vec(), r1, None)
        .await
        .unwrap();
    assert_eq!(r3, r2 + 1);
    let (r4, deleted) = store.delete("/rev/b", None).await.unwrap();
    assert_eq!(r4, r3 + 1);
    assert_eq!(deleted.mod_revision, r2);
    assert_eq!(store.current_revision().await.unwrap(), r4);

    let a = store.get("/rev/a", None).await.unwrap().expect("key a");
    assert_eq!(
        (a.create_revision, a.mod_revision, &a.value[..]),
        (r1, r3, &b"2"[..])
    );
    assert!(store.get("/rev/b", None).await.unwrap().is_none());

    // Failed writes do not move the revision.
    assert!(store.create("/rev/a", b"x".to_vec(), None).await.is_err());
    assert!(
        store
            .update("/rev/a", b"x".to_vec(), r1, None)
            .await
            .is_err()
    );
    assert_eq!(store.current_revision().await.unwrap(), r4);
}

/// Creating a key that exists fails and leaves it as it was.
pub async fn create_of_an_existing_key_fails(store: &dyn Store) {
    let rev = store
        .create("/create/k", b"first".to_vec(), None)
        .await
        .unwrap();
    let err = store
        .create("/create/k", b"second".to_vec(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists { ref key } if key == "/create/k"),
        "{err}"
    );
    let kv = store.get("/create/k", None).await.unwrap().unwrap();
    assert_eq!((&kv.value[..], kv.mod_revision), (&b"first"[..], rev));

    // A deleted key can be created again, with a new create revision.
    store.delete("/create/k", None).await.unwrap();
    let again = store
        .create("/create/k", b"third".to_vec(), None)
        .await
        .unwrap();
    let kv = store.get("/create/k", None).await.unwrap().unwrap();
    assert_eq!(kv.create_revision, again);
}

/// An update against a revision that is no longer current is a conflict carrying the current
/// value; an update of a missing key is not found.
pub async fn update_with_a_stale_revision_is_a_conflict(store: &dyn Store) {
    let r1 = store.create("/cas/k", b"v1".to_vec(), None).await.unwrap();
    let r2 = store
        .update("/cas/k", b"v2".to_vec(), r1, None)
        .await
        .unwrap();
    let err = store
        .update("/cas/k", b"v3".to_vec(), r1, None)
        .await
        .unwrap_err();
    match err {
        Error::Conflict {
            key,
            expected,
            current,
        } => {
            assert_eq!((key.as_str(), expected), ("/cas/k", r1));
            let current = current.expect("conflict carries the current value");
            assert_eq!((&current.value[..], current.mod_revision), (&b"v2"[..], r2));
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(
        &store.get("/cas/k", None).await.unwrap().unwrap().value[..],
        b"v2"
    );

    let err = store
        .update("/cas/missing", b"v".to_vec(), 0, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = store
        .update("/cas/missing", b"v".to_vec(), r1, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(store.get("/cas/missing", None).await.unwrap().is_none());
}

/// Delete honours its expected revision and returns what it deleted.
pub async fn delete_preconditions_are_honoured(store: &dyn Store) {
    let r1 = store.create("/del/k", b"v1".to_vec(), None).await.unwrap();
    let r2 = store
        .update("/del/k", b"v2".to_vec(), r1, None)
        .await
        .unwrap();
    let err = store.delete("/del/k", Some(r1)).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict { expected, .. } if expected == r1),
        "{err}"
    );
    assert!(store.get("/del/k", None).await.unwrap().is_some());

    let (rev, prev) = store.delete("/del/k", Some(r2)).await.unwrap();
    assert!(rev > r2);
    assert_eq!(
        (&prev.value[..], prev.mod_revision, prev.create_revision),
        (&b"v2"[..], r2, r1)
    );
    assert!(store.get("/del/k", None).await.unwrap().is_none());

    let err = store.delete("/del/k", None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = store.delete("/del/never", Some(1)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

/// Reads at a past revision see the store as it was then.
pub async fn reads_at_past_revisions_see_the_past(store: &dyn Store) {
    let r1 = store.create("/past/a", b"a1".to_vec(), None).await.unwrap();
    let r2 = store.create("/past/b", b"b1".to_vec(), None).await.unwrap();
    let r3 = store
        .update("/past/a", b"a2".to_vec(), r1, None)
        .await
        .unwrap();
    let (r4, _) = store.delete("/past/b", None).await.unwrap();
    let r5 = store.create("/past/c", b"c1".to_vec(), None).await.unwrap();

    let at = |rev| async move {
        let list = store
            .list(
                "/past/",
                ListOptions {
                    revision: Some(rev),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(list.revision, rev);
        list.items
            .into_iter()
            .map(|kv| (kv.key, String::from_utf8(kv.value.to_vec()).unwrap()))
            .collect::<Vec<_>>()
    };
    let pairs = |p: &[(&str, &str)]| {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(at(r1).await, pairs(&[("/past/a", "a1")]));
    assert_eq!(at(r2).await, pairs(&[("/past/a", "a1"), ("/past/b", "b1")]));
    assert_eq!(at(r3).await, pairs(&[("/past/a", "a2"), ("/past/b", "b1")]));
    assert_eq!(at(r4).await, pairs(&[("/past/a", "a2")]));
    assert_eq!(at(r5).await, pairs(&[("/past/a", "a2"), ("/past/c", "c1")]));

    assert_eq!(
        &store.get("/past/a", Some(r2)).await.unwrap().unwrap().value[..],
        b"a1"
    );
    assert_eq!(
        &store.get("/past/b", Some(r3)).await.unwrap().unwrap().value[..],
        b"b1"
    );
    assert!(store.get("/past/b", Some(r4)).await.unwrap().is_none());
    assert!(store.get("/past/c", Some(r4)).await.unwrap().is_none());

    let current = store.current_revision().await.unwrap();
    let err = store.get("/past/a", Some(current + 100)).await.unwrap_err();
    assert!(matches!(err, Error::FutureRevision { .. }), "{err}");
}

/// Paging through a list at one revision returns exactly that snapshot, whatever is written
/// meanwhile, and the count says how many keys the range holds.
pub async fn pagination_stays_consistent_under_concurrent_writes(store: Arc<dyn Store>) {
    let mut expected = BTreeMap::new();
    for i in 0..60 {
        let key = format!("/page/k{i:03}");
        store
            .create(&key, format!("v{i}").into_bytes(), None)
            .await
            .unwrap();
        expected.insert(key, format!("v{i}"));
    }
    // Keys just outside the prefix must never show up.
    store
        .create("/page", b"outside".to_vec(), None)
        .await
        .unwrap();
    store
        .create("/page0", b"outside".to_vec(), None)
        .await
        .unwrap();

    let first = store
        .list(
            "/page/",
            ListOptions {
                limit: Some(7),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.count, 60);
    assert!(first.more);
    let snapshot = first.revision;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let victim = format!("/page/k{:03}", n % 60);
                if let Ok(Some(kv)) = store.get(&victim, None).await {
                    let _ = store
                        .update(&victim, b"changed".to_vec(), kv.mod_revision, None)
                        .await;
                }
                let _ = store
                    .create(&format!("/page/new{n:04}"), b"new".to_vec(), None)
                    .await;
                let _ = store
                    .delete(&format!("/page/k{:03}", (n * 7) % 60), None)
                    .await;
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        })
    };

    let mut seen: Vec<KeyValue> = first.items;
    let mut more = first.more;
    while more {
        let start = continue_after(&seen.last().unwrap().key);
        let page = store
            .list(
                "/page/",
                ListOptions {
                    revision: Some(snapshot),
                    limit: Some(7),
                    start: Some(start),
                },
            )
            .await
            .unwrap();
        assert_eq!(page.revision, snapshot);
        assert_eq!(
            page.count,
            60 - seen.len() as i64,
            "count covers the rest of the range"
        );
        assert!(page.items.len() <= 7);
        more = page.more;
        seen.extend(page.items);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    assert!(writes > 0, "the concurrent writer ran");

    let got: BTreeMap<String, String> = seen
        .into_iter()
        .map(|kv| (kv.key, String::from_utf8(kv.value.to_vec()).unwrap()))
        .collect();
    assert_eq!(got, expected);
}

/// A watch from an old revision replays history in order, with previous values, then goes on
/// with live events.
pub async fn watch_from_an_old_revision_replays_history_in_order(store: &dyn Store) {
    let r1 = store.create("/hist/a", b"a1".to_vec(), None).await.unwrap();
    let r2 = store
        .update("/hist/a", b"a2".to_vec(), r1, None)
        .await
        .unwrap();
    store.create("/other/x", b"x".to_vec(), None).await.unwrap();
    let r3 = store.create("/hist/b", b"b1".to_vec(), None).await.unwrap();
    let (r4, _) = store.delete("/hist/a", None).await.unwrap();

    let mut watch = store
        .watch("/hist/", WatchOptions::from_revision(r2))
        .await
        .unwrap();
    let e = next_change(&mut watch).await;
    assert_eq!(
        (e.revision(), value_of(&e), prev_value_of(&e)),
        (r2, Some(&b"a2"[..]), Some(&b"a1"[..]))
    );
    let e = next_change(&mut watch).await;
    assert_eq!(
        (e.revision(), e.key(), prev_value_of(&e)),
        (r3, Some("/hist/b"), None)
    );
    let e = next_change(&mut watch).await;
    assert!(matches!(e, WatchEvent::Delete { .. }), "{e:?}");
    assert_eq!(
        (e.revision(), e.key(), prev_value_of(&e)),
        (r4, Some("/hist/a"), Some(&b"a2"[..]))
    );

    let r5 = store.create("/hist/c", b"c1".to_vec(), None).await.unwrap();
    let e = next_change(&mut watch).await;
    assert_eq!((e.revision(), e.key()), (r5, Some("/hist/c")));

    // A watch from 0 starts after the current revision.
    let mut fresh = store
        .watch("/hist/", WatchOptions::default())
        .await
        .unwrap();
    let r6 = store.create("/hist/d", b"d1".to_vec(), None).await.unwrap();
    let e = next_change(&mut fresh).await;
    assert_eq!((e.revision(), e.key()), (r6, Some("/hist/d")));
}

/// Many watchers under many concurrent writers each see every event under their prefix once,
/// in revision order.
pub async fn many_watchers_see_every_event_exactly_once_in_order(store: Arc<dyn Store>) {
    const WRITERS: usize = 8;
    const WRITES: usize = 40;
    let start = store.current_revision().await.unwrap() + 1;
    let mut watchers = Vec::new();
    for w in 0..24 {
        // Half watch everything under /many/, the others one writer's keys.
        let prefix = if w % 2 == 0 {
            "/many/".to_owned()
        } else {
            format!("/many/w{}/", w % WRITERS)
        };
        let watch = store
            .watch(&prefix, WatchOptions::from_revision(start))
            .await
            .unwrap();
        watchers.push((prefix, watch));
    }
    let writes = (0..WRITERS).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 0..WRITES {
                let key = format!("/many/w{w}/k{}", i % 5);
                let rev = match store.get(&key, None).await.unwrap() {
                    Some(kv) if i % 7 == 6 => {
                        store.delete(&key, Some(kv.mod_revision)).await.unwrap().0
                    }
                    Some(kv) => store
                        .update(&key, vec![i as u8], kv.mod_revision, None)
                        .await
                        .unwrap(),
                    None => store.create(&key, vec![i as u8], None).await.unwrap(),
                };
                revisions.push((key, rev));
            }
            revisions
        })
    });
    let mut written: Vec<(String, Revision)> = Vec::new();
    for handle in writes.collect::<Vec<_>>() {
        written.extend(handle.await.unwrap());
    }

    let checks = watchers.into_iter().map(|(prefix, mut watch)| {
        let expected: Vec<Revision> = {
            let mut revs: Vec<_> = written
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(_, r)| *r)
                .collect();
            revs.sort();
            revs
        };
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while seen.len() < expected.len() {
                let event = next_change(&mut watch).await;
                assert!(
                    event.key().unwrap().starts_with(&prefix),
                    "{event:?} outside {prefix}"
                );
                seen.push(event.revision());
            }
            assert_eq!(seen, expected, "watcher on {prefix}");
            // Nothing more: the next item, if any, is only a progress notification.
            if let Ok(Some(Ok(extra))) =
                tokio::time::timeout(Duration::from_millis(300), watch.next()).await
            {
                assert!(
                    matches!(extra, WatchEvent::Progress { .. }),
                    "unexpected {extra:?}"
                );
            }
        })
    });
    for check in checks.collect::<Vec<_>>() {
        check.await.unwrap();
    }
}

/// After compaction, reads before the compaction point are `Compacted`; the point itself and
/// everything after stay readable, and watches can start right after it.
pub async fn compaction_makes_older_revisions_unavailable(store: &dyn Store) {
    let r1 = store
        .create("/compact/a", b"a1".to_vec(), None)
        .await
        .unwrap();
    let r2 = store
        .update("/compact/a", b"a2".to_vec(), r1, None)
        .await
        .unwrap();
    let r3 = store
        .create("/compact/b", b"b1".to_vec(), None)
        .await
        .unwrap();
    let (r4, _) = store.delete("/compact/b", None).await.unwrap();
    let r5 = store
        .update("/compact/a", b"a3".to_vec(), r2, None)
        .await
        .unwrap();
    let r6 = store
        .create("/compact/c", b"c1".to_vec(), None)
        .await
        .unwrap();

    store.compact(r4).await.unwrap();
    assert!(store.compact_revision().await.unwrap() >= r4);

    for rev in [r1, r2, r3, r4] {
        if rev < r4 {
            let err = store.get("/compact/a", Some(rev)).await.unwrap_err();
            assert!(
                matches!(err, Error::Compacted { requested, .. } if requested == rev),
                "{err}"
            );
            let err = store
                .list(
                    "/compact/",
                    ListOptions {
                        revision: Some(rev),
                        ..Default::default()
                    },
                )
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Compacted { .. }), "{err}");
        }
        let err = match store
            .watch("/compact/", WatchOptions::from_revision(rev))
            .await
        {
            Err(err) => err,
            Ok(mut watch) => watch.next().await.expect("an error").unwrap_err(),
        };
        assert!(matches!(err, Error::Compacted { .. }), "{err}");
    }

    // The compaction point itself is still readable, and so is everything after it.
    assert_eq!(
        &store
            .get("/compact/a", Some(r4))
            .await
            .unwrap()
            .unwrap()
            .value[..],
        b"a2"
    );
    assert!(store.get("/compact/b", Some(r4)).await.unwrap().is_none());
    let at_r4 = store
        .list(
            "/compact/",
            ListOptions {
                revision: Some(r4),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        at_r4
            .items
            .iter()
            .map(|kv| kv.key.as_str())
            .collect::<Vec<_>>(),
        ["/compact/a"]
    );
    assert_eq!(
        &store.get("/compact/a", None).await.unwrap().unwrap().value[..],
        b"a3"
    );

    let mut watch = store
        .watch("/compact/", WatchOptions::from_revision(r4 + 1))
        .await
        .unwrap();
    let e = next_change(&mut watch).await;
    assert_eq!((e.revision(), prev_value_of(&e)), (r5, Some(&b"a2"[..])));
    let e = next_change(&mut watch).await;
    assert_eq!(e.revision(), r6);

    // Compacting again at or below the point is refused.
    let err = store.compact(r2).await.unwrap_err();
    assert!(matches!(err, Error::Compacted { .. }), "{err}");
}

/// Keys bound to a lease vanish when it expires or is revoked, each with a delete event.
pub async fn keys_with_an_expired_lease_are_deleted(store: &dyn Store) {
    let short = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    let long = store.grant_lease(Duration::from_secs(600)).await.unwrap();
    let mut watch = store
        .watch("/lease/", WatchOptions::default())
        .await
        .unwrap();
    store
        .create("/lease/event-1", b"e".to_vec(), Some(short))
        .await
        .unwrap();
    store
        .create("/lease/event-2", b"e".to_vec(), Some(short))
        .await
        .unwrap();
    store
        .create("/lease/kept", b"k".to_vec(), Some(long))
        .await
        .unwrap();
    store
        .create("/lease/plain", b"p".to_vec(), None)
        .await
        .unwrap();

    let mut deleted = HashSet::new();
    let mut last = 0;
    while deleted.len() < 2 {
        let event = next_change(&mut watch).await;
        if let WatchEvent::Delete {
            key,
            revision,
            prev,
        } = &event
        {
            assert!(*revision >= last);
            last = *revision;
            assert_eq!(prev.as_ref().map(|p| &p.value[..]), Some(&b"e"[..]));
            deleted.insert(key.clone());
        }
    }
    assert_eq!(
        deleted,
        HashSet::from(["/lease/event-1".to_owned(), "/lease/event-2".to_owned()])
    );
    assert!(store.get("/lease/event-1", None).await.unwrap().is_none());
    assert!(store.get("/lease/kept", None).await.unwrap().is_some());
    assert!(store.get("/lease/plain", None).await.unwrap().is_some());

    store.revoke_lease(long).await.unwrap();
    let event = next_change(&mut watch).await;
    assert_eq!(event.key(), Some("/lease/kept"));
    assert!(matches!(event, WatchEvent::Delete { .. }));

    let err = store
        .create("/lease/orphan", b"o".to_vec(), Some(short))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::LeaseNotFound(id) if id == short),
        "{err}"
    );
    assert!(store.get("/lease/orphan", None).await.unwrap().is_none());
}

/// 32 tasks racing read-increment-write with compare-and-swap end at exactly the number of
/// writes that succeeded: no lost update, no double count.
pub async fn racing_compare_and_swap_increments_are_exact(store: Arc<dyn Store>) {
    const TASKS: usize = 32;
    const INCREMENTS: usize = 10;
    store.create("/counter", b"0".to_vec(), None).await.unwrap();
    let successes = Arc::new(AtomicUsize::new(0));
    let conflicts = Arc::new(AtomicUsize::new(0));
    let tasks = (0..TASKS).map(|_| {
        let (store, successes, conflicts) = (store.clone(), successes.clone(), conflicts.clone());
        tokio::spawn(async move {
            let mut done = 0;
            while done < INCREMENTS {
                let kv = store.get("/counter", None).await.unwrap().unwrap();
                let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                let next = (n + 1).to_string().into_bytes();
                match store.update("/counter", next, kv.mod_revision, None).await {
                    Ok(_) => {
                        done += 1;
                        successes.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(Error::Conflict { .. }) => {
                        conflicts.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(other) => panic!("unexpected error {other}"),
                }
            }
        })
    });
    for task in tasks.collect::<Vec<_>>() {
        task.await.unwrap();
    }
    let kv = store.get("/counter", None).await.unwrap().unwrap();
    let n: usize = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
    assert_eq!(n, successes.load(Ordering::SeqCst));
    assert_eq!(n, TASKS * INCREMENTS);
    assert!(conflicts.load(Ordering::SeqCst) > 0, "the tasks did race");
}

/// A value over 1.5 MiB is refused and nothing is written.
pub async fn a_value_over_the_size_limit_is_rejected(store: &dyn Store) {
    let before = store.current_revision().await.unwrap();
    let big = vec![b'x'; rkube_store::MAX_VALUE_SIZE + 1];
    let err = store.create("/big", big.clone(), None).await.unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    assert!(
        err.to_string().contains("/big"),
        "the error names the key: {err}"
    );
    store.create("/big", b"small".to_vec(), None).await.unwrap();
    let rev = store.get("/big", None).await.unwrap().unwrap().mod_revision;
    let err = store.update("/big", big, rev, None).await.unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    assert_eq!(store.current_revision().await.unwrap(), before + 1);
    // A large value under the limit is fine.
    let large = vec![b'y'; 1024 * 1024];
    store
        .update("/big", large.clone(), rev, None)
        .await
        .unwrap();
    assert_eq!(
        store.get("/big", None).await.unwrap().unwrap().value.len(),
        large.len()
    );
}

/// An idle watch reports progress: a revision up to which everything was delivered.
pub async fn an_idle_watch_sends_progress_notifications(store: &dyn Store) {
    let rev = store
        .create("/progress/k", b"v".to_vec(), None)
        .await
        .unwrap();
    let options = WatchOptions {
        start_revision: rev,
        progress_notify: Some(Duration::from_millis(200)),
    };
    let mut watch = store.watch("/progress/", options).await.unwrap();
    let first = tokio::time::timeout(WAIT, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.revision(), rev);
    let progress = tokio::time::timeout(WAIT, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match progress {
        WatchEvent::Progress { revision } => assert!(revision >= rev),
        other => panic!("expected progress, got {other:?}"),
    }
}

/// Keys are ordered, prefixes are exact, and limits and counts agree.
pub async fn lists_are_ordered_and_bounded_by_the_prefix(store: &dyn Store) {
    for key in [
        "/order/b",
        "/order/a",
        "/order/c/x",
        "/order/ab",
        "/orderly",
        "/order",
    ] {
        store
            .create(key, key.as_bytes().to_vec(), None)
            .await
            .unwrap();
    }
    let all = store.list("/order/", ListOptions::default()).await.unwrap();
    let keys: Vec<_> = all.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/order/a", "/order/ab", "/order/b", "/order/c/x"]);
    assert_eq!((all.count, all.more), (4, false));

    let page = store
        .list(
            "/order/",
            ListOptions {
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!((page.count, page.more), (4, true));

    let exact = store
        .list(
            "/order/",
            ListOptions {
                limit: Some(4),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((exact.items.len(), exact.more), (4, false));

    let err = store
        .list(
            "/order/",
            ListOptions {
                start: Some("/elsewhere".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}
