//! The Job controller against the real API server, in process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod workload_support;

use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rkube_apiserver_tests::start;
use rkube_controllers::job::JobController;
use serde_json::{Value, json};
use workload_support::{events, eventually, mark_finished, pods, spawn};

async fn create_job(client: &kube::Client, spec: Value) -> Api<Job> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let mut spec = spec;
    spec["template"] = json!({"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox"}]
    }});
    let job = serde_json::from_value(json!({"metadata": {"name": "pi"}, "spec": spec})).unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    jobs
}

/// The live (not finished, not deleting) pods, once there are `n` of them.
async fn active_pods(client: &kube::Client, n: usize) -> Vec<Pod> {
    eventually(&format!("{n} active pods"), 10, || {
        let client = client.clone();
        async move {
            let live: Vec<Pod> = pods(&client)
                .await
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| {
                    !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    )
                })
                .collect();
            (live.len() == n).then_some(live)
        }
    })
    .await
}

async fn status_when(jobs: &Api<Job>, what: &str, check: impl Fn(&JobStatus) -> bool) -> JobStatus {
    eventually(what, 15, || {
        let jobs = jobs.clone();
        let check = &check;
        async move {
            let status = jobs.get("pi").await.unwrap().status?;
            check(&status).then_some(status)
        }
    })
    .await
}

fn condition(status: &JobStatus, type_: &str) -> Option<(String, String)> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap()
}

#[tokio::test]
async fn a_job_runs_pods_in_parallel_until_enough_succeed() {
    let t = start().await;
    let _controller = spawn(JobController::new(t.client.clone()).run());
    let jobs = create_job(&t.client, json!({"completions": 3, "parallelism": 2})).await;
    let uid = jobs.get("pi").await.unwrap().metadata.uid.unwrap();

    let first = active_pods(&t.client, 2).await;
    for pod in &first {
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
        assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid);
        assert!(name(pod).starts_with("pi-"));
        assert_eq!(
            pod.metadata.finalizers.as_deref(),
            Some(&["batch.kubernetes.io/job-tracking".to_owned()][..])
        );
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            ("Job", Some(true), Some(true))
        );
    }
    let status = status_when(&jobs, "started", |s| s.active == Some(2)).await;
    assert!(status.start_time.is_some());

    for pod in &first {
        mark_finished(&t.client, &name(pod), "Succeeded", 0).await;
    }
    let last = active_pods(&t.client, 1).await;
    status_when(&jobs, "two counted", |s| s.succeeded == Some(2)).await;
    mark_finished(&t.client, &name(&last[0]), "Succeeded", 0).await;
    let status = status_when(&jobs, "complete", |s| condition(s, "Complete").is_some()).await;
    assert_eq!(status.succeeded, Some(3));
    assert_eq!(status.failed, Some(0));
    assert_eq!(status.active, Some(0));
    assert!(status.completion_time.is_some());
    assert_eq!(
        condition(&status, "SuccessCriteriaMet").unwrap().0,
        "CompletionsReached"
    );
    // Every pod was counted and let go.
    for pod in pods(&t.client).await {
        assert!(pod.metadata.finalizers.unwrap_or_default().is_empty());
    }
    let events = events(&t.client).await;
    assert!(events.contains(&("Completed".to_owned(), "Job completed".to_owned())));
    assert!(events.contains(&(
        "SuccessfulCreate".to_owned(),
        format!("Created pod: {}", name(&last[0]))
    )));
}

#[tokio::test]
async fn backoff_limit_zero_fails_the_job_at_the_first_failure() {
    let t = start().await;
    let _controller = spawn(JobController::new(t.client.clone()).run());
    let jobs = create_job(&t.client, json!({"backoffLimit": 0})).await;
    let pod = active_pods(&t.client, 1).await.remove(0);
    mark_finished(&t.client, &name(&pod), "Failed", 1).await;
    let status = status_when(&jobs, "failed", |s| condition(s, "Failed").is_some()).await;
    assert_eq!(status.failed, Some(1));
    assert_eq!(
        condition(&status, "Failed").unwrap(),
        (
            "BackoffLimitExceeded".to_owned(),
            "Job has reached the specified backoff limit".to_owned()
        )
    );
    assert!(condition(&status, "FailureTarget").is_some());
    assert!(
        events(&t.client)
            .await
            .iter()
            .any(|(r, _)| r == "BackoffLimitExceeded")
    );
}

#[tokio::test]
async fn a_failed_pod_is_replaced_only_after_the_backoff() {
    let t = start().await;
    let _controller = spawn(JobController::new(t.client.clone()).run());
    let jobs = create_job(&t.client, json!({"backoffLimit": 2})).await;
    let pod = active_pods(&t.client, 1).await.remove(0);
    // finishedAt has whole seconds: the backoff ends at least 9 s after this instant.
    let failed_at = tokio::time::Instant::now();
    mark_finished(&t.client, &name(&pod), "Failed", 1).await;
    status_when(&jobs, "one failure counted", |s| s.failed == Some(1)).await;
    // No replacement during the first 10 s backoff...
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(pods(&t.client).await.len(), 1);
    // ...then one.
    active_pods(&t.client, 1).await;
    assert!(failed_at.elapsed() >= Duration::from_secs(9));
}

