//! Controllers of pods: ReplicationController and the apps kinds (Deployment, ReplicaSet,
//! StatefulSet, DaemonSet, ControllerRevision).

use serde_json::Value;

use super::field::{self, IMMUTABLE, Path, get, int_at, str_at, string_map};
use super::pod;
use crate::error::FieldError;

const DOES_NOT_MATCH: &str = "`selector` does not match template `labels`";

/// The spec, or null.
fn spec_of(object: &Value) -> &Value {
    get(object, "spec").unwrap_or(&Value::Null)
}

/// The template's labels.
fn template_labels(spec: &Value) -> std::collections::BTreeMap<String, String> {
    field::dig(spec, &["template", "metadata"])
        .map(|m| string_map(m, "labels"))
        .unwrap_or_default()
}

/// Required, strictly valid, non-empty selector (`kind` names the owner in the message).
fn selector_required(spec: &Value, path: &Path, kind: &str, errs: &mut Vec<FieldError>) {
    let p = path.child("selector");
    match get(spec, "selector") {
        None => errs.push(FieldError::required(&p, "")),
        Some(selector) => {
            field::label_selector(selector, &p, errs);
            if field::selector_is_empty(selector) {
                errs.push(FieldError::invalid(
                    &p,
                    selector.clone(),
                    &format!("empty selector is invalid for {kind}"),
                ));
            }
        }
    }
}

/// The selector matches the template's labels (when there is a non-empty selector).
///
/// A missing selector matches nothing, so upstream reports the template's labels too.
fn selector_matches_template(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let labels = template_labels(spec);
    let matches = match get(spec, "selector") {
        None => false,
        Some(selector) => {
            field::selector_is_empty(selector) || field::selector_matches(selector, &labels)
        }
    };
    if !matches {
        errs.push(FieldError::invalid(
            path.child("template").child("metadata").child("labels"),
            labels_value(&labels),
            DOES_NOT_MATCH,
        ));
    }
}

fn labels_value(labels: &std::collections::BTreeMap<String, String>) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect(),
    )
}

/// Templates of long-running controllers: restartPolicy Always, no active deadline.
fn always_restarting(spec: &Value, path: &Path, owner: &str, errs: &mut Vec<FieldError>) {
    let template_spec = field::dig(spec, &["template", "spec"]).unwrap_or(&Value::Null);
    let template_path = path.child("template");
    let p = template_path.child("spec");
    let policy = str_at(template_spec, "restartPolicy");
    if policy != "Always" {
        errs.push(FieldError::not_supported(
            p.child("restartPolicy"),
            policy,
            &["Always"],
        ));
    }
    if get(template_spec, "activeDeadlineSeconds").is_some() {
        errs.push(FieldError::forbidden(
            p.child("activeDeadlineSeconds"),
            &format!("activeDeadlineSeconds in {owner} is not Supported"),
        ));
    }
}

/// `spec.selector` may not change (the strategies of the apps/v1 kinds).
pub(super) fn selector_immutable(object: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let new = get(spec_of(object), "selector");
    let old = get(spec_of(old), "selector");
    if new != old {
        errs.push(FieldError::invalid(
            Path::new("spec").child("selector"),
            new.cloned().unwrap_or(Value::Null),
            IMMUTABLE,
        ));
    }
}

