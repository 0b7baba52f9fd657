//! The CronJob controller: creates a Job (`<cronjob>-<scheduled minutes since the epoch>`) at
//! each time the schedule fires in `spec.timeZone`, honouring `concurrencyPolicy`, `suspend`
//! and `startingDeadlineSeconds`, keeps `status.active`, `lastScheduleTime` and
//! `lastSuccessfulTime`, and deletes finished Jobs beyond the history limits.
//!
//! The clock is injected, so that tests can move time without waiting for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config, applier, trigger_owners, trigger_self};
use kube::runtime::reflector::Store;
use serde_json::json;

use crate::cron_schedule::{MAX_MISSED, Schedule, most_recent_unmet};
use crate::events::{EventType, Recorder};
use crate::informer::SharedInformers;
use crate::workload_pods::{
    Error, Result, controller_reference, drain, is_conflict, is_controlled_by, is_not_found,
};

/// The annotation a scheduled Job carries: the time it was scheduled for, in the CronJob's zone.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Where the controller reads the time.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Runs the CronJob controller.
#[derive(Clone)]
pub struct CronJobController {
    client: kube::Client,
    informers: SharedInformers,
    recorder: Recorder,
    clock: Clock,
}

struct Shared {
    controller: CronJobController,
    jobs: Store<Job>,
}

/// `Complete` or `Failed`, if the Job has finished.
fn finished(job: &Job) -> Option<&'static str> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    for c in conditions.iter().filter(|c| c.status == "True") {
        match c.type_.as_str() {
            "Complete" => return Some("Complete"),
            "Failed" => return Some("Failed"),
            _ => {}
        }
    }
    None
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".to_owned()),
        kind: Some("Job".to_owned()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// The zone the schedule is read in: `spec.timeZone`, or the controller's local zone.
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None | Some("") => Ok(TimeZone::try_system().unwrap_or(TimeZone::UTC)),
        Some(name) => TimeZone::get(name).map_err(|err| err.to_string()),
    }
}

/// The name of the Job scheduled at `at`, as upstream names it.
pub fn job_name(cron_job: &str, at: Timestamp) -> String {
    format!("{cron_job}-{}", at.as_second().div_euclid(60))
}

impl CronJobController {
    /// A controller acting through `client`, on the system clock.
    pub fn new(client: impl Into<SharedInformers>) -> Self {
        Self::with_clock(client, Arc::new(Timestamp::now))
    }

