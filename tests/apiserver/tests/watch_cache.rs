//! The watch cache's consistency rules, seen from a client: reads without a resourceVersion
//! see every acknowledged write, `resourceVersion=0` is served at once, `N` waits for the
//! cache to reach N, watches replay from the window or get 410 when it has moved on, and
//! pages stay one snapshot while writes go on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use rkube_apiserver::{ApiServer, WatchCacheConfig};
use rkube_apiserver_tests::{api_error, open_store, start, test_config};
use serde_json::json;

fn configmap(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
        "data": {"key": "value"},
    }))
    .unwrap()
}

fn rv_of(cm: &ConfigMap) -> i64 {
    cm.metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

async fn start_with(config: WatchCacheConfig) -> (ApiServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut server_config = test_config(dir.path());
    server_config.watch_cache = config;
    let server = ApiServer::start(server_config, open_store(dir.path()).await)
        .await
        .unwrap();
    (server, dir)
}

async fn cache_loaded(server: &ApiServer) {
    for _ in 0..500 {
        if server.watch_cache_ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the watch cache did not load");
}

#[tokio::test]
async fn every_acknowledged_write_is_seen_by_the_next_get_and_list() {
    let t = start().await;
    cache_loaded(&t.server).await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    for i in 0..40 {
        let name = format!("cm-{i}");
        let created = cms
            .create(
                &PostParams::default(),
                &configmap(&name, &[("n", &i.to_string())]),
            )
            .await
            .unwrap();
        let got = cms.get(&name).await.unwrap();
        assert_eq!(
            got.metadata.resource_version,
            created.metadata.resource_version
        );
        let list = cms.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), i + 1, "the list after creating {name}");
        let list_rv: i64 = list.metadata.resource_version.unwrap().parse().unwrap();
        assert!(list_rv >= rv_of(&created));

        let patch = json!({"data": {"key": format!("v{i}")}});
        let patched = cms
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let got = cms.get(&name).await.unwrap();
        assert_eq!(got.data.unwrap()["key"], format!("v{i}"));
        assert_eq!(
            got.metadata.resource_version,
            patched.metadata.resource_version
        );
    }
    cms.delete("cm-0", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(cms.get("cm-0").await.unwrap_err()).code, 404);
    let names: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert!(!names.contains(&"cm-0".to_owned()) && names.len() == 39);
}

#[tokio::test]
async fn resource_version_zero_answers_from_what_the_cache_has() {
    let t = start().await;
    cache_loaded(&t.server).await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let created = cms
        .create(&PostParams::default(), &configmap("zero", &[]))
        .await
        .unwrap();
    // Once the cache has the write, an RV=0 read returns it with a list revision that
    // covers it; the cache never answers with a state older than one it answered before.
    let consistent = cms.list(&ListParams::default()).await.unwrap();
    let list = cms.list(&ListParams::default().match_any()).await.unwrap();
    let list_rv: i64 = list.metadata.resource_version.unwrap().parse().unwrap();
    let consistent_rv: i64 = consistent
        .metadata
        .resource_version
        .unwrap()
        .parse()
        .unwrap();
    assert!(list_rv >= consistent_rv && list_rv >= rv_of(&created));
    assert_eq!(list.items.len(), 1);
    let got = cms
        .get_with("zero", &kube::api::GetParams::any())
        .await
        .unwrap();
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );
}