/// `ValidateDeploymentSpec`.
pub(super) fn deployment(object: &Value, errs: &mut Vec<FieldError>) {
    let spec = spec_of(object);
    let path = Path::new("spec");
    field::nonnegative(int_at(spec, "replicas"), &path.child("replicas"), errs);
    selector_required(spec, &path, "deployment", errs);
    replica_set_template(spec, &path, "ReplicaSet", errs);
    let strategy = get(spec, "strategy").unwrap_or(&Value::Null);
    let sp = path.child("strategy");
    match str_at(strategy, "type") {
        "Recreate" => {
            if get(strategy, "rollingUpdate").is_some() {
                errs.push(FieldError::forbidden(
                    sp.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match get(strategy, "rollingUpdate") {
            None => errs.push(FieldError::required(
                sp.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )),
            Some(rolling) => {
                let rp = sp.child("rollingUpdate");
                let unavailable = get(rolling, "maxUnavailable");
                let surge = get(rolling, "maxSurge");
                field::int_or_percent(unavailable, &rp.child("maxUnavailable"), errs);
                field::int_or_percent(surge, &rp.child("maxSurge"), errs);
                if field::int_or_percent_value(unavailable) == 0
                    && field::int_or_percent_value(surge) == 0
                {
                    errs.push(FieldError::invalid(
                        rp.child("maxUnavailable"),
                        unavailable.cloned().unwrap_or(Value::from(0)),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_over_100(unavailable, &rp.child("maxUnavailable"), errs);
            }
        },
        other => errs.push(FieldError::not_supported(
            &sp,
            other,
            &["Recreate", "RollingUpdate"],
        )),
    }
    let min_ready = int_at(spec, "minReadySeconds");
    field::nonnegative(min_ready, &path.child("minReadySeconds"), errs);
    field::nonnegative(
        int_at(spec, "revisionHistoryLimit"),
        &path.child("revisionHistoryLimit"),
        errs,
    );
    if let Some(deadline) = int_at(spec, "progressDeadlineSeconds") {
        field::nonnegative(Some(deadline), &path.child("progressDeadlineSeconds"), errs);
        if deadline <= min_ready.unwrap_or(0) {
            errs.push(FieldError::invalid(
                path.child("progressDeadlineSeconds"),
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
}

fn not_over_100(value: Option<&Value>, path: &Path, errs: &mut Vec<FieldError>) {
    if let Some(Value::String(s)) = value
        && field::is_percent(s)
        && field::int_or_percent_value(value) > 100
    {
        errs.push(FieldError::invalid(
            path,
            s.as_str(),
            "must not be greater than 100%",
        ));
    }
}

/// `ValidatePodTemplateSpecForReplicaSet` (also used by Deployments).
/// The template is a struct upstream, never nil: a missing one is validated as empty.
fn replica_set_template(spec: &Value, path: &Path, owner: &str, errs: &mut Vec<FieldError>) {
    let template = get(spec, "template").unwrap_or(&Value::Null);
    selector_matches_template(spec, path, errs);
    pod::template(Some(template), &path.child("template"), errs);
    always_restarting(spec, path, owner, errs);
}

/// `ValidateReplicaSetSpec`.
pub(super) fn replica_set(object: &Value, errs: &mut Vec<FieldError>) {
    let spec = spec_of(object);
    let path = Path::new("spec");
    field::nonnegative(int_at(spec, "replicas"), &path.child("replicas"), errs);
    field::nonnegative(
        int_at(spec, "minReadySeconds"),
        &path.child("minReadySeconds"),
        errs,
    );
    selector_required(spec, &path, "deployment", errs);
    replica_set_template(spec, &path, "ReplicaSet", errs);
}

/// `ValidateReplicationControllerSpec`: its selector is a plain map.
pub(super) fn replication_controller(object: &Value, errs: &mut Vec<FieldError>) {
    let spec = spec_of(object);
    let path = Path::new("spec");
    field::nonnegative(int_at(spec, "replicas"), &path.child("replicas"), errs);
    field::nonnegative(
        int_at(spec, "minReadySeconds"),
        &path.child("minReadySeconds"),
        errs,
    );
    let selector = string_map(spec, "selector");
    if selector.is_empty() {
        errs.push(FieldError::required(path.child("selector"), ""));
    } else {
        field::labels(get(spec, "selector"), &path.child("selector"), errs);
    }
    let template = get(spec, "template");
    if template.is_some() {
        let labels = template_labels(spec);
        if !selector.is_empty() && !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            errs.push(FieldError::invalid(
                path.child("template").child("metadata").child("labels"),
                labels_value(&labels),
                DOES_NOT_MATCH,
            ));
        }
    }
    pod::template(template, &path.child("template"), errs);
    if template.is_some() {
        always_restarting(spec, &path, "ReplicationController", errs);
    }
}

/// `ValidateStatefulSetSpec`. Upstream does not validate the pod template's spec here (its
/// volumes come partly from the claim templates), only its labels and annotations.
pub(super) fn stateful_set(object: &Value, errs: &mut Vec<FieldError>) {
    let spec = spec_of(object);
    let path = Path::new("spec");
    match str_at(spec, "podManagementPolicy") {
        "" => errs.push(FieldError::required(path.child("podManagementPolicy"), "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            path.child("podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let strategy = get(spec, "updateStrategy").unwrap_or(&Value::Null);
    let sp = path.child("updateStrategy");
    match str_at(strategy, "type") {
        "" => errs.push(FieldError::required(&sp, "")),
        "OnDelete" => {
            if let Some(rolling) = get(strategy, "rollingUpdate") {
                errs.push(FieldError::invalid(
                    sp.child("rollingUpdate"),
                    rolling.clone(),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(rolling) = get(strategy, "rollingUpdate") {
                let rp = sp.child("rollingUpdate");
                field::nonnegative(int_at(rolling, "partition"), &rp.child("partition"), errs);
                if let Some(max) = get(rolling, "maxUnavailable") {
                    field::int_or_percent(Some(max), &rp.child("maxUnavailable"), errs);
                    if field::int_or_percent_value(Some(max)) == 0 {
                        errs.push(FieldError::invalid(
                            rp.child("maxUnavailable"),
                            max.clone(),
                            "cannot be 0",
                        ));
                    }
                    not_over_100(Some(max), &rp.child("maxUnavailable"), errs);
                }
            }
        }
        _ => errs.push(FieldError::invalid(
            &sp,
            strategy.clone(),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    if let Some(policy) = get(spec, "persistentVolumeClaimRetentionPolicy") {
        let pp = path.child("persistentVolumeClaimRetentionPolicy");
        for key in ["whenDeleted", "whenScaled"] {
            let value = str_at(policy, key);
            if !["Retain", "Delete"].contains(&value) {
                errs.push(FieldError::not_supported(
                    pp.child(key),
                    value,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    field::nonnegative(int_at(spec, "replicas"), &path.child("replicas"), errs);
    field::nonnegative(
        int_at(spec, "minReadySeconds"),
        &path.child("minReadySeconds"),
        errs,
    );
    if let Some(start) = get(spec, "ordinals").and_then(|o| int_at(o, "start")) {
        field::nonnegative(Some(start), &path.child("ordinals.start"), errs);
    }
    selector_required(spec, &path, "statefulset", errs);
    selector_matches_template(spec, &path, errs);
    let meta = field::dig(spec, &["template", "metadata"]).unwrap_or(&Value::Null);
    let tp = path.child("template");
    field::labels(get(meta, "labels"), &tp.child("labels"), errs);
    field::annotations(get(meta, "annotations"), &tp.child("annotations"), errs);
    always_restarting(spec, &path, "StatefulSet", errs);
}

/// `ValidateStatefulSetUpdate`: only some of the spec may change.
pub(super) fn stateful_set_update(object: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let mutable = [
        "replicas",
        "template",
        "updateStrategy",
        "minReadySeconds",
        "ordinals",
        "persistentVolumeClaimRetentionPolicy",
    ];
    let strip = |spec: &Value| -> Value {
        let mut spec = spec.clone();
        if let Some(m) = spec.as_object_mut() {
            for key in mutable {
                m.remove(key);
            }
        }
        spec
    };
    if strip(spec_of(object)) != strip(spec_of(old)) {
        errs.push(FieldError::forbidden(
            Path::new("spec"),
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', \
             'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and \
             'minReadySeconds' are forbidden",
        ));
    }
}

/// `ValidateDaemonSetSpec`.
pub(super) fn daemon_set(object: &Value, errs: &mut Vec<FieldError>) {
    let spec = spec_of(object);
    let path = Path::new("spec");
    let sel_path = path.child("selector");
    let selector = get(spec, "selector");
    let labels = template_labels(spec);
    // No Required here: upstream only finds that a missing selector matches nothing.
    if !selector.is_some_and(|s| field::selector_matches(s, &labels)) {
        errs.push(FieldError::invalid(
            path.child("template").child("metadata").child("labels"),
            labels_value(&labels),
            DOES_NOT_MATCH,
        ));
    }
    match selector {
        None => {}
        Some(selector) => {
            field::label_selector(selector, &sel_path, errs);
            if field::selector_is_empty(selector) {
                errs.push(FieldError::invalid(
                    &sel_path,
                    selector.clone(),
                    "empty selector is invalid for daemonset",
                ));
            }
        }
    }
    let template = get(spec, "template").unwrap_or(&Value::Null);
    pod::template(Some(template), &path.child("template"), errs);
    always_restarting(spec, &path, "DaemonSet", errs);
    field::nonnegative(
        int_at(spec, "minReadySeconds"),
        &path.child("minReadySeconds"),
        errs,
    );
    let strategy = get(spec, "updateStrategy").unwrap_or(&Value::Null);
    let sp = path.child("updateStrategy");
    match str_at(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => match get(strategy, "rollingUpdate") {
            None => errs.push(FieldError::required(sp.child("rollingUpdate"), "")),
            Some(rolling) => {
                let rp = sp.child("rollingUpdate");
                let unavailable = get(rolling, "maxUnavailable");
                let surge = get(rolling, "maxSurge");
                field::int_or_percent(unavailable, &rp.child("maxUnavailable"), errs);
                field::int_or_percent(surge, &rp.child("maxSurge"), errs);
                not_over_100(unavailable, &rp.child("maxUnavailable"), errs);
                not_over_100(surge, &rp.child("maxSurge"), errs);
                let has_unavailable = field::int_or_percent_value(unavailable) != 0;
                let has_surge = field::int_or_percent_value(surge) != 0;
                if has_unavailable && has_surge {
                    errs.push(FieldError::invalid(
                        rp.child("maxSurge"),
                        surge.cloned().unwrap_or(Value::Null),
                        "may not be set when maxUnavailable is non-zero",
                    ));
                } else if !has_unavailable && !has_surge {
                    errs.push(FieldError::required(
                        rp.child("maxUnavailable"),
                        "cannot be 0 when maxSurge is 0",
                    ));
                }
            }
        },
        _ => errs.push(FieldError::not_supported(
            &sp,
            strategy.clone(),
            &["RollingUpdate", "OnDelete"],
        )),
    }
    field::nonnegative(
        int_at(spec, "revisionHistoryLimit"),
        &path.child("revisionHistoryLimit"),
        errs,
    );
}

/// `ValidateControllerRevision`: data is mandatory; on update it may not change.
pub(super) fn controller_revision(object: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    if get(object, "data").is_none() {
        errs.push(FieldError::required(Path::new("data"), "data is mandatory"));
    }
    field::nonnegative(int_at(object, "revision"), &Path::new("revision"), errs);
    if let Some(old) = old {
        field::immutable(
            get(object, "data"),
            get(old, "data"),
            &Path::new("data"),
            errs,
        );
    }
}
