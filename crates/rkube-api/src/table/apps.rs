//! Workloads and what scales them: replication controllers, the `apps` kinds, jobs, cron jobs,
//! autoscalers, disruption budgets.

use jiff::Timestamp;
use serde_json::Value;

use super::desc::*;
use super::format::{
    age, at, bool_ptr, containers, count_cell, format_label_selector, format_labels, has, human,
    int, int_or_string, list, name, opt_int, opt_text, quantity_ptr, selector_string, since, text,
    time,
};
use super::{AGE, CONTAINERS, Column, IMAGES, NAME, col, wide};

/// `kubectl get replicationcontrollers`.
pub(super) const REPLICATION_CONTROLLER: &[Column] = &[
    NAME,
    col("Desired", "integer", RC_SPEC_REPLICAS),
    col("Current", "integer", RC_STATUS_REPLICAS),
    col("Ready", "integer", RC_READY),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", RC_SELECTOR),
];

/// One replication controller's row.
pub(super) fn replication_controller(rc: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(list(rc, &["spec", "template", "spec", "containers"]));
    vec![
        name(rc),
        Value::from(int(rc, &["spec", "replicas"])),
        Value::from(int(rc, &["status", "replicas"])),
        Value::from(int(rc, &["status", "readyReplicas"])),
        age(rc, now),
        names,
        images,
        Value::from(format_labels(at(rc, &["spec", "selector"]))),
    ]
}

/// `kubectl get replicasets`.
pub(super) const REPLICA_SET: &[Column] = &[
    NAME,
    col("Desired", "integer", RS_SPEC_REPLICAS),
    col("Current", "integer", RS_STATUS_REPLICAS),
    col("Ready", "integer", RS_READY),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", RS_SELECTOR),
];

/// One replica set's row.
pub(super) fn replica_set(rs: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(list(rs, &["spec", "template", "spec", "containers"]));
    vec![
        name(rs),
        Value::from(int(rs, &["spec", "replicas"])),
        Value::from(int(rs, &["status", "replicas"])),
        Value::from(int(rs, &["status", "readyReplicas"])),
        age(rs, now),
        names,
        images,
        Value::from(format_label_selector(at(rs, &["spec", "selector"]))),
    ]
}

/// `kubectl get daemonsets`.
pub(super) const DAEMON_SET: &[Column] = &[
    NAME,
    col("Desired", "integer", DS_DESIRED),
    col("Current", "integer", DS_CURRENT),
    col("Ready", "integer", DS_READY),
    col("Up-to-date", "integer", DS_UPDATED),
    col("Available", "integer", DS_AVAILABLE),
    col("Node Selector", "string", POD_NODE_SELECTOR),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", DS_SELECTOR),
];

/// One daemon set's row.
pub(super) fn daemon_set(ds: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(list(ds, &["spec", "template", "spec", "containers"]));
    let status = |field: &str| Value::from(int(ds, &["status", field]));
    vec![
        name(ds),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        Value::from(format_labels(at(
            ds,
            &["spec", "template", "spec", "nodeSelector"],
        ))),
        age(ds, now),
        names,
        images,
        Value::from(format_label_selector(at(ds, &["spec", "selector"]))),
    ]
}

/// `kubectl get deployments`.
pub(super) const DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", DEPLOY_UPDATED),
    col("Available", "string", DEPLOY_AVAILABLE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", DEPLOY_SELECTOR),
];

/// One deployment's row. Unlike the other workloads, an empty selector shows as nothing
/// rather than `<none>`.
pub(super) fn deployment(deploy: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(list(deploy, &["spec", "template", "spec", "containers"]));
    let selector = selector_string(at(deploy, &["spec", "selector"]))
        .unwrap_or_else(|()| "<invalid>".to_owned());
    vec![
        name(deploy),
        Value::from(format!(
            "{}/{}",
            int(deploy, &["status", "readyReplicas"]),
            int(deploy, &["spec", "replicas"])
        )),
        Value::from(int(deploy, &["status", "updatedReplicas"])),
        Value::from(int(deploy, &["status", "availableReplicas"])),
        age(deploy, now),
        names,
        images,
        Value::from(selector),
    ]
}

/// `kubectl get statefulsets`.
pub(super) const STATEFUL_SET: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

/// One stateful set's row.
pub(super) fn stateful_set(sts: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(list(sts, &["spec", "template", "spec", "containers"]));
    vec![
        name(sts),
        Value::from(format!(
            "{}/{}",
            int(sts, &["status", "readyReplicas"]),
            int(sts, &["spec", "replicas"])
        )),
        age(sts, now),
        names,
        images,
    ]
}

/// `kubectl get controllerrevisions`.
pub(super) const CONTROLLER_REVISION: &[Column] = &[
    NAME,
    col("Controller", "string", "Controller of the object"),
    col("Revision", "string", CR_REVISION),
    AGE,
];

