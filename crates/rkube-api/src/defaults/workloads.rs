//! Workload defaults: ReplicationController, the apps kinds, Job and CronJob. Every pod
//! template inside gets the pod spec defaults.

use serde_json::{Map, Value, json};

use super::{child, child_or_insert, default_str, default_value, each_object, pod, str_of};

/// The labels the Job strategy puts on a Job's pods, and the one its selector matches.
const JOB_NAME_LABELS: [&str; 2] = ["job-name", "batch.kubernetes.io/job-name"];
const CONTROLLER_UID_LABELS: [&str; 2] = ["controller-uid", "batch.kubernetes.io/controller-uid"];
const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

/// Defaults the `template` inside `spec`, when there is a spec.
fn spec_template(spec: &mut Map<String, Value>) {
    if let Some(template) = child_or_insert(spec, "template") {
        pod::template(template);
    }
}

/// The labels of `spec.template.metadata`, if any.
fn template_labels(spec: &Map<String, Value>) -> Option<Map<String, Value>> {
    spec.get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
}

/// Whether `metadata.labels` is absent or empty.
fn has_no_labels(obj: &Map<String, Value>) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty)
}

/// Copies the template's labels to the object when it has none, as upstream does for
/// ReplicationControllers and Jobs.
fn labels_from_template(obj: &mut Map<String, Value>, labels: &Map<String, Value>) {
    if has_no_labels(obj)
        && let Some(metadata) = child_or_insert(obj, "metadata")
    {
        metadata.insert("labels".to_owned(), Value::Object(labels.clone()));
    }
}

/// `SetDefaults_ReplicationController`: selector and labels from the template, one replica.
pub(super) fn replication_controller(obj: &mut Map<String, Value>) {
    let Some(spec) = child_or_insert(obj, "spec") else {
        return;
    };
    let labels = template_labels(spec);
    if let Some(labels) = &labels {
        let empty = spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        if empty {
            spec.insert("selector".to_owned(), Value::Object(labels.clone()));
        }
    }
    default_value(spec, "replicas", json!(1));
    if let Some(template) = child(spec, "template") {
        pod::template(template);
    }
    if let Some(labels) = labels {
        labels_from_template(obj, &labels);
    }
}

