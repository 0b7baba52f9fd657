//! The CronJob controller against the real API server, in process, on a clock the test moves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod workload_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rkube_apiserver_tests::start;
use rkube_controllers::cronjob::{CronJobController, job_name};
use serde_json::{Value, json};
use workload_support::{events, eventually, spawn};

/// A clock `offset` seconds ahead of the real one.
struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    fn new() -> Self {
        Self(Arc::new(AtomicI64::new(0)))
    }

    /// Moves the clock to `secs` past the first minute boundary at least `min_ahead` seconds
    /// after the real time.
    fn set_to_minute(&self, min_ahead: i64, secs: i64) -> Timestamp {
        let real = Timestamp::now().as_second();
        let boundary = (real + min_ahead).div_euclid(60) * 60 + 60;
        self.0.store(boundary + secs - real, Ordering::SeqCst);
        Timestamp::from_second(boundary).unwrap()
    }

    fn controller(&self, client: kube::Client) -> CronJobController {
        let offset = self.0.clone();
        CronJobController::with_clock(
            client,
            Arc::new(move || {
                Timestamp::now() + SignedDuration::from_secs(offset.load(Ordering::SeqCst))
            }),
        )
    }
}

async fn create(client: &kube::Client, spec: Value) -> Api<CronJob> {
    let api: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let mut spec = spec;
    spec["jobTemplate"] = json!({
        "metadata": {"labels": {"app": "hello"}},
        "spec": {"template": {"spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "hello", "image": "busybox"}]
        }}}
    });
    let cj = serde_json::from_value(json!({"metadata": {"name": "hello"}, "spec": spec})).unwrap();
    api.create(&PostParams::default(), &cj).await.unwrap();
    api
}

async fn job_names(client: &kube::Client) -> Vec<String> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let mut names: Vec<String> = jobs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .filter_map(|j| j.metadata.name)
        .collect();
    names.sort();
    names
}

async fn wait_for_jobs(client: &kube::Client, expected: Vec<String>) {
    let mut expected = expected;
    expected.sort();
    eventually(&format!("jobs {expected:?}"), 10, || {
        let client = client.clone();
        let expected = expected.clone();
        async move { (job_names(&client).await == expected).then_some(()) }
    })
    .await;
}

/// Marks a Job finished, as the Job controller would.
async fn finish(client: &kube::Client, name: &str, outcome: &str) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let now = Timestamp::now().to_string();
    let mut status = json!({"status": {"conditions": [{"type": outcome, "status": "True", "lastTransitionTime": now}]}});
    if outcome == "Complete" {
        status["status"]["completionTime"] = json!(now);
        status["status"]["startTime"] = json!(now);
        status["status"]["succeeded"] = json!(1);
        status["status"]["conditions"] = json!([
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
            {"type": "Complete", "status": "True", "lastTransitionTime": now},
        ]);
    } else {
        status["status"]["startTime"] = json!(now);
        status["status"]["failed"] = json!(1);
        status["status"]["conditions"] = json!([
            {"type": "FailureTarget", "status": "True", "lastTransitionTime": now},
            {"type": "Failed", "status": "True", "lastTransitionTime": now},
        ]);
    }
    jobs.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// Changes the CronJob (a label), which makes the controller look at it again.