/// One controller revision's row: CONTROLLER is `kind.group/name` of its controlling owner.
pub(super) fn controller_revision(revision: &Value, now: Timestamp) -> Vec<Value> {
    let controller = list(revision, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| at(r, &["controller"]).and_then(Value::as_bool) == Some(true))
        .map_or_else(
            || "<none>".to_owned(),
            |owner| {
                let api_version = text(owner, &["apiVersion"]);
                let group = match api_version.split_once('/') {
                    Some((group, _)) => group,
                    None => "",
                };
                let kind = text(owner, &["kind"]);
                let owner_name = text(owner, &["name"]);
                if kind.is_empty() && group.is_empty() {
                    owner_name.to_owned()
                } else if group.is_empty() {
                    format!("{}/{owner_name}", kind.to_lowercase())
                } else {
                    format!("{}/{owner_name}", format!("{kind}.{group}").to_lowercase())
                }
            },
        );
    vec![
        name(revision),
        Value::from(controller),
        Value::from(int(revision, &["revision"])),
        age(revision, now),
    ]
}

/// `kubectl get jobs`.
pub(super) const JOB: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col("Completions", "string", JOB_SUCCEEDED),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", JOB_SELECTOR),
];

/// Whether the first condition of `type_` is true.
fn job_condition(job: &Value, type_: &str) -> bool {
    super::format::condition_status(list(job, &["status", "conditions"]), type_) == Some("True")
}

/// One job's row.
pub(super) fn job(job: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int(job, &["status", "succeeded"]);
    let completions = match opt_int(job, &["spec", "completions"]) {
        Some(wanted) => format!("{succeeded}/{wanted}"),
        None => {
            let parallelism = int(job, &["spec", "parallelism"]);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let start = time(text(job, &["status", "startTime"]));
    let end = time(text(job, &["status", "completionTime"]));
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(start), None) => human(now.duration_since(start)),
        (Some(start), Some(end)) => human(end.duration_since(start)),
    };
    let status = if job_condition(job, "Complete") {
        "Complete"
    } else if job_condition(job, "Failed") {
        "Failed"
    } else if has(job, &["metadata", "deletionTimestamp"]) {
        "Terminating"
    } else if job_condition(job, "Suspended") {
        "Suspended"
    } else if job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers(list(job, &["spec", "template", "spec", "containers"]));
    vec![
        name(job),
        Value::from(status),
        Value::from(completions),
        Value::from(duration),
        age(job, now),
        names,
        images,
        Value::from(format_label_selector(at(job, &["spec", "selector"]))),
    ]
}

