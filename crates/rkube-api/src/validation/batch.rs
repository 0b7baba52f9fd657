//! Jobs and CronJobs: `ValidateJob`, `ValidateJobSpecUpdate`, `ValidateCronJob`.

use serde_json::Value;

use super::cron;
use super::field::{self, Path, bool_at, get, int_at, str_at, string_map};
use super::pod;
use crate::error::FieldError;

/// Upstream's limit on the parallelism of an Indexed Job.
const MAX_INDEXED_PARALLELISM: i64 = 100_000;
/// CronJob names leave room for the 11 characters a Job's name suffix takes.
const CRON_JOB_NAME_MAX: usize = 52;

/// `validateJobSpec`: what a Job and a CronJob's job template share.
fn job_spec(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        field::nonnegative(int_at(spec, key), &path.child(key), errs);
    }
    let mode = str_at(spec, "completionMode");
    if !mode.is_empty() && mode != "NonIndexed" && mode != "Indexed" {
        errs.push(FieldError::not_supported(
            path.child("completionMode"),
            mode,
            &["NonIndexed", "Indexed"],
        ));
    }
    if mode == "Indexed" {
        if get(spec, "completions").is_none() {
            errs.push(FieldError::required(
                path.child("completions"),
                "when completion mode is Indexed",
            ));
        }
        if let Some(p) = int_at(spec, "parallelism").filter(|p| *p > MAX_INDEXED_PARALLELISM) {
            errs.push(FieldError::invalid(
                path.child("parallelism"),
                p,
                "must be less than or equal to 100000 when completion mode is Indexed",
            ));
        }
    }
    let has_failure_policy = get(spec, "podFailurePolicy").is_some();
    let replacement = str_at(spec, "podReplacementPolicy");
    if !replacement.is_empty() {
        let supported: &[&str] = if has_failure_policy {
            &["Failed"]
        } else {
            &["TerminatingOrFailed", "Failed"]
        };
        if !supported.contains(&replacement) {
            errs.push(FieldError::not_supported(
                path.child("podReplacementPolicy"),
                replacement,
                supported,
            ));
        }
    }
    let template = get(spec, "template").unwrap_or(&Value::Null);
    pod::template(Some(template), &path.child("template"), errs);
    let restart = field::dig(template, &["spec", "restartPolicy"])
        .and_then(Value::as_str)
        .unwrap_or("");
    let template_path = path.child("template");
    let spec_path = template_path.child("spec");
    let restart_path = spec_path.child("restartPolicy");
    if restart != "OnFailure" && restart != "Never" {
        errs.push(FieldError::not_supported(
            &restart_path,
            restart,
            &["OnFailure", "Never"],
        ));
    } else if restart == "OnFailure" && has_failure_policy {
        errs.push(FieldError::invalid(
            &restart_path,
            restart,
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
}

/// `ValidateJobSpec`, and on create (`create`) `ValidateGeneratedSelector` when the selector
/// was generated (which needs the uid the caller assigns before validating).
pub(super) fn job(object: &Value, create: bool, errs: &mut Vec<FieldError>) {
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    job_spec(spec, &path, errs);
    let labels = field::dig(spec, &["template", "metadata"])
        .map(|m| string_map(m, "labels"))
        .unwrap_or_default();
    let selector = get(spec, "selector");
    match selector {
        None => errs.push(FieldError::required(path.child("selector"), "")),
        Some(selector) => field::label_selector(selector, &path.child("selector"), errs),
    }
    // A missing selector matches nothing, so upstream reports the labels too.
    if !selector.is_some_and(|s| field::selector_matches(s, &labels)) {
        errs.push(FieldError::invalid(
            path.child("template").child("metadata").child("labels"),
            Value::Object(
                labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect(),
            ),
            "`selector` does not match template `labels`",
        ));
    }
    let meta = get(object, "metadata").unwrap_or(&Value::Null);
    let uid = str_at(meta, "uid");
    if create && bool_at(spec, "manualSelector") != Some(true) && !uid.is_empty() {
        let name = str_at(meta, "name");
        let template_path = path.child("template");
        let meta_path = template_path.child("metadata");
        let labels_path = meta_path.child("labels");
        for (key, expected) in [("controller-uid", uid), ("job-name", name)] {
            let must = format!("must be '{expected}'");
            match labels.get(key) {
                None => errs.push(FieldError::required(labels_path.key(key), &must)),
                Some(actual) if actual != expected => errs.push(FieldError::invalid(
                    labels_path.key(key),
                    actual.as_str(),
                    &must,
                )),
                Some(_) => {}
            }
        }
        if let Some(selector) = get(spec, "selector") {
            let expected = [(
                "batch.kubernetes.io/controller-uid".to_owned(),
                uid.to_owned(),
            )]
            .into_iter()
            .collect();
            if !field::selector_matches(selector, &expected) {
                errs.push(FieldError::invalid(
                    path.child("selector"),
                    selector.clone(),
                    "`selector` not auto-generated",
                ));
            }
        }
    }
}

/// `ValidateJobSpecUpdate`: what a Job may not change once created.
pub(super) fn job_update(object: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    let old_spec = get(old, "spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    // Indexed Jobs may scale completions together with parallelism (elastic Jobs).
    let elastic = str_at(spec, "completionMode") == "Indexed"
        && get(spec, "completions") == get(spec, "parallelism")
        && get(old_spec, "completions") == get(old_spec, "parallelism");
    let mut fixed = vec![
        "selector",
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
    ];
    if !elastic {
        fixed.push("completions");
    }
    // A suspended Job's template may still be changed before it starts.
    if bool_at(old_spec, "suspend") != Some(true) {
        fixed.push("template");
    }
    for key in fixed {
        field::immutable(get(spec, key), get(old_spec, key), &path.child(key), errs);
    }
}

/// `ValidateCronJob` (create and update share it).
pub(super) fn cron_job(object: &Value, errs: &mut Vec<FieldError>) {
    let name = field::dig(object, &["metadata", "name"])
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.len() > CRON_JOB_NAME_MAX {
        errs.push(FieldError::invalid(
            Path::new("metadata").child("name"),
            name,
            "must be no more than 52 characters",
        ));
    }
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    field::one_of(
        str_at(spec, "concurrencyPolicy"),
        &["Allow", "Forbid", "Replace"],
        &path.child("concurrencyPolicy"),
        errs,
    );
    let schedule = str_at(spec, "schedule");
    let schedule_path = path.child("schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required(&schedule_path, ""));
    } else if schedule.contains("TZ") && get(spec, "timeZone").is_some() {
        errs.push(FieldError::invalid(
            &schedule_path,
            schedule,
            "cannot use both timeZone field and TZ or CRON_TZ in schedule",
        ));
    } else if let Err(msg) = cron::parse(schedule) {
        errs.push(FieldError::invalid(&schedule_path, schedule, &msg));
    }
    for key in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        field::nonnegative(int_at(spec, key), &path.child(key), errs);
    }
    let template = get(spec, "jobTemplate").unwrap_or(&Value::Null);
    let tp = path.child("jobTemplate");
    let job = get(template, "spec").unwrap_or(&Value::Null);
    let jp = tp.child("spec");
    job_spec(job, &jp, errs);
    if let Some(selector) = get(job, "selector") {
        errs.push(FieldError::invalid(
            jp.child("selector"),
            selector.clone(),
            "`selector` will be auto-generated",
        ));
    }
    if bool_at(job, "manualSelector") == Some(true) {
        errs.push(FieldError::not_supported(
            jp.child("manualSelector"),
            true,
            &["nil", "false"],
        ));
    }
}