    /// A controller reading the time from `clock`.
    pub fn with_clock(client: impl Into<SharedInformers>, clock: Clock) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            recorder: Recorder::new(informers.client().clone(), "cronjob-controller"),
            client: informers.client().clone(),
            informers,
            clock,
        }
    }

    /// Watches CronJobs and their Jobs until dropped.
    pub async fn run(self) {
        let (cron_jobs, cron_events) = self.informers.touched::<CronJob>().await;
        let (jobs, job_events) = self.informers.touched::<Job>().await;
        let queue = stream::select(
            trigger_self(cron_events, ()),
            trigger_owners(job_events, (), ()),
        );
        let shared = Arc::new(Shared {
            controller: self,
            jobs,
        });
        let results = applier(
            |cj: Arc<CronJob>, shared: Arc<Shared>| {
                Box::pin(async move { shared.controller.reconcile(&cj, &shared.jobs).await })
            },
            |_, _, _| Action::requeue(Duration::from_secs(5)),
            shared,
            cron_jobs,
            queue,
            Config::default(),
        );
        drain("cronjob", results).await;
    }

    async fn reconcile(&self, cached: &CronJob, cache: &Store<Job>) -> Result<Action> {
        cache
            .wait_until_ready()
            .await
            .map_err(|_| Error::CacheGone)?;
        let namespace = cached.namespace().unwrap_or_default();
        let api: Api<CronJob> = Api::namespaced(self.client.clone(), &namespace);
        // The status says which times were already run: read it fresh, never from a cache
        // that may lag behind this controller's last write.
        let Some(cj) = api.get_opt(&cached.name_any()).await? else {
            return Ok(Action::await_change());
        };
        let cj = &cj;
        let Some(spec) = cj.spec.clone() else {
            return Ok(Action::await_change());
        };
        let now = (self.clock)();
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let mut jobs: Vec<Arc<Job>> = cache.state_filter(|j| {
            j.metadata.namespace.as_deref() == Some(namespace.as_str())
                && is_controlled_by(&j.metadata, &uid)
        });
        // Oldest first; creation times have whole seconds, and names carry the scheduled
        // minute, so the name breaks ties.
        jobs.sort_by_key(|j| {
            (
                j.metadata.creation_timestamp.clone().map(|t| t.0),
                j.metadata.name.clone(),
            )
        });
        let old = cj.status.clone().unwrap_or_default();
        let mut status = old.clone();

        // The active list holds the Jobs this controller started until they finish. A Job
        // it did not start (say `kubectl create job --from=cronjob/…`) is reported, not
        // adopted, as upstream does.
        let job_api: Api<Job> = Api::namespaced(self.client.clone(), &namespace);
        let mut active: Vec<ObjectReference> = Vec::new();
        for listed in old.active.iter().flatten() {
            let job = match jobs.iter().find(|j| j.metadata.uid == listed.uid) {
                Some(job) => Some(job.as_ref().clone()),
                // Not in the cache (yet, or any more): ask.
                None => job_api
                    .get_opt(listed.name.as_deref().unwrap_or(""))
                    .await?
                    .filter(|j| j.metadata.uid == listed.uid),
            };
            let Some(job) = job else {
                continue;
            };
            match finished(&job) {
                None => active.push(listed.clone()),
                Some(outcome) => {
                    self.recorder
                        .publish(
                            cj,
                            EventType::Normal,
                            "SawCompletedJob",
                            &format!("Saw completed job: {}, status: {outcome}", job.name_any()),
                        )
                        .await;
                    if outcome == "Complete"
                        && let Some(done) =
                            job.status.as_ref().and_then(|s| s.completion_time.clone())
                        && status
                            .last_successful_time
                            .as_ref()
                            .is_none_or(|t| t.0 < done.0)
                    {
                        status.last_successful_time = Some(done);
                    }
                }
            }
        }
        for job in &jobs {
            let listed = old
                .active
                .iter()
                .flatten()
                .any(|r| r.uid == job.metadata.uid);
            if !listed && finished(job).is_none() {
                self.recorder
                    .publish(
                        cj,
                        EventType::Warning,
                        "UnexpectedJob",
                        &format!(
                            "Saw a job that the controller did not create or forgot: {}",
                            job.name_any()
                        ),
                    )
                    .await;
            }
        }
        status.active = (!active.is_empty()).then_some(active);

        self.clean_history(cj, &jobs).await?;

        if cj.metadata.deletion_timestamp.is_some() || spec.suspend == Some(true) {
            self.write_status(cj, &old, &status).await?;
            return Ok(Action::await_change());
        }
        let schedule = match Schedule::parse(&spec.schedule) {
            Ok(schedule) => schedule,
            Err(err) => {
                self.recorder
                    .publish(
                        cj,
                        EventType::Warning,
                        "UnparseableSchedule",
                        &format!("unparseable schedule: {:?} : {err}", spec.schedule),
                    )
                    .await;
                self.write_status(cj, &old, &status).await?;
                return Ok(Action::await_change());
            }
        };
        let tz = match time_zone(spec.time_zone.as_deref()) {
            Ok(tz) => tz,
            Err(err) => {
                self.recorder
                    .publish(
                        cj,
                        EventType::Warning,
                        "UnknownTimeZone",
                        &format!(
                            "invalid timeZone: {:?}: {err}",
                            spec.time_zone.unwrap_or_default()
                        ),
                    )
                    .await;
                self.write_status(cj, &old, &status).await?;
                return Ok(Action::await_change());
            }
        };
        let plan = plan_start(
            &schedule,
            &tz,
            status.last_schedule_time.as_ref().map(|t| t.0),
            cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0),
            spec.starting_deadline_seconds,
            now,
        );
        let requeue = plan
            .next
            .map(|next| {
                let millis = (next.as_millisecond() - now.as_millisecond()).max(0);
                Duration::from_millis(u64::try_from(millis).unwrap_or(0) + 100)
            })
            .map_or_else(Action::await_change, Action::requeue);
        if plan.missed > MAX_MISSED {
            self.recorder
                .publish(
                    cj,
                    EventType::Warning,
                    "TooManyMissedTimes",
                    &format!(
                        "too many missed start times: {}. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
                        plan.missed
                    ),
                )
                .await;
        }
        let Some(scheduled) = plan.scheduled else {
            self.write_status(cj, &old, &status).await?;
            return Ok(requeue);
        };
        if plan.too_late {
            self.recorder
                .publish(
                    cj,
                    EventType::Warning,
                    "MissSchedule",
                    &format!(
                        "Missed scheduled time to start a job: {}",
                        scheduled
                            .to_zoned(tz.clone())
                            .strftime("%Y-%m-%dT%H:%M:%S%:z")
                    ),
                )
                .await;
            self.write_status(cj, &old, &status).await?;
            return Ok(requeue);
        }
        let running = status.active.clone().unwrap_or_default();
        match spec.concurrency_policy.as_deref() {
            Some("Forbid") if !running.is_empty() => {
                self.recorder
                    .publish(
                        cj,
                        EventType::Normal,
                        "JobAlreadyActive",
                        "Not starting job because prior execution is running and concurrency policy is Forbid",
                    )
                    .await;
                self.write_status(cj, &old, &status).await?;
                return Ok(requeue);
            }
            Some("Replace") => {
                let job_api: Api<Job> = Api::namespaced(self.client.clone(), &namespace);
                for listed in &running {
                    let name = listed.name.clone().unwrap_or_default();
                    match job_api.delete(&name, &DeleteParams::background()).await {
                        Ok(_) => {
                            self.recorder
                                .publish(
                                    cj,
                                    EventType::Normal,
                                    "SuccessfulDelete",
                                    &format!("Deleted job {name}"),
                                )
                                .await;
                        }
                        Err(err) if is_not_found(&err) => {}
                        Err(err) => return Err(err.into()),
                    }
                }
                status.active = None;
            }
            _ => {}
        }
        let job = self.create_job(cj, scheduled, &tz).await?;
        status
            .active
            .get_or_insert_with(Vec::new)
            .push(reference(&job));
        status.last_schedule_time = Some(Time(scheduled));
        self.write_status(cj, &old, &status).await?;
        Ok(requeue)
    }

    async fn create_job(&self, cj: &CronJob, scheduled: Timestamp, tz: &TimeZone) -> Result<Job> {
        let namespace = cj.namespace().unwrap_or_default();
        let spec = cj.spec.clone().unwrap_or_default();
        let template = spec.job_template;
        let from = template.metadata.unwrap_or_default();
        let name = job_name(&cj.name_any(), scheduled);
        let mut annotations = from.annotations.unwrap_or_default();
        annotations.insert(
            SCHEDULED_TIMESTAMP.to_owned(),
            scheduled
                .to_zoned(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
        );
        let job = Job {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                labels: from.labels.or_else(|| Some(BTreeMap::new())),
                annotations: Some(annotations),
                owner_references: Some(vec![controller_reference(cj)]),
                ..ObjectMeta::default()
            },
            spec: template.spec,
            status: None,
        };
        let api: Api<Job> = Api::namespaced(self.client.clone(), &namespace);
        match api.create(&PostParams::default(), &job).await {
            Ok(created) => {
                self.recorder
                    .publish(
                        cj,
                        EventType::Normal,
                        "SuccessfulCreate",
                        &format!("Created job {name}"),
                    )
                    .await;
                Ok(created)
            }
            // Already made for this time (a status write was lost): take it as made.
            Err(err) if is_conflict(&err) => Ok(api.get(&name).await?),
            Err(err) => {
                self.recorder
                    .publish(
                        cj,
                        EventType::Warning,
                        "FailedCreate",
                        &format!("Error creating job: {err}"),
                    )
                    .await;
                Err(err.into())
            }
        }
    }

    /// Deletes the oldest finished Jobs beyond `successfulJobsHistoryLimit` and
    /// `failedJobsHistoryLimit`.
    async fn clean_history(&self, cj: &CronJob, jobs: &[Arc<Job>]) -> Result<()> {
        let spec = cj.spec.clone().unwrap_or_default();
        let namespace = cj.namespace().unwrap_or_default();
        let api: Api<Job> = Api::namespaced(self.client.clone(), &namespace);
        for (outcome, limit) in [
            ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
            ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
        ] {
            let done: Vec<&Arc<Job>> = jobs
                .iter()
                .filter(|j| finished(j) == Some(outcome) && j.metadata.deletion_timestamp.is_none())
                .collect();
            let excess = done
                .len()
                .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
            // `jobs` is oldest first.
            for job in done.into_iter().take(excess) {
                match api
                    .delete(&job.name_any(), &DeleteParams::background())
                    .await
                {
                    Ok(_) => {
                        self.recorder
                            .publish(
                                cj,
                                EventType::Normal,
                                "SuccessfulDelete",
                                &format!("Deleted job {}", job.name_any()),
                            )
                            .await;
                    }
                    Err(err) if is_not_found(&err) => {}
                    Err(err) => return Err(err.into()),
                }
            }
        }
        Ok(())
    }

    async fn write_status(
        &self,
        cj: &CronJob,
        old: &CronJobStatus,
        status: &CronJobStatus,
    ) -> Result<()> {
        if old == status {
            return Ok(());
        }
        let api: Api<CronJob> =
            Api::namespaced(self.client.clone(), &cj.namespace().unwrap_or_default());
        // `active: null` clears the list in a merge patch.
        let patch = json!({"status": {
            "active": status.active,
            "lastScheduleTime": status.last_schedule_time,
            "lastSuccessfulTime": status.last_successful_time,
        }});
        api.patch_status(
            &cj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        Ok(())
    }
}