#[tokio::test]
async fn not_older_than_waits_for_the_cache_to_reach_the_version() {
    let t = start().await;
    cache_loaded(&t.server).await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &configmap("first", &[]))
        .await
        .unwrap();
    // A version nobody has written yet: the list waits until a write gets there.
    let future = (rv_of(&first) + 1).to_string();
    let waiting = {
        let cms = cms.clone();
        let future = future.clone();
        tokio::spawn(async move {
            cms.list(
                &ListParams::default()
                    .at(&future)
                    .matching(kube::api::VersionMatch::NotOlderThan),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the list waits for the version");
    let second = cms
        .create(&PostParams::default(), &configmap("second", &[]))
        .await
        .unwrap();
    let list = waiting.await.unwrap().unwrap();
    let list_rv: i64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv >= rv_of(&second));
    assert_eq!(list.items.len(), 2);

    // A version far ahead is not reached in time: 504, as upstream.
    let far = (rv_of(&second) + 1000).to_string();
    let err = api_error(
        cms.list(
            &ListParams::default()
                .at(&far)
                .matching(kube::api::VersionMatch::NotOlderThan),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 504);
    assert!(
        err.message.contains("Too large resource version"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_watch_from_a_version_in_the_window_replays_what_followed() {
    let t = start().await;
    cache_loaded(&t.server).await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let created = cms
        .create(&PostParams::default(), &configmap("replay", &[]))
        .await
        .unwrap();
    let mut revisions = Vec::new();
    for i in 0..3 {
        let patch = json!({"data": {"key": format!("v{i}")}});
        let patched = cms
            .patch("replay", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        revisions.push(rv_of(&patched));
    }
    cms.delete("replay", &DeleteParams::default())
        .await
        .unwrap();
    let stream = cms
        .watch(
            &WatchParams::default().timeout(10),
            &rv_of(&created).to_string(),
        )
        .await
        .unwrap();
    futures::pin_mut!(stream);
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match stream.try_next().await.unwrap().expect("watch ended early") {
            WatchEvent::Modified(c) => {
                seen.push(("MODIFIED", rv_of(&c), c.data.unwrap()["key"].clone()))
            }
            WatchEvent::Deleted(c) => {
                seen.push(("DELETED", rv_of(&c), c.data.unwrap()["key"].clone()))
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(
        seen[..3],
        [
            ("MODIFIED", revisions[0], "v0".to_owned()),
            ("MODIFIED", revisions[1], "v1".to_owned()),
            ("MODIFIED", revisions[2], "v2".to_owned()),
        ]
    );
    assert_eq!(seen[3].0, "DELETED");
    assert!(
        seen[3].1 > revisions[2],
        "a deletion carries its own revision"
    );
}

#[tokio::test]
async fn a_watch_from_a_version_that_left_the_window_is_gone() {
    let (server, _dir) = start_with(WatchCacheConfig {
        min_events: 5,
        max_events: 5,
        ..WatchCacheConfig::default()
    })
    .await;
    cache_loaded(&server).await;
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let created = cms
        .create(&PostParams::default(), &configmap("busy", &[]))
        .await
        .unwrap();
    for i in 0..10 {
        let patch = json!({"data": {"key": format!("v{i}")}});
        cms.patch("busy", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    let latest = cms.get("busy").await.unwrap();
    let stream = cms
        .watch(&WatchParams::default(), &rv_of(&created).to_string())
        .await
        .unwrap();
    futures::pin_mut!(stream);
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert!(
                e.message.starts_with("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
    // A version still in the window replays.
    let recent = rv_of(&latest) - 2;
    let stream = cms
        .watch(&WatchParams::default().timeout(5), &recent.to_string())
        .await
        .unwrap();
    futures::pin_mut!(stream);
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Modified(c) => assert!(rv_of(&c) > recent),
        other => panic!("expected a replayed event, got {other:?}"),
    }
}

#[tokio::test]
async fn pages_stay_one_snapshot_while_writes_go_on() {
    let t = start().await;
    cache_loaded(&t.server).await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    for i in 0..30 {
        cms.create(
            &PostParams::default(),
            &configmap(&format!("p-{i:02}"), &[]),
        )
        .await
        .unwrap();
    }
    let first = cms.list(&ListParams::default().limit(7)).await.unwrap();
    let snapshot = first.metadata.resource_version.clone().unwrap();
    assert_eq!(first.metadata.remaining_item_count, Some(23));
    let mut names: Vec<String> = first
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    let mut token = first.metadata.continue_.clone();
    let mut round = 0;
    while let Some(t2) = token.filter(|t| !t.is_empty()) {
        // Writes between pages: new objects, deletions and changes of listed ones.
        cms.create(
            &PostParams::default(),
            &configmap(&format!("new-{round}"), &[]),
        )
        .await
        .unwrap();
        cms.delete(&format!("p-{:02}", 29 - round), &DeleteParams::default())
            .await
            .unwrap();
        // A change to an object of a page still to come, and one to an object already
        // listed that is then deleted and made again.
        cms.patch(
            &format!("p-{:02}", 14 + round),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"changed": "yes"}}})),
        )
        .await
        .unwrap();
        let again = format!("p-{round:02}");
        cms.delete(&again, &DeleteParams::default()).await.unwrap();
        cms.create(
            &PostParams::default(),
            &configmap(&again, &[("changed", "yes")]),
        )
        .await
        .unwrap();
        let page = cms
            .list(&ListParams::default().limit(7).continue_token(&t2))
            .await
            .unwrap();
        assert_eq!(
            page.metadata.resource_version.as_deref(),
            Some(snapshot.as_str())
        );
        let listed = names.len() + page.items.len();
        let remaining = page.metadata.remaining_item_count.unwrap_or(0);
        assert_eq!(
            listed as i64 + remaining,
            30,
            "remainingItemCount of the snapshot"
        );
        for item in &page.items {
            assert!(
                !(item.metadata.labels.as_ref()).is_some_and(|l| l.contains_key("changed")),
                "{:?} as it was at the snapshot",
                item.metadata.name
            );
        }
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        token = page.metadata.continue_;
        round += 1;
    }
    let want: Vec<String> = (0..30).map(|i| format!("p-{i:02}")).collect();
    assert_eq!(
        names, want,
        "every page comes from the first page's snapshot"
    );

    // Without writes in between, a continue is served and still complete.
    let first = cms.list(&ListParams::default().limit(10)).await.unwrap();
    let second = cms
        .list(
            &ListParams::default()
                .limit(100)
                .continue_token(first.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    let all = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(first.items.len() + second.items.len(), all.items.len());
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
}

#[tokio::test]
async fn selectors_filter_lists_and_watches_from_the_cache() {
    let t = start().await;
    cache_loaded(&t.server).await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web")] {
        cms.create(&PostParams::default(), &configmap(name, &[("tier", tier)]))
            .await
            .unwrap();
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| -> BTreeSet<String> {
        list.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect()
    };
    let web = cms
        .list(&ListParams::default().labels("tier=web"))
        .await
        .unwrap();
    assert_eq!(names(web), BTreeSet::from(["a".into(), "c".into()]));
    let not_web = cms
        .list(&ListParams::default().labels("tier notin (web)"))
        .await
        .unwrap();
    assert_eq!(names(not_web), BTreeSet::from(["b".into()]));
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(names(by_name), BTreeSet::from(["b".into()]));
    let limited = cms
        .list(&ListParams::default().labels("tier=web").limit(1))
        .await
        .unwrap();
    assert_eq!(limited.items.len(), 1);
    assert!(limited.metadata.continue_.is_some());

    // A filtered watch: b moving into the selection is ADDED, a moving out is DELETED.
    let stream = cms
        .watch(&WatchParams::default().labels("tier=web").timeout(10), &rv)
        .await
        .unwrap();
    futures::pin_mut!(stream);
    let to_web = json!({"metadata": {"labels": {"tier": "web"}}});
    cms.patch("b", &PatchParams::default(), &Patch::Merge(&to_web))
        .await
        .unwrap();
    let to_db = json!({"metadata": {"labels": {"tier": "db"}}});
    cms.patch("a", &PatchParams::default(), &Patch::Merge(&to_db))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match stream.try_next().await.unwrap().expect("watch ended early") {
            WatchEvent::Added(c) => seen.push(("ADDED", c.metadata.name.unwrap())),
            WatchEvent::Modified(c) => seen.push(("MODIFIED", c.metadata.name.unwrap())),
            WatchEvent::Deleted(c) => seen.push(("DELETED", c.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            ("ADDED", "a".to_owned()),
            ("ADDED", "c".to_owned()),
            ("ADDED", "b".to_owned()),
            ("DELETED", "a".to_owned()),
        ]
    );

    // Per-kind field selectors read the object.
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    for (name, node) in [("p1", "n1"), ("p2", "n2")] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let on_n2 = pods
        .list(&ListParams::default().fields("spec.nodeName=n2"))
        .await
        .unwrap();
    let on_n2: Vec<String> = on_n2
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(on_n2, ["p2"]);
}

#[tokio::test]
async fn a_watch_with_initial_events_ends_them_with_a_bookmark_from_the_cache() {
    let t = start().await;
    cache_loaded(&t.server).await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    for name in ["x", "y"] {
        cms.create(&PostParams::default(), &configmap(name, &[]))
            .await
            .unwrap();
    }
    let stream = cms
        .watch(&WatchParams::streaming_lists().timeout(10), "")
        .await
        .unwrap();
    futures::pin_mut!(stream);
    let mut added = BTreeSet::new();
    loop {
        match stream.try_next().await.unwrap().expect("watch ended early") {
            WatchEvent::Added(c) => {
                added.insert(c.metadata.name.unwrap());
            }
            WatchEvent::Bookmark(b) => {
                assert_eq!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true")
                );
                break;
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(added, BTreeSet::from(["x".into(), "y".into()]));
}

#[tokio::test]
async fn events_are_counted_but_read_and_watched_from_the_store() {
    use k8s_openapi::api::core::v1::Event;
    let t = start().await;
    cache_loaded(&t.server).await;
    let events: Api<Event> = Api::namespaced(t.client.clone(), "default");
    let event = |name: &str| -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web"},
            "reason": "Started", "message": "Started container", "type": "Normal",
        }))
        .unwrap()
    };
    let first = events
        .create(&PostParams::default(), &event("one"))
        .await
        .unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    let mut stream = events
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    for name in ["two", "three"] {
        events
            .create(&PostParams::default(), &event(name))
            .await
            .unwrap();
    }
    // The watch follows the store: what came after its version, in order.
    for name in ["two", "three"] {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap();
        match next {
            Some(WatchEvent::Added(e)) => assert_eq!(e.metadata.name.as_deref(), Some(name)),
            other => panic!("unexpected {other:?}"),
        }
    }
    events
        .delete("one", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let count = "apiserver_storage_objects{resource=\"events\"} 2\n";
    let mut text = String::new();
    for _ in 0..100 {
        let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
        text = t.client.request_text(request).await.unwrap();
        if text.contains(count) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no {count:?} in the metrics:\n{text}");
}