/// `SetDefaults_Deployment`.
pub(super) fn deployment(obj: &mut Map<String, Value>) {
    let Some(spec) = child_or_insert(obj, "spec") else {
        return;
    };
    default_value(spec, "replicas", json!(1));
    if let Some(strategy) = child_or_insert(spec, "strategy") {
        default_str(strategy, "type", "RollingUpdate");
        if str_of(strategy, "type") == Some("RollingUpdate")
            && let Some(rolling) = child_or_insert(strategy, "rollingUpdate")
        {
            default_value(rolling, "maxUnavailable", json!("25%"));
            default_value(rolling, "maxSurge", json!("25%"));
        }
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    default_value(spec, "progressDeadlineSeconds", json!(600));
    spec_template(spec);
}

/// `SetDefaults_ReplicaSet`.
pub(super) fn replica_set(obj: &mut Map<String, Value>) {
    let Some(spec) = child_or_insert(obj, "spec") else {
        return;
    };
    default_value(spec, "replicas", json!(1));
    spec_template(spec);
}

/// `SetDefaults_StatefulSet`, with its claim templates defaulted as claims.
pub(super) fn stateful_set(obj: &mut Map<String, Value>) {
    let Some(spec) = child_or_insert(obj, "spec") else {
        return;
    };
    default_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = child_or_insert(spec, "updateStrategy") {
        // Only a strategy whose type was left out gets a rollingUpdate block; an explicit
        // RollingUpdate without one stays without, as upstream.
        if str_of(strategy, "type").is_none_or(str::is_empty) {
            strategy.insert("type".to_owned(), json!("RollingUpdate"));
            default_value(strategy, "rollingUpdate", json!({}));
        }
        if str_of(strategy, "type") == Some("RollingUpdate")
            && let Some(rolling) = child(strategy, "rollingUpdate")
        {
            default_value(rolling, "partition", json!(0));
        }
    }
    if let Some(retention) = child_or_insert(spec, "persistentVolumeClaimRetentionPolicy") {
        default_str(retention, "whenDeleted", "Retain");
        default_str(retention, "whenScaled", "Retain");
    }
    default_value(spec, "replicas", json!(1));
    default_value(spec, "revisionHistoryLimit", json!(10));
    spec_template(spec);
    each_object(spec, "volumeClaimTemplates", |claim| {
        // Upstream writes the embedded claims with their type, as the typed round trip does.
        default_str(claim, "apiVersion", "v1");
        default_str(claim, "kind", "PersistentVolumeClaim");
        if let Some(claim_spec) = child_or_insert(claim, "spec") {
            pod::claim_spec(claim_spec);
        }
        if let Some(status) = child_or_insert(claim, "status") {
            default_str(status, "phase", "Pending");
        }
    });
}

/// `SetDefaults_DaemonSet`.
pub(super) fn daemon_set(obj: &mut Map<String, Value>) {
    let Some(spec) = child_or_insert(obj, "spec") else {
        return;
    };
    if let Some(strategy) = child_or_insert(spec, "updateStrategy") {
        default_str(strategy, "type", "RollingUpdate");
        if str_of(strategy, "type") == Some("RollingUpdate")
            && let Some(rolling) = child_or_insert(strategy, "rollingUpdate")
        {
            default_value(rolling, "maxUnavailable", json!(1));
            default_value(rolling, "maxSurge", json!(0));
        }
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    spec_template(spec);
}

/// `SetDefaults_Job`, then the selector the Job strategy generates once the Job has a uid.
pub(super) fn job(obj: &mut Map<String, Value>, all: bool) {
    let Some(spec) = child_or_insert(obj, "spec") else {
        return;
    };
    if super::is_nil(spec, "completions") && super::is_nil(spec, "parallelism") {
        spec.insert("completions".to_owned(), json!(1));
    }
    default_value(spec, "parallelism", json!(1));
    let per_index = !super::is_nil(spec, "backoffLimitPerIndex");
    default_value(
        spec,
        "backoffLimit",
        json!(if per_index { i32::MAX } else { 6 }),
    );
    default_value(spec, "completionMode", json!("NonIndexed"));
    default_value(spec, "suspend", json!(false));
    let has_failure_policy = !super::is_nil(spec, "podFailurePolicy");
    if let Some(policy) = child(spec, "podFailurePolicy") {
        each_object(policy, "rules", |rule| {
            each_object(rule, "onPodConditions", |pattern| {
                default_str(pattern, "status", "True");
            });
        });
    }
    let replacement = if has_failure_policy {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    default_value(spec, "podReplacementPolicy", json!(replacement));
    default_value(spec, "manualSelector", json!(false));
    spec_template(spec);
    // Upstream copies the template's labels at decode, before its strategy generates the
    // selector labels, and so stores them on the Job only when the object is next decoded
    // (the controller's first status write). Generating first gives that settled state at
    // once and keeps defaulting idempotent.
    if all {
        generate_job_selector(obj);
    }
    let labels = child(obj, "spec").and_then(|spec| template_labels(spec));
    if let Some(labels) = labels {
        labels_from_template(obj, &labels);
    }
}

/// The Job strategy's selector: pods are labelled with the Job's name and uid, and the
/// selector matches the uid. Done only when the client did not ask to choose its own, and
/// only once the Job has a uid (the caller assigns it before defaulting a new object).
fn generate_job_selector(obj: &mut Map<String, Value>) {
    let metadata = obj.get("metadata");
    let uid = metadata
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let name = metadata
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    if uid.is_empty() || spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(labels) = child_or_insert(spec, "template")
        .and_then(|t| child_or_insert(t, "metadata"))
        .and_then(|m| child_or_insert(m, "labels"))
    {
        for key in JOB_NAME_LABELS {
            labels.entry(key).or_insert_with(|| json!(name));
        }
        for key in CONTROLLER_UID_LABELS {
            labels.entry(key).or_insert_with(|| json!(uid));
        }
    }
    if let Some(match_labels) =
        child_or_insert(spec, "selector").and_then(|s| child_or_insert(s, "matchLabels"))
    {
        match_labels
            .entry(CONTROLLER_UID_LABEL)
            .or_insert_with(|| json!(uid));
    }
}

/// `SetDefaults_CronJob`; the job template's pod spec gets pod spec defaults, but its job
/// spec gets none (upstream defaults Jobs, not job specs).
pub(super) fn cron_job(obj: &mut Map<String, Value>) {
    let Some(spec) = child_or_insert(obj, "spec") else {
        return;
    };
    default_str(spec, "concurrencyPolicy", "Allow");
    default_value(spec, "suspend", json!(false));
    default_value(spec, "successfulJobsHistoryLimit", json!(3));
    default_value(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) =
        child_or_insert(spec, "jobTemplate").and_then(|t| child_or_insert(t, "spec"))
    {
        spec_template(job_spec);
    }
}