/// `kubectl get cronjobs`.
pub(super) const CRON_JOB: &[Column] = &[
    NAME,
    col("Schedule", "string", CJ_SCHEDULE),
    col("Timezone", "string", CJ_TIMEZONE),
    col("Suspend", "boolean", CJ_SUSPEND),
    col("Active", "integer", CJ_ACTIVE),
    col("Last Schedule", "string", CJ_LAST_SCHEDULE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", JOB_SELECTOR),
];

/// One cron job's row.
pub(super) fn cron_job(cj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = match opt_text(cj, &["status", "lastScheduleTime"]) {
        Some(t) => since(t, now),
        None => "<none>".to_owned(),
    };
    let job_spec = at(cj, &["spec", "jobTemplate", "spec"]).unwrap_or(&Value::Null);
    let (names, images) = containers(list(job_spec, &["template", "spec", "containers"]));
    vec![
        name(cj),
        Value::from(text(cj, &["spec", "schedule"])),
        Value::from(opt_text(cj, &["spec", "timeZone"]).unwrap_or("<none>")),
        Value::from(bool_ptr(
            at(cj, &["spec", "suspend"]).and_then(Value::as_bool),
        )),
        count_cell(list(cj, &["status", "active"]).len()),
        Value::from(last_schedule),
        age(cj, now),
        names,
        images,
        Value::from(format_label_selector(at(job_spec, &["selector"]))),
    ]
}

/// `kubectl get horizontalpodautoscalers`.
pub(super) const HPA: &[Column] = &[
    NAME,
    col("Reference", "string", HPA_REF),
    col("Targets", "string", HPA_METRICS),
    col("MinPods", "string", HPA_MIN),
    col("MaxPods", "string", HPA_MAX),
    col("Replicas", "string", HPA_CURRENT),
    AGE,
];

/// One metric target against its current value, as upstream's `formatHPAMetrics` writes it.
fn hpa_metric(spec: &Value, status: Option<&Value>) -> String {
    // The status entry of the same source type, if the status has one at this index.
    let current = |source: &str| status.and_then(|s| at(s, &[source]));
    match text(spec, &["type"]) {
        source @ ("External" | "Object") => {
            let key = if source == "External" {
                "external"
            } else {
                "object"
            };
            let target = at(spec, &[key, "target"]).unwrap_or(&Value::Null);
            if has(target, &["averageValue"]) {
                let now = current(key)
                    .and_then(|c| at(c, &["current", "averageValue"]))
                    .map_or_else(|| "<unknown>".to_owned(), |q| quantity_ptr(Some(q)));
                format!(
                    "{now}/{} (avg)",
                    quantity_ptr(at(target, &["averageValue"]))
                )
            } else {
                let now = current(key).map_or_else(
                    || "<unknown>".to_owned(),
                    |c| quantity_ptr(at(c, &["current", "value"])),
                );
                format!("{now}/{}", quantity_ptr(at(target, &["value"])))
            }
        }
        "Pods" => {
            let now = current("pods").map_or_else(
                || "<unknown>".to_owned(),
                |c| quantity_ptr(at(c, &["current", "averageValue"])),
            );
            format!(
                "{now}/{}",
                quantity_ptr(at(spec, &["pods", "target", "averageValue"]))
            )
        }
        source @ ("Resource" | "ContainerResource") => {
            let key = if source == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let resource = text(spec, &[key, "name"]);
            let target = at(spec, &[key, "target"]).unwrap_or(&Value::Null);
            if has(target, &["averageValue"]) {
                let now = current(key).map_or_else(
                    || "<unknown>".to_owned(),
                    |c| quantity_ptr(at(c, &["current", "averageValue"])),
                );
                format!(
                    "{resource}: {now}/{}",
                    quantity_ptr(at(target, &["averageValue"]))
                )
            } else {
                let now = current(key)
                    .and_then(|c| opt_int(c, &["current", "averageUtilization"]))
                    .map_or_else(|| "<unknown>".to_owned(), |u| format!("{u}%"));
                let wanted = opt_int(target, &["averageUtilization"])
                    .map_or_else(|| "<auto>".to_owned(), |u| format!("{u}%"));
                format!("{resource}: {now}/{wanted}")
            }
        }
        _ => "<unknown type>".to_owned(),
    }
}

/// One autoscaler's row: TARGETS shows the first two metrics, then `+ N more...`.
pub(super) fn hpa(hpa: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 2;
    let specs = list(hpa, &["spec", "metrics"]);
    let statuses = list(hpa, &["status", "currentMetrics"]);
    let targets = if specs.is_empty() {
        "<none>".to_owned()
    } else {
        let shown: Vec<String> = specs
            .iter()
            .enumerate()
            .take(MAX)
            .map(|(i, spec)| hpa_metric(spec, statuses.get(i)))
            .collect();
        if specs.len() > MAX {
            format!("{} + {} more...", shown.join(", "), specs.len() - MAX)
        } else {
            shown.join(", ")
        }
    };
    let min_pods = opt_int(hpa, &["spec", "minReplicas"])
        .map_or_else(|| "<unset>".to_owned(), |n| n.to_string());
    vec![
        name(hpa),
        Value::from(format!(
            "{}/{}",
            text(hpa, &["spec", "scaleTargetRef", "kind"]),
            text(hpa, &["spec", "scaleTargetRef", "name"])
        )),
        Value::from(targets),
        Value::from(min_pods),
        Value::from(int(hpa, &["spec", "maxReplicas"])),
        Value::from(int(hpa, &["status", "currentReplicas"])),
        age(hpa, now),
    ]
}

/// The `scale` subresource's table.
pub(super) const SCALE: &[Column] = &[
    // Upstream leaves the name format off this one column.
    col("Name", "string", OBJ_NAME),
    col("Desired", "integer", SCALE_SPEC),
    col("Available", "integer", SCALE_STATUS),
    AGE,
];

/// One scale's row.
pub(super) fn scale(scale: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(scale),
        Value::from(int(scale, &["spec", "replicas"])),
        Value::from(int(scale, &["status", "replicas"])),
        age(scale, now),
    ]
}

/// `kubectl get poddisruptionbudgets`.
pub(super) const PDB: &[Column] = &[
    NAME,
    col(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
    ),
    col(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
    ),
    col(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
];

/// One disruption budget's row.
pub(super) fn pdb(pdb: &Value, now: Timestamp) -> Vec<Value> {
    let bound =
        |field: &str| at(pdb, &["spec", field]).map_or_else(|| "N/A".to_owned(), int_or_string);
    vec![
        name(pdb),
        Value::from(bound("minAvailable")),
        Value::from(bound("maxUnavailable")),
        Value::from(int(pdb, &["status", "disruptionsAllowed"])),
        age(pdb, now),
    ]
}
