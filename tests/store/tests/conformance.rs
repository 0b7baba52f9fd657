//! The conformance suite, run against every backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rkube_store_tests::{Backend, suite};

macro_rules! conformance {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            async fn open() -> Backend {
                Backend::$backend().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn revisions_strictly_increase_by_one_per_write() {
                let b = open().await;
                suite::revisions_strictly_increase_by_one_per_write(&*b.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn create_of_an_existing_key_fails() {
                let b = open().await;
                suite::create_of_an_existing_key_fails(&*b.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn update_with_a_stale_revision_is_a_conflict() {
                let b = open().await;
                suite::update_with_a_stale_revision_is_a_conflict(&*b.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn delete_preconditions_are_honoured() {
                let b = open().await;
                suite::delete_preconditions_are_honoured(&*b.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn reads_at_past_revisions_see_the_past() {
                let b = open().await;
                suite::reads_at_past_revisions_see_the_past(&*b.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn pagination_stays_consistent_under_concurrent_writes() {
                let b = open().await;
                suite::pagination_stays_consistent_under_concurrent_writes(b.store.clone()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn watch_from_an_old_revision_replays_history_in_order() {
                let b = open().await;
                suite::watch_from_an_old_revision_replays_history_in_order(&*b.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn many_watchers_see_every_event_exactly_once_in_order() {
                let b = open().await;
                suite::many_watchers_see_every_event_exactly_once_in_order(b.store.clone()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn compaction_makes_older_revisions_unavailable() {
                let b = open().await;
                suite::compaction_makes_older_revisions_unavailable(&*b.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn keys_with_an_expired_lease_are_deleted() {
                let b = open().await;
                suite::keys_with_an_expired_lease_are_deleted(&*b.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_compare_and_swap_increments_are_exact() {
                let b = open().await;
                suite::racing_compare_and_swap_increments_are_exact(b.store.clone()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_value_over_the_size_limit_is_rejected() {
                let b = open().await;
                suite::a_value_over_the_size_limit_is_rejected(&*b.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn an_idle_watch_sends_progress_notifications() {
                let b = open().await;
                suite::an_idle_watch_sends_progress_notifications(&*b.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn lists_are_ordered_and_bounded_by_the_prefix() {
                let b = open().await;
                suite::lists_are_ordered_and_bounded_by_the_prefix(&*b.store).await;
            }
        }
    };
}

conformance!(memory);
conformance!(sqlite);
conformance!(etcd);