/// What the schedule says to do at `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartPlan {
    /// The most recent start time not yet run, if any.
    pub scheduled: Option<Timestamp>,
    /// How many start times were missed since the last run (capped just past 100).
    pub missed: usize,
    /// The start time is older than `startingDeadlineSeconds` allows.
    pub too_late: bool,
    /// The next start time after `now`.
    pub next: Option<Timestamp>,
}

/// Decides, as upstream's CronJob controller does, whether a Job is due at `now`: the start
/// times counted are those after the last scheduled one (or the CronJob's creation), and no
/// older than `startingDeadlineSeconds` when that is set.
pub fn plan_start(
    schedule: &Schedule,
    tz: &TimeZone,
    last_scheduled: Option<Timestamp>,
    created: Timestamp,
    starting_deadline_seconds: Option<i64>,
    now: Timestamp,
) -> StartPlan {
    let mut earliest = last_scheduled.unwrap_or(created);
    if let Some(deadline) = starting_deadline_seconds
        && let Ok(window_start) = now.checked_sub(SignedDuration::from_secs(deadline))
        && window_start > earliest
    {
        earliest = window_start;
    }
    let (scheduled, missed) = most_recent_unmet(schedule, tz, earliest, now);
    let too_late = match (scheduled, starting_deadline_seconds) {
        (Some(at), Some(deadline)) => at
            .checked_add(SignedDuration::from_secs(deadline))
            .is_ok_and(|limit| limit < now),
        _ => false,
    };
    StartPlan {
        scheduled,
        missed,
        too_late,
        next: schedule.next_after(now, tz),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap_or_default()
    }

    fn every_minute() -> Schedule {
        Schedule::parse("* * * * *").unwrap_or(Schedule::Every(SignedDuration::ZERO))
    }

    #[test]
    fn a_job_is_due_at_the_latest_unmet_minute() {
        let plan = plan_start(
            &every_minute(),
            &TimeZone::UTC,
            None,
            at("2024-01-01T00:00:30Z"),
            None,
            at("2024-01-01T00:02:10Z"),
        );
        assert_eq!(plan.scheduled, Some(at("2024-01-01T00:02:00Z")));
        assert_eq!(plan.missed, 2);
        assert!(!plan.too_late);
        assert_eq!(plan.next, Some(at("2024-01-01T00:03:00Z")));
        // Once run, the same minute is not due again.
        let plan = plan_start(
            &every_minute(),
            &TimeZone::UTC,
            Some(at("2024-01-01T00:02:00Z")),
            at("2024-01-01T00:00:30Z"),
            None,
            at("2024-01-01T00:02:40Z"),
        );
        assert_eq!(plan.scheduled, None);
    }

    #[test]
    fn the_starting_deadline_limits_how_far_back_start_times_count() {
        let hourly = Schedule::parse("@hourly").unwrap_or(Schedule::Every(SignedDuration::ZERO));
        // Ten minutes past the hour, with a 5 minute deadline: the run is missed.
        let plan = plan_start(
            &hourly,
            &TimeZone::UTC,
            None,
            at("2024-01-01T00:30:00Z"),
            Some(300),
            at("2024-01-01T01:10:00Z"),
        );
        assert_eq!(plan.scheduled, None);
        let plan = plan_start(
            &hourly,
            &TimeZone::UTC,
            None,
            at("2024-01-01T00:30:00Z"),
            Some(900),
            at("2024-01-01T01:10:00Z"),
        );
        assert_eq!(plan.scheduled, Some(at("2024-01-01T01:00:00Z")));
    }

    #[test]
    fn jobs_are_named_after_their_minute() {
        assert_eq!(
            job_name("hello", at("2024-01-01T00:02:00Z")),
            "hello-28401122"
        );
    }

    #[test]
    fn unknown_time_zones_are_errors() {
        assert!(time_zone(Some("Mars/Olympus_Mons")).is_err());
        assert!(time_zone(Some("Europe/Paris")).is_ok());
        assert!(time_zone(None).is_ok());
    }
}