async fn touch(api: &Api<CronJob>, n: u32) {
    let patch = json!({"metadata": {"labels": {"touched": n.to_string()}}});
    api.patch("hello", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_due_schedule_creates_its_job_and_sees_it_complete() {
    let t = start().await;
    let clock = FakeClock::new();
    let minute = clock.set_to_minute(120, 20);
    let _controller = spawn(clock.controller(t.client.clone()).run());
    let api = create(&t.client, json!({"schedule": "*/1 * * * *"})).await;

    let name = job_name("hello", minute);
    wait_for_jobs(&t.client, vec![name.clone()]).await;
    let jobs: Api<Job> = Api::namespaced(t.client.clone(), "default");
    let job = jobs.get(&name).await.unwrap();
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("CronJob", "hello", Some(true))
    );
    assert_eq!(job.metadata.labels.as_ref().unwrap()["app"], "hello");
    let local = minute
        .to_zoned(k8s_openapi::jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    assert_eq!(
        job.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        local
    );
    let status = eventually("active", 10, || {
        let api = api.clone();
        async move {
            api.get("hello")
                .await
                .unwrap()
                .status
                .filter(|s| s.active.is_some())
        }
    })
    .await;
    assert_eq!(status.last_schedule_time.unwrap().0, minute);
    assert!(
        events(&t.client)
            .await
            .contains(&("SuccessfulCreate".to_owned(), format!("Created job {name}")))
    );

    finish(&t.client, &name, "Complete").await;
    let status = eventually("seen complete", 10, || {
        let api = api.clone();
        async move {
            api.get("hello")
                .await
                .unwrap()
                .status
                .filter(|s| s.active.is_none() && s.last_successful_time.is_some())
        }
    })
    .await;
    assert!(status.last_schedule_time.is_some());
    assert!(events(&t.client).await.contains(&(
        "SawCompletedJob".to_owned(),
        format!("Saw completed job: {name}, status: Complete")
    )));
    // The same minute never runs twice.
    touch(&api, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(job_names(&t.client).await, [name]);
}

#[tokio::test]
async fn forbid_skips_a_run_while_one_is_active_and_replace_replaces_it() {
    let t = start().await;
    let clock = FakeClock::new();
    let first = clock.set_to_minute(120, 10);
    let _controller = spawn(clock.controller(t.client.clone()).run());
    let api = create(
        &t.client,
        json!({"schedule": "* * * * *", "concurrencyPolicy": "Forbid"}),
    )
    .await;
    wait_for_jobs(&t.client, vec![job_name("hello", first)]).await;

    // A minute later the first is still running: Forbid starts nothing.
    let second = clock.set_to_minute(180, 10);
    touch(&api, 1).await;
    eventually("JobAlreadyActive", 10, || {
        let client = t.client.clone();
        async move {
            events(&client)
                .await
                .into_iter()
                .find(|(r, _)| r == "JobAlreadyActive")
        }
    })
    .await;
    assert_eq!(job_names(&t.client).await, [job_name("hello", first)]);

    // Replace deletes the running Job and starts the due one.
    let patch = json!({"spec": {"concurrencyPolicy": "Replace"}});
    api.patch("hello", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for_jobs(&t.client, vec![job_name("hello", second)]).await;
    assert!(events(&t.client).await.contains(&(
        "SuccessfulDelete".to_owned(),
        format!("Deleted job {}", job_name("hello", first))
    )));
}

#[tokio::test]
async fn allow_runs_concurrently_and_history_limits_keep_the_newest_finished_jobs() {
    let t = start().await;
    let clock = FakeClock::new();
    let _controller = spawn(clock.controller(t.client.clone()).run());
    let minutes: Vec<Timestamp> = (0..4)
        .map(|i| clock.set_to_minute(120 + 60 * i, 5))
        .collect();
    clock.0.store(0, Ordering::SeqCst);
    let api = create(
        &t.client,
        json!({"schedule": "* * * * *", "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1}),
    )
    .await;
    let mut names = Vec::new();
    for (i, minute) in minutes.iter().enumerate() {
        clock.set_to_minute(120 + 60 * i64::try_from(i).unwrap(), 5);
        touch(&api, u32::try_from(i).unwrap()).await;
        names.push(job_name("hello", *minute));
        // Allow: the earlier ones are still running (the last two are left unfinished).
        let mut expected = names.clone();
        if i >= 2 {
            expected.retain(|n| n != &names[0]);
        }
        wait_for_jobs(&t.client, expected).await;
        if i < 2 {
            finish(&t.client, &names[i], "Complete").await;
        }
    }
    // Two succeeded, the limit is one: the older went; the newer and the two running stay.
    wait_for_jobs(&t.client, names[1..].to_vec()).await;
    eventually("two active", 10, || {
        let api = api.clone();
        async move {
            let active = api.get("hello").await.unwrap().status?.active?;
            (active.len() == 2).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn suspended_and_past_deadline_cron_jobs_start_nothing() {
    let t = start().await;
    let clock = FakeClock::new();
    clock.set_to_minute(120, 30);
    let _controller = spawn(clock.controller(t.client.clone()).run());
    // 30 s past the minute with a 10 s starting deadline: that start was missed.
    let api = create(
        &t.client,
        json!({"schedule": "* * * * *", "startingDeadlineSeconds": 10}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(job_names(&t.client).await.is_empty());
    // With a 40 s deadline it is still on time.
    let patch = json!({"spec": {"startingDeadlineSeconds": 40, "suspend": true}});
    api.patch("hello", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(job_names(&t.client).await.is_empty(), "suspended");
    let patch = json!({"spec": {"suspend": false}});
    api.patch("hello", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("a job", 10, || {
        let client = t.client.clone();
        async move { (job_names(&client).await.len() == 1).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_job_made_by_hand_from_a_cron_job_is_reported_not_adopted() {
    let t = start().await;
    let clock = FakeClock::new();
    let _controller = spawn(clock.controller(t.client.clone()).run());
    let api = create(&t.client, json!({"schedule": "0 0 1 1 *"})).await;
    let cj = api.get("hello").await.unwrap();
    // What `kubectl create job manual --from=cronjob/hello` sends.
    let jobs: Api<Job> = Api::namespaced(t.client.clone(), "default");
    let job = serde_json::from_value(json!({
        "metadata": {
            "name": "manual",
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "hello",
                                 "uid": cj.metadata.uid.unwrap(), "controller": true}]
        },
        "spec": cj.spec.unwrap().job_template.spec.unwrap(),
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    eventually("UnexpectedJob", 10, || {
        let client = t.client.clone();
        async move {
            events(&client).await.into_iter().find(|e| {
                e == &(
                    "UnexpectedJob".to_owned(),
                    "Saw a job that the controller did not create or forgot: manual".to_owned(),
                )
            })
        }
    })
    .await;
    let status = api.get("hello").await.unwrap().status.unwrap_or_default();
    assert!(status.active.is_none());
}