#[tokio::test]
async fn indexed_pods_carry_their_index_and_each_index_completes_once() {
    let t = start().await;
    let _controller = spawn(JobController::new(t.client.clone()).run());
    let jobs = create_job(
        &t.client,
        json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}),
    )
    .await;
    let mut by_index = std::collections::BTreeMap::new();
    for pod in active_pods(&t.client, 3).await {
        let index =
            pod.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"]
                .clone();
        assert_eq!(
            pod.metadata.labels.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"],
            index
        );
        assert!(name(&pod).starts_with(&format!("pi-{index}-")));
        let spec = pod.spec.clone().unwrap();
        assert_eq!(spec.hostname, Some(format!("pi-{index}")));
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, "JOB_COMPLETION_INDEX");
        assert_eq!(
            env.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        by_index.insert(index, name(&pod));
    }
    mark_finished(&t.client, &by_index["0"], "Succeeded", 0).await;
    mark_finished(&t.client, &by_index["2"], "Succeeded", 0).await;
    let status = status_when(&jobs, "two indexes", |s| s.succeeded == Some(2)).await;
    assert_eq!(status.completed_indexes.as_deref(), Some("0,2"));
    // A failed index is retried under the same index.
    mark_finished(&t.client, &by_index["1"], "Failed", 1).await;
    status_when(&jobs, "failure counted", |s| s.failed == Some(1)).await;
    // (The replacement waits out the 10 s backoff.)
    let retry = eventually("index 1 retried", 15, || {
        let client = t.client.clone();
        async move {
            pods(&client).await.into_iter().find(|p| {
                p.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"]
                    == "1"
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Failed")
            })
        }
    })
    .await;
    mark_finished(&t.client, &name(&retry), "Succeeded", 0).await;
    let status = status_when(&jobs, "complete", |s| condition(s, "Complete").is_some()).await;
    assert_eq!(status.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(status.succeeded, Some(3));
}

#[tokio::test]
async fn pod_failure_policy_ignores_or_fails_the_job_by_exit_code() {
    let t = start().await;
    let _controller = spawn(JobController::new(t.client.clone()).run());
    let jobs = create_job(
        &t.client,
        json!({"podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
        ]}}),
    )
    .await;
    let pod = active_pods(&t.client, 1).await.remove(0);
    mark_finished(&t.client, &name(&pod), "Failed", 3).await;
    // Ignored: not counted, and replaced at once (no failure, so no backoff).
    let next = eventually("a replacement", 5, || {
        let client = t.client.clone();
        let first = name(&pod);
        async move { pods(&client).await.into_iter().find(|p| name(p) != first) }
    })
    .await;
    assert_eq!(
        jobs.get("pi")
            .await
            .unwrap()
            .status
            .unwrap()
            .failed
            .unwrap_or(0),
        0
    );
    mark_finished(&t.client, &name(&next), "Failed", 42).await;
    let status = status_when(&jobs, "failed", |s| condition(s, "Failed").is_some()).await;
    let (reason, message) = condition(&status, "Failed").unwrap();
    assert_eq!(reason, "PodFailurePolicy");
    assert_eq!(
        message,
        format!(
            "Container main for pod default/{} failed with exit code 42 matching FailJob rule at index 0",
            name(&next)
        )
    );
}

#[tokio::test]
async fn active_deadline_fails_a_running_job_and_removes_its_pods() {
    let t = start().await;
    let _controller = spawn(JobController::new(t.client.clone()).run());
    let jobs = create_job(
        &t.client,
        json!({"activeDeadlineSeconds": 1, "parallelism": 2, "completions": 4}),
    )
    .await;
    active_pods(&t.client, 2).await;
    let status = status_when(&jobs, "deadline", |s| condition(s, "Failed").is_some()).await;
    assert_eq!(
        condition(&status, "Failed").unwrap(),
        (
            "DeadlineExceeded".to_owned(),
            "Job was active longer than specified deadline".to_owned()
        )
    );
    assert_eq!(status.active, Some(0));
    assert!(pods(&t.client).await.is_empty());
}

