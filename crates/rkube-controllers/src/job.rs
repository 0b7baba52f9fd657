//! The Job controller: runs pods until enough succeed (`completions`, per index in Indexed
//! mode), at most `parallelism` at a time, replacing failed ones after an exponential backoff
//! until `backoffLimit`, `activeDeadlineSeconds` or a podFailurePolicy rule fails the Job.
//!
//! Every pod carries the `batch.kubernetes.io/job-tracking` finalizer, so a finished pod is
//! counted before it can disappear: its uid goes to `status.uncountedTerminatedPods` first,
//! then the finalizer is removed, then it moves into `succeeded` / `failed`. A finished Job
//! with `ttlSecondsAfterFinished` is deleted once that time has passed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::stream;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Config, applier, trigger_owners, trigger_self};
use kube::runtime::reflector::Store;
use serde_json::json;

use crate::events::{EventType, Recorder};
use crate::informer::{OwnerIndex, SharedInformers};
use crate::job_policy::{
    FailureAction, backoff_delay, format_indexes, match_failure_policy, parse_indexes,
};
use crate::workload_pods::{
    Error, Expectations, Result, controller_reference, drain, is_conflict, is_not_found,
    is_running_and_ready, is_terminal, is_terminating, owned_pods, phase, pod_from_template,
};

/// The finalizer that keeps a Job's pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// How often pods of deleted Jobs are looked for.
const ORPHAN_SWEEP_EVERY: Duration = Duration::from_secs(5);
/// The annotation counting an index's earlier failures, for `backoffLimitPerIndex`.
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// The annotation and label carrying an Indexed Job pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// Runs the Job controller.
#[derive(Clone)]
pub struct JobController {
    client: kube::Client,
    informers: SharedInformers,
    recorder: Recorder,
    expectations: Expectations,
}

struct Shared {
    controller: JobController,
    pods: Store<Pod>,
    pod_index: OwnerIndex<Pod>,
}

fn condition_true(status: &JobStatus, type_: &str) -> Option<JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
        .cloned()
}

/// Sets a condition, keeping its transition time when its status does not change.
fn set_condition(status: &mut JobStatus, type_: &str, value: &str, reason: &str, message: &str) {
    let now = Time(Timestamp::now());
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != value {
            c.last_transition_time = Some(now.clone());
        }
        c.status = value.to_owned();
        c.reason = Some(reason.to_owned());
        c.message = Some(message.to_owned());
        c.last_probe_time = Some(now);
        return;
    }
    conditions.push(JobCondition {
        type_: type_.to_owned(),
        status: value.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now),
    });
}

/// The completion index of an Indexed Job's pod.
fn index_of(pod: &Pod) -> Option<i32> {
    pod.annotations().get(COMPLETION_INDEX)?.parse().ok()
}

/// When the pod finished: its last container's finish time, or its deletion.
fn finished_at(pod: &Pod) -> Option<Timestamp> {
    let from_containers = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    from_containers.or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
}

fn seconds_until(when: Timestamp, now: Timestamp) -> Duration {
    let millis = when.as_millisecond() - now.as_millisecond();
    Duration::from_millis(u64::try_from(millis.max(0)).unwrap_or(0))
}

