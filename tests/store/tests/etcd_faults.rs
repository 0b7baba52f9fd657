//! The etcd backend when etcd is not there: clear `Unavailable` errors, and recovery, for both
//! requests and watches, once etcd is back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use rkube_store::{Error, EtcdConfig, EtcdStore, Store, WatchEvent, WatchOptions};
use rkube_store_tests::{EtcdServer, free_port, suite::next_change};

fn config(endpoint: String) -> EtcdConfig {
    EtcdConfig {
        request_timeout: Duration::from_secs(1),
        ..EtcdConfig::new(vec![endpoint])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_is_unavailable() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let err = EtcdStore::connect(config(endpoint))
        .await
        .err()
        .expect("nothing listens there");
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_watches_recover_when_etcd_returns() {
    let mut etcd = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .unwrap();
    let store = EtcdStore::connect(config(etcd.endpoint())).await.unwrap();
    let before = store
        .create("/outage/before", b"1".to_vec(), None)
        .await
        .unwrap();
    let mut watch = store
        .watch("/outage/", WatchOptions::from_revision(before))
        .await
        .unwrap();
    assert_eq!(next_change(&mut watch).await.revision(), before);

    etcd.kill();
    let err = store
        .create("/outage/during", b"2".to_vec(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    let err = store.get("/outage/before", None).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");

    let mut etcd = tokio::task::spawn_blocking(move || {
        etcd.restart();
        etcd
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let after = loop {
        match store.create("/outage/after", b"3".to_vec(), None).await {
            Ok(rev) => break rev,
            Err(Error::Unavailable { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("etcd did not come back: {err}"),
        }
    };
    assert_eq!(
        &store
            .get("/outage/before", None)
            .await
            .unwrap()
            .unwrap()
            .value[..],
        b"1"
    );

    // The watch resumed where it was: the next change it reports is the one after the outage.
    let event = next_change(&mut watch).await;
    assert_eq!(
        (event.revision(), event.key()),
        (after, Some("/outage/after"))
    );
    assert!(matches!(event, WatchEvent::Put { .. }));
    etcd.kill();
    drop(watch.next());
}