#[tokio::test]
async fn a_suspended_job_runs_nothing_until_resumed() {
    let t = start().await;
    let _controller = spawn(JobController::new(t.client.clone()).run());
    let jobs = create_job(&t.client, json!({"suspend": true})).await;
    let status = status_when(&jobs, "suspended", |s| condition(s, "Suspended").is_some()).await;
    assert_eq!(condition(&status, "Suspended").unwrap().0, "JobSuspended");
    assert!(pods(&t.client).await.is_empty());
    jobs.patch(
        "pi",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .unwrap();
    active_pods(&t.client, 1).await;
    let status = status_when(&jobs, "resumed", |s| condition(s, "Suspended").is_none()).await;
    let resumed = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Suspended")
        .unwrap();
    assert_eq!(
        (resumed.status.as_str(), resumed.reason.as_deref()),
        ("False", Some("JobResumed"))
    );
    // Suspending again removes the running pod.
    jobs.patch(
        "pi",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": true}})),
    )
    .await
    .unwrap();
    eventually("pods gone", 10, || {
        let client = t.client.clone();
        async move { pods(&client).await.is_empty().then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_finished_job_with_a_ttl_is_deleted() {
    let t = start().await;
    let _controller = spawn(JobController::new(t.client.clone()).run());
    let jobs = create_job(&t.client, json!({"ttlSecondsAfterFinished": 1})).await;
    let pod = active_pods(&t.client, 1).await.remove(0);
    mark_finished(&t.client, &name(&pod), "Succeeded", 0).await;
    status_when(&jobs, "complete", |s| condition(s, "Complete").is_some()).await;
    eventually("the job deleted", 10, || {
        let jobs = jobs.clone();
        async move {
            let job = jobs.get_opt("pi").await.unwrap();
            job.is_none_or(|j| j.metadata.deletion_timestamp.is_some())
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn an_index_that_fails_past_its_own_backoff_limit_fails_alone() {
    let t = start().await;
    let _controller = spawn(JobController::new(t.client.clone()).run());
    let jobs = create_job(
        &t.client,
        json!({"completions": 2, "parallelism": 2, "completionMode": "Indexed", "backoffLimitPerIndex": 0}),
    )
    .await;
    let started = active_pods(&t.client, 2).await;
    let index = |p: &Pod| {
        p.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"].clone()
    };
    for pod in &started {
        assert_eq!(
            pod.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-index-failure-count"],
            "0"
        );
        if index(pod) == "0" {
            mark_finished(&t.client, &name(pod), "Failed", 1).await;
        } else {
            mark_finished(&t.client, &name(pod), "Succeeded", 0).await;
        }
    }
    let status = status_when(&jobs, "failed", |s| condition(s, "Failed").is_some()).await;
    assert_eq!(status.failed_indexes.as_deref(), Some("0"));
    assert_eq!(status.completed_indexes.as_deref(), Some("1"));
    assert_eq!(
        condition(&status, "Failed").unwrap(),
        (
            "FailedIndexes".to_owned(),
            "Job has failed indexes".to_owned()
        )
    );
    // The failed index was not retried.
    assert_eq!(pods(&t.client).await.len(), 2);
}

#[tokio::test]
async fn pods_of_a_deleted_job_lose_the_tracking_finalizer() {
    let t = start().await;
    let _controller = spawn(JobController::new(t.client.clone()).run());
    let jobs = create_job(&t.client, json!({})).await;
    let pod = active_pods(&t.client, 1).await.remove(0);
    jobs.delete("pi", &kube::api::DeleteParams::background())
        .await
        .unwrap();
    // The garbage collector is not running here: do what it would, delete the pod.
    let pod_api: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    pod_api
        .delete(&name(&pod), &Default::default())
        .await
        .unwrap();
    eventually("the pod gone", 15, || {
        let pod_api = pod_api.clone();
        let pod_name = name(&pod);
        async move {
            pod_api
                .get_opt(&pod_name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn a_job_deleted_in_the_foreground_lets_its_pods_go() {
    let t = start().await;
    let _controller = spawn(JobController::new(t.client.clone()).run());
    let jobs = create_job(&t.client, json!({})).await;
    let pod = active_pods(&t.client, 1).await.remove(0);
    jobs.delete("pi", &kube::api::DeleteParams::foreground())
        .await
        .unwrap();
    let pod_api: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    eventually("the finalizer removed", 10, || {
        let pod_api = pod_api.clone();
        let pod_name = name(&pod);
        async move {
            let pod = pod_api.get(&pod_name).await.unwrap();
            pod.metadata
                .finalizers
                .unwrap_or_default()
                .is_empty()
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn a_work_queue_job_starts_nothing_after_a_success_and_completes_when_all_finish() {
    let t = start().await;
    let _controller = spawn(JobController::new(t.client.clone()).run());
    let jobs = create_job(&t.client, json!({"parallelism": 2})).await;
    let started = active_pods(&t.client, 2).await;
    mark_finished(&t.client, &name(&started[0]), "Succeeded", 0).await;
    status_when(&jobs, "one success", |s| {
        s.succeeded == Some(1) && s.active == Some(1)
    })
    .await;
    // The other worker keeps running, and no new one starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        active_pods(&t.client, 1).await[0].metadata.name,
        started[1].metadata.name
    );
    assert!(condition(&jobs.get("pi").await.unwrap().status.unwrap(), "Complete").is_none());
    mark_finished(&t.client, &name(&started[1]), "Succeeded", 0).await;
    let status = status_when(&jobs, "complete", |s| condition(s, "Complete").is_some()).await;
    assert_eq!(status.succeeded, Some(2));
}