/// The earliest of two optional requeue delays.
fn sooner(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl JobController {
    /// A controller acting through `client`.
    pub fn new(client: impl Into<SharedInformers>) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            recorder: Recorder::new(informers.client().clone(), "job-controller"),
            client: informers.client().clone(),
            informers,
            expectations: Expectations::default(),
        }
    }

    /// Watches Jobs and their pods until dropped.
    pub async fn run(self) {
        let (jobs, job_events) = self.informers.touched::<Job>().await;
        let (pods, pod_events) = self.informers.touched::<Pod>().await;
        let queue = stream::select(
            trigger_self(job_events, ()),
            trigger_owners(pod_events, (), ()),
        );
        let sweeper = self.clone().release_orphans(jobs.clone(), pods.clone());
        let shared = Arc::new(Shared {
            pod_index: self.informers.owner_index::<Pod>().await,
            controller: self,
            pods,
        });
        let results = applier(
            |job: Arc<Job>, shared: Arc<Shared>| {
                Box::pin(async move {
                    shared
                        .controller
                        .reconcile(&job, &shared.pods, &shared.pod_index)
                        .await
                })
            },
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            shared,
            jobs,
            queue,
            Config::default(),
        );
        futures::join!(drain("job", results), sweeper);
    }

    /// Pods whose Job is gone keep the tracking finalizer forever unless someone removes it:
    /// every few seconds, those the caches show are checked against the API and let go.
    async fn release_orphans(self, jobs: Store<Job>, pods: Store<Pod>) {
        loop {
            tokio::time::sleep(ORPHAN_SWEEP_EVERY).await;
            if jobs.wait_until_ready().await.is_err() || pods.wait_until_ready().await.is_err() {
                return;
            }
            let live: HashSet<String> = jobs
                .state()
                .iter()
                .filter_map(|j| j.metadata.uid.clone())
                .collect();
            for pod in pods.state().iter().filter(|p| has_finalizer(p)) {
                let Some(owner) = pod
                    .owner_references()
                    .iter()
                    .find(|o| o.controller == Some(true) && o.kind == "Job")
                    .cloned()
                else {
                    continue;
                };
                if live.contains(&owner.uid) {
                    continue;
                }
                let api: Api<Job> =
                    Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
                let gone = match api.get_opt(&owner.name).await {
                    Ok(found) => {
                        found.is_none_or(|j| j.metadata.uid.as_deref() != Some(&owner.uid))
                    }
                    Err(_) => false,
                };
                if gone && let Err(err) = self.remove_finalizer(pod).await {
                    tracing::debug!(error = %err, "releasing an orphaned job pod");
                }
            }
        }
    }

    async fn reconcile(
        &self,
        cached: &Job,
        cache: &Store<Pod>,
        index: &OwnerIndex<Pod>,
    ) -> Result<Action> {
        cache
            .wait_until_ready()
            .await
            .map_err(|_| Error::CacheGone)?;
        // The status counts what was done with pods; read it fresh, as a cached Job may lag
        // behind this controller's own last status write.
        let api: Api<Job> =
            Api::namespaced(self.client.clone(), &cached.namespace().unwrap_or_default());
        let Some(job) = api.get_opt(&cached.name_any()).await? else {
            return Ok(Action::await_change());
        };
        let job = &job;
        if job.metadata.deletion_timestamp.is_some() {
            // A Job being deleted counts nothing more: its pods are let go, so that a
            // foreground deletion waiting for them can finish.
            for pod in owned_pods(index, job).iter().filter(|p| has_finalizer(p)) {
                self.remove_finalizer(pod).await?;
            }
            return Ok(Action::await_change());
        }
        let Some(spec) = job.spec.clone() else {
            return Ok(Action::await_change());
        };
        // A Job another controller manages (`spec.managedBy`) is left to it.
        if spec
            .managed_by
            .as_deref()
            .is_some_and(|m| m != "kubernetes.io/job-controller")
        {
            return Ok(Action::await_change());
        }
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let pods = owned_pods(index, job);
        if !self.expectations.satisfied(&uid, &pods) {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        let now = Timestamp::now();
        let old = job.status.clone().unwrap_or_default();
        let mut status = old.clone();
        let finished =
            condition_true(&status, "Complete").or_else(|| condition_true(&status, "Failed"));
        if let Some(done) = finished {
            for pod in pods.iter().filter(|p| has_finalizer(p)) {
                self.remove_finalizer(pod).await?;
            }
            return self.expire(job, &status, &done, now).await;
        }
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        let completions = spec.completions;
        let suspended = spec.suspend == Some(true);

        // 1. Count finished pods: record them as uncounted, then drop their finalizers.
        let mut uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
        let mut uncounted_ok: BTreeSet<String> = uncounted
            .succeeded
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut uncounted_failed: BTreeSet<String> = uncounted
            .failed
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut completed = parse_indexes(status.completed_indexes.as_deref().unwrap_or(""));
        let mut failed_indexes = parse_indexes(status.failed_indexes.as_deref().unwrap_or(""));
        let mut failure: Option<(String, String)> = None;
        let mut ignored: Vec<&Arc<Pod>> = Vec::new();
        for pod in pods.iter().filter(|p| has_finalizer(p)) {
            let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
            if uncounted_ok.contains(&pod_uid) || uncounted_failed.contains(&pod_uid) {
                continue;
            }
            if phase(pod) == "Succeeded" {
                uncounted_ok.insert(pod_uid);
                if let Some(i) = index_of(pod) {
                    completed.insert(i);
                }
            } else if phase(pod) == "Failed" || is_terminating(pod) {
                let rule = spec
                    .pod_failure_policy
                    .as_ref()
                    .and_then(|policy| match_failure_policy(policy, pod));
                match rule {
                    Some((FailureAction::Ignore, _)) => {
                        ignored.push(pod);
                        continue;
                    }
                    Some((FailureAction::FailJob, message)) => {
                        failure.get_or_insert(("PodFailurePolicy".to_owned(), message));
                    }
                    Some((FailureAction::FailIndex, _)) => {
                        if let Some(i) = index_of(pod) {
                            failed_indexes.insert(i);
                        }
                    }
                    _ => {}
                }
                uncounted_failed.insert(pod_uid);
            }
        }
        let index_failures = index_failures(&pods, spec.pod_failure_policy.as_ref());
        if let Some(limit) = spec.backoff_limit_per_index {
            for (index, failures) in &index_failures {
                if *failures > limit {
                    failed_indexes.insert(*index);
                }
            }
        }
        for pod in ignored {
            self.remove_finalizer(pod).await?;
        }
        let newly_uncounted = uncounted_ok.len() + uncounted_failed.len()
            != uncounted.succeeded.as_ref().map_or(0, Vec::len)
                + uncounted.failed.as_ref().map_or(0, Vec::len);
        uncounted.succeeded = Some(uncounted_ok.iter().cloned().collect());
        uncounted.failed = Some(uncounted_failed.iter().cloned().collect());
        status.uncounted_terminated_pods = Some(uncounted);
        if indexed {
            status.completed_indexes = Some(format_indexes(&completed));
            if spec.backoff_limit_per_index.is_some() {
                status.failed_indexes = Some(format_indexes(&failed_indexes));
            }
        }
        if let Some((reason, message)) = &failure {
            set_condition(&mut status, "FailureTarget", "True", reason, message);
        }
        if newly_uncounted || failure.is_some() {
            status = self.write_status(job, status).await?;
        }
        let mut succeeded = status.succeeded.unwrap_or(0);
        let mut failed = status.failed.unwrap_or(0);
        for pod in &pods {
            let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
            let ok = uncounted_ok.contains(&pod_uid);
            if (ok || uncounted_failed.contains(&pod_uid)) && has_finalizer(pod) {
                self.remove_finalizer(pod).await?;
            }
        }
        // Every uncounted pod has lost its finalizer (or is gone): count it.
        if !indexed {
            succeeded += i32::try_from(uncounted_ok.len()).unwrap_or(0);
        } else {
            succeeded = i32::try_from(completed.len()).unwrap_or(i32::MAX);
        }
        failed += i32::try_from(uncounted_failed.len()).unwrap_or(0);
        status.succeeded = Some(succeeded);
        status.failed = Some(failed);
        // Empty lists, not absent ones: the status is written as a merge patch.
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            failed: Some(Vec::new()),
            succeeded: Some(Vec::new()),
        });

        // 2. The pods still running.
        let counted: HashSet<String> = uncounted_ok.union(&uncounted_failed).cloned().collect();
        let active: Vec<&Arc<Pod>> = pods
            .iter()
            .filter(|p| !is_terminal(p) && !is_terminating(p))
            .filter(|p| !counted.contains(p.metadata.uid.as_deref().unwrap_or("")))
            .collect();
        let terminating = pods
            .iter()
            .filter(|p| is_terminating(p) && !is_terminal(p))
            .count();

        // 3. Has the Job succeeded or failed?
        let done_ok = match (indexed, completions) {
            (true, Some(c)) => (0..c).all(|i| completed.contains(&i)),
            (false, Some(c)) => succeeded >= c,
            (_, None) => succeeded > 0 && active.is_empty(),
        };
        let mut requeue: Option<Duration> = None;
        if let Some(start) = status.start_time.as_ref().map(|t| t.0)
            && let Some(deadline) = spec.active_deadline_seconds
            && !suspended
            && condition_true(&status, "FailureTarget").is_none()
            && !done_ok
        {
            let ends = start
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(deadline))
                .unwrap_or(start);
            if now >= ends {
                set_condition(
                    &mut status,
                    "FailureTarget",
                    "True",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                );
            } else {
                requeue = sooner(requeue, Some(seconds_until(ends, now)));
            }
        }
        let limit = spec.backoff_limit.unwrap_or(6);
        if condition_true(&status, "FailureTarget").is_none() && !done_ok {
            if failed > limit {
                set_condition(
                    &mut status,
                    "FailureTarget",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                );
            } else if let Some(max) = spec.max_failed_indexes
                && i32::try_from(failed_indexes.len()).unwrap_or(i32::MAX) > max
            {
                set_condition(
                    &mut status,
                    "FailureTarget",
                    "True",
                    "MaxFailedIndexesExceeded",
                    "Job has exceeded the specified maximal number of failed indexes",
                );
            } else if indexed
                && !failed_indexes.is_empty()
                && let Some(c) = completions
                && (0..c).all(|i| completed.contains(&i) || failed_indexes.contains(&i))
            {
                set_condition(
                    &mut status,
                    "FailureTarget",
                    "True",
                    "FailedIndexes",
                    "Job has failed indexes",
                );
            }
        }
        if let Some(target) = condition_true(&status, "FailureTarget") {
            for pod in &active {
                self.delete_pod(job, pod).await?;
            }
            if active.is_empty() && terminating == 0 {
                let reason = target.reason.clone().unwrap_or_default();
                let message = target.message.clone().unwrap_or_default();
                set_condition(&mut status, "Failed", "True", &reason, &message);
                self.recorder
                    .publish(job, EventType::Warning, &reason, &message)
                    .await;
            }
            return self
                .finish_status(job, status, &active, terminating, requeue)
                .await;
        }
        if done_ok {
            set_condition(
                &mut status,
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            );
            for pod in &active {
                self.delete_pod(job, pod).await?;
            }
            if active.is_empty() && terminating == 0 {
                set_condition(
                    &mut status,
                    "Complete",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                );
                status.completion_time = Some(Time(now));
                self.recorder
                    .publish(job, EventType::Normal, "Completed", "Job completed")
                    .await;
            }
            return self
                .finish_status(job, status, &active, terminating, requeue)
                .await;
        }

        // 4. Suspend and resume.
        let was_suspended = condition_true(&status, "Suspended").is_some();
        if suspended {
            for pod in &active {
                self.delete_pod(job, pod).await?;
            }
            if !was_suspended {
                set_condition(
                    &mut status,
                    "Suspended",
                    "True",
                    "JobSuspended",
                    "Job suspended",
                );
                self.recorder
                    .publish(job, EventType::Normal, "Suspended", "Job suspended")
                    .await;
            }
            return self
                .finish_status(job, status, &[], terminating, None)
                .await;
        }
        if was_suspended {
            set_condition(
                &mut status,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
            );
            status.start_time = Some(Time(now));
            self.recorder
                .publish(job, EventType::Normal, "Resumed", "Job resumed")
                .await;
        }
        if status.start_time.is_none() {
            status.start_time = Some(Time(now));
            if let Some(deadline) = spec.active_deadline_seconds {
                requeue = sooner(
                    requeue,
                    Some(Duration::from_secs(u64::try_from(deadline).unwrap_or(0))),
                );
            }
        }

        // 5. Create or remove pods, waiting out the backoff after failures.
        let parallelism = spec.parallelism.unwrap_or(1).max(0);
        let last_failure = pods
            .iter()
            .filter(|p| phase(p) == "Failed")
            .filter_map(|p| finished_at(p))
            .max();
        let delay = backoff_delay(u32::try_from(failed.max(0)).unwrap_or(0));
        let backoff_ends = last_failure.and_then(|at| {
            at.checked_add(k8s_openapi::jiff::SignedDuration::try_from(delay).ok()?)
                .ok()
        });
        let waiting = backoff_ends.filter(|ends| *ends > now);
        let mut active_now: Vec<&Arc<Pod>> = active.clone();
        // podReplacementPolicy Failed: a terminating pod still holds its place.
        let replace_only_failed = spec.pod_replacement_policy.as_deref() == Some("Failed");
        let holding: Vec<&Arc<Pod>> = pods
            .iter()
            .filter(|p| replace_only_failed && is_terminating(p) && !is_terminal(p))
            .collect();
        if indexed {
            let running: BTreeSet<i32> = active
                .iter()
                .chain(holding.iter())
                .filter_map(|p| index_of(p))
                .collect();
            // Two pods of one index: the newer goes.
            let mut seen = BTreeSet::new();
            for pod in &active {
                if let Some(i) = index_of(pod)
                    && !seen.insert(i)
                {
                    self.delete_pod(job, pod).await?;
                }
            }
            let pending: Vec<i32> = (0..completions.unwrap_or(0))
                .filter(|i| {
                    !completed.contains(i) && !failed_indexes.contains(i) && !running.contains(i)
                })
                .collect();
            let room = usize::try_from(parallelism)
                .unwrap_or(0)
                .saturating_sub(running.len());
            if !pending.is_empty() && room > 0 {
                if let Some(ends) = waiting {
                    requeue = sooner(requeue, Some(seconds_until(ends, now)));
                } else {
                    for index in pending.into_iter().take(room) {
                        let failures = index_failures.get(&index).copied().unwrap_or(0);
                        self.create_pod(job, Some((index, failures))).await?;
                    }
                }
            }
        } else {
            let have = i32::try_from(active.len() + holding.len()).unwrap_or(i32::MAX);
            let want = match completions {
                Some(c) => parallelism.min((c - succeeded).max(0)),
                // A work queue: once one pod succeeded no new one starts, and the running
                // ones are left to finish.
                None if succeeded > 0 => have.min(parallelism),
                None => parallelism,
            };
            if have > want {
                // The newest pods go first.
                active_now.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
                let excess = usize::try_from(have - want)
                    .unwrap_or(0)
                    .min(active_now.len());
                for pod in active_now.iter().rev().take(excess) {
                    self.delete_pod(job, pod).await?;
                }
            } else if have < want {
                if let Some(ends) = waiting {
                    requeue = sooner(requeue, Some(seconds_until(ends, now)));
                } else {
                    for _ in have..want {
                        self.create_pod(job, None).await?;
                    }
                }
            }
        }
        self.finish_status(job, status, &active, terminating, requeue)
            .await
    }

    /// Writes the final status of a pass, with the active, ready and terminating counts.
    async fn finish_status(
        &self,
        job: &Job,
        mut status: JobStatus,
        active: &[&Arc<Pod>],
        terminating: usize,
        requeue: Option<Duration>,
    ) -> Result<Action> {
        status.active = Some(i32::try_from(active.len()).unwrap_or(i32::MAX));
        status.ready = Some(
            i32::try_from(active.iter().filter(|p| is_running_and_ready(p)).count())
                .unwrap_or(i32::MAX),
        );
        status.terminating = Some(i32::try_from(terminating).unwrap_or(i32::MAX));
        if job.status.as_ref() != Some(&status) {
            self.write_status(job, status).await?;
        }
        Ok(match requeue {
            Some(after) => Action::requeue(after + Duration::from_millis(100)),
            None => Action::await_change(),
        })
    }

    async fn write_status(&self, job: &Job, status: JobStatus) -> Result<JobStatus> {
        let api: Api<Job> =
            Api::namespaced(self.client.clone(), &job.namespace().unwrap_or_default());
        let written = api
            .patch_status(
                &job.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await?;
        Ok(written.status.unwrap_or(status))
    }

    /// A finished Job with `ttlSecondsAfterFinished` goes once that time has passed.
    async fn expire(
        &self,
        job: &Job,
        status: &JobStatus,
        done: &JobCondition,
        now: Timestamp,
    ) -> Result<Action> {
        let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
            return Ok(Action::await_change());
        };
        let finished = status
            .completion_time
            .as_ref()
            .or(done.last_transition_time.as_ref())
            .map_or(now, |t| t.0);
        let expires = finished
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(i64::from(ttl)))
            .unwrap_or(finished);
        if now < expires {
            return Ok(Action::requeue(
                seconds_until(expires, now) + Duration::from_millis(100),
            ));
        }
        let api: Api<Job> =
            Api::namespaced(self.client.clone(), &job.namespace().unwrap_or_default());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: job.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::foreground()
        };
        match api.delete(&job.name_any(), &params).await {
            Ok(_) => Ok(Action::await_change()),
            Err(err) if is_not_found(&err) || is_conflict(&err) => Ok(Action::await_change()),
            Err(err) => Err(err.into()),
        }
    }

    /// Creates a pod; for an Indexed Job, with its index and how often that index failed.
    async fn create_pod(&self, job: &Job, index: Option<(i32, i32)>) -> Result<()> {
        let spec = job.spec.clone().unwrap_or_default();
        let name = job.name_any();
        let namespace = job.namespace().unwrap_or_default();
        let mut pod = pod_from_template(&spec.template, &namespace, controller_reference(job));
        pod.metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(TRACKING_FINALIZER.to_owned());
        match index {
            Some((index, failures)) => {
                pod.metadata.generate_name = Some(format!("{name}-{index}-"));
                let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
                annotations.insert(COMPLETION_INDEX.to_owned(), index.to_string());
                if spec.backoff_limit_per_index.is_some() {
                    annotations.insert(INDEX_FAILURE_COUNT.to_owned(), failures.to_string());
                }
                pod.metadata
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(COMPLETION_INDEX.to_owned(), index.to_string());
                if let Some(pod_spec) = pod.spec.as_mut() {
                    if pod_spec.hostname.is_none() {
                        pod_spec.hostname = Some(format!("{name}-{index}"));
                    }
                    let env = EnvVar {
                        name: "JOB_COMPLETION_INDEX".to_owned(),
                        value: None,
                        value_from: Some(EnvVarSource {
                            field_ref: Some(ObjectFieldSelector {
                                api_version: None,
                                field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                            }),
                            ..EnvVarSource::default()
                        }),
                    };
                    for container in pod_spec
                        .containers
                        .iter_mut()
                        .chain(pod_spec.init_containers.iter_mut().flatten())
                    {
                        let vars = container.env.get_or_insert_with(Vec::new);
                        if !vars.iter().any(|v| v.name == env.name) {
                            vars.push(env.clone());
                        }
                    }
                }
            }
            None => pod.metadata.generate_name = Some(format!("{name}-")),
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let uid = job.metadata.uid.clone().unwrap_or_default();
        match api.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                let pod_name = created.name_any();
                self.expectations.created(&uid, &pod_name);
                self.recorder
                    .publish(
                        job,
                        EventType::Normal,
                        "SuccessfulCreate",
                        &format!("Created pod: {pod_name}"),
                    )
                    .await;
                Ok(())
            }
            Err(err) => {
                self.recorder
                    .publish(
                        job,
                        EventType::Warning,
                        "FailedCreate",
                        &format!("Error creating: {err}"),
                    )
                    .await;
                Err(err.into())
            }
        }
    }

    /// Deletes a pod the Job no longer wants; the Job lets go of it first (removes the
    /// tracking finalizer) so that a deletion the Job chose is never counted as a failure.
    async fn delete_pod(&self, job: &Job, pod: &Pod) -> Result<()> {
        if has_finalizer(pod) {
            self.remove_finalizer(pod).await?;
        }
        if crate::workload_pods::delete_exact(&self.client, pod).await? {
            let uid = job.metadata.uid.clone().unwrap_or_default();
            self.expectations.deleted(&uid, &pod.name_any());
            self.recorder
                .publish(
                    job,
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!("Deleted pod: {}", pod.name_any()),
                )
                .await;
        }
        Ok(())
    }

    async fn remove_finalizer(&self, pod: &Pod) -> Result<()> {
        let remaining: Vec<&String> = pod
            .finalizers()
            .iter()
            .filter(|f| f.as_str() != TRACKING_FINALIZER)
            .collect();
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({"metadata": {
            "finalizers": if remaining.is_empty() { serde_json::Value::Null } else { json!(remaining) },
            "resourceVersion": pod.metadata.resource_version,
        }});
        match api
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                if let Some(owner) = pod
                    .owner_references()
                    .iter()
                    .find(|o| o.controller == Some(true))
                {
                    self.expectations.finalizer_removed(
                        &owner.uid,
                        &pod.name_any(),
                        TRACKING_FINALIZER,
                    );
                }
                Ok(())
            }
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

/// How many times each index failed: the most any of its pods knows of (the count its
/// pod was created with, plus one if that pod failed), ignoring failures a podFailurePolicy
/// rule said to ignore.
fn index_failures(
    pods: &[Arc<Pod>],
    policy: Option<&k8s_openapi::api::batch::v1::PodFailurePolicy>,
) -> BTreeMap<i32, i32> {
    let mut out: BTreeMap<i32, i32> = BTreeMap::new();
    for pod in pods {
        let Some(index) = index_of(pod) else {
            continue;
        };
        let before: i32 = pod
            .annotations()
            .get(INDEX_FAILURE_COUNT)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let failed = phase(pod) == "Failed" || is_terminating(pod) && phase(pod) != "Succeeded";
        let ignored = failed
            && policy
                .and_then(|p| match_failure_policy(p, pod))
                .is_some_and(|(action, _)| action == FailureAction::Ignore);
        let failed = failed && !ignored;
        let count = before + i32::from(failed);
        let entry = out.entry(index).or_insert(0);
        *entry = (*entry).max(count);
    }
    out
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}
