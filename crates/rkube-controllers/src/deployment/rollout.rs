//! The Deployment controller's decisions, pure: surge and unavailability budgets, how far to
//! scale the new and old ReplicaSets in a rolling update, proportional scaling, the
//! pod-template-hash, and the Deployment's status and conditions.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

/// The label that ties a ReplicaSet and its pods to one pod template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The revision of a Deployment and of each of its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The Deployment's replicas when a ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus maxSurge when a ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Annotations of a Deployment that are not copied to its ReplicaSets.
pub const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// `value` (a count or a percentage of `total`), rounding a percentage up or down.
pub fn scaled_value(value: Option<&IntOrString>, default: &str, total: i32, round_up: bool) -> i32 {
    let percent = |s: &str| s.trim_end_matches('%').parse::<i64>().unwrap_or(0);
    let n = match value {
        Some(IntOrString::Int(n)) => return *n,
        Some(IntOrString::String(s)) => percent(s),
        None => percent(default),
    };
    let product = n * i64::from(total);
    let scaled = if round_up {
        (product + 99).div_euclid(100)
    } else {
        product.div_euclid(100)
    };
    i32::try_from(scaled).unwrap_or(i32::MAX)
}

/// `(maxSurge, maxUnavailable)` for `desired` replicas, as upstream resolves them: surge rounds
/// up, unavailable rounds down, and when both come to 0 one pod may be unavailable.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> (i32, i32) {
    let surge = scaled_value(max_surge, "25%", desired, true);
    let unavailable = scaled_value(max_unavailable, "25%", desired, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Desired replicas of a Deployment (default 1).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Whether the Deployment uses the Recreate strategy.
pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        rolling.and_then(|r| r.max_surge.as_ref()),
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        replicas(d),
    )
}

/// maxSurge in pods (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i32 {
    if is_recreate(d) { 0 } else { fenceposts(d).0 }
}

/// maxUnavailable in pods, at most the replicas (0 for Recreate or no replicas).
pub fn max_unavailable(d: &Deployment) -> i32 {
    if is_recreate(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// The new ReplicaSet's replicas in a rolling update step: grow by what the surge budget
/// allows, never past the desired count. `total` is the sum of every ReplicaSet's replicas.
pub fn new_rs_replicas(desired: i32, max_surge: i32, total: i32, new: i32) -> i32 {
    if new >= desired {
        return desired;
    }
    let max_total = desired + max_surge;
    if total >= max_total {
        return new;
    }
    new + (max_total - total).min(desired - new)
}

/// An old ReplicaSet as the rolling update sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OldReplicaSet {
    /// spec.replicas
    pub replicas: i32,
    /// status.availableReplicas
    pub available: i32,
}

/// New replicas for each old ReplicaSet (given oldest first) in a rolling update step, as
/// upstream's reconcileOldReplicaSets: first shed pods that are not available, then
/// available ones, never taking availability below `desired - max_unavailable`.
pub fn scale_down_old(
    desired: i32,
    max_unavailable: i32,
    new_replicas: i32,
    new_available: i32,
    old: &[OldReplicaSet],
) -> Vec<i32> {
    let mut out: Vec<i32> = old.iter().map(|o| o.replicas).collect();
    let old_total: i32 = out.iter().sum();
    if old_total == 0 {
        return out;
    }
    let all_total = old_total + new_replicas;
    let min_available = desired - max_unavailable;
    let new_unavailable = new_replicas - new_available;
    let max_scaled_down = all_total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return out;
    }
    let mut cleaned = 0;
    for (i, o) in old.iter().enumerate() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = out[i] - o.available;
        if out[i] == 0 || unhealthy <= 0 {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(unhealthy);
        out[i] -= n;
        cleaned += n;
    }
    let available: i32 = new_available + old.iter().map(|o| o.available).sum::<i32>();
    if available <= min_available {
        return out;
    }
    let total_down = available - min_available;
    let mut done = 0;
    for slot in out.iter_mut() {
        if done >= total_down {
            break;
        }
        if *slot == 0 {
            continue;
        }
        let n = (*slot).min(total_down - done);
        *slot -= n;
        done += n;
    }
    out
}

/// A ReplicaSet as proportional scaling sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sized {
    /// spec.replicas
    pub replicas: i32,
    /// The max-replicas annotation, if any.
    pub max_replicas: Option<i32>,
}

/// Spreads a change of the Deployment's size over its active ReplicaSets in proportion to
/// their sizes (upstream's proportional scaling during a rollout). `sets` must be ordered as
/// upstream orders them: largest (newest on ties) first when growing, largest (oldest on ties)
/// first when shrinking. Returns the new replicas of each; what rounding leaves goes to the first.
pub fn proportional(sets: &[Sized], desired: i32, max_surge: i32, current_max: i32) -> Vec<i32> {
    let allowed = if desired > 0 { desired + max_surge } else { 0 };
    let total: i32 = sets.iter().map(|s| s.replicas).sum();
    let to_add = allowed - total;
    let mut out: Vec<i32> = sets.iter().map(|s| s.replicas).collect();
    if to_add == 0 {
        return out;
    }
    let mut added = 0;
    for (i, set) in sets.iter().enumerate() {
        if set.replicas == 0 && to_add < 0 {
            continue;
        }
        let fraction = if desired == 0 {
            -set.replicas
        } else {
            let annotated = set.max_replicas.unwrap_or(current_max).max(1);
            let scaled = (f64::from(set.replicas) * f64::from(allowed) / f64::from(annotated))
                .round() as i32;
            scaled - set.replicas
        };
        let left = to_add - added;
        let share = if to_add > 0 {
            fraction.clamp(0, left)
        } else {
            fraction.clamp(left, 0)
        };
        out[i] += share;
        added += share;
    }
    if let Some(first) = out.first_mut() {
        *first = (*first + to_add - added).max(0);
    }
    out
}

/// FNV-1a, 32 bits.
fn fnv32a(bytes: &[u8], mut hash: u32) -> u32 {
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The pod-template-hash of `template` with `collision_count`, computed as upstream does
/// (FNV-1a over the template, then the collision count, encoded with the alphabet that avoids
/// vowels and look-alike characters); the template's bytes are its canonical JSON form.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let json = serde_json::to_vec(&canonical(template)).unwrap_or_default();
    let mut hash = fnv32a(&json, 0x811c_9dc5);
    if let Some(count) = collision_count {
        hash = fnv32a(&(count as u32).to_le_bytes(), hash);
    }
    hash.to_string()
        .bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// `value` without the fields that hold a zero value (false, 0, "", null, {} or []), so
/// that a field written out with its zero value equals one left out, as two Go structs
/// compare upstream.
fn without_zero_values(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    fn is_zero(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
        }
    }
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, without_zero_values(v)))
                .filter(|(_, v)| !is_zero(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_zero_values).collect()),
        other => other,
    }
}

/// The template's canonical form: JSON without zero-valued fields, labels sorted.
fn canonical(template: &PodTemplateSpec) -> serde_json::Value {
    without_zero_values(serde_json::to_value(template).unwrap_or_default())
}

/// Whether two templates are the same apart from the pod-template-hash label (fields holding
/// their zero value count as absent).
pub fn equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    fn strip(t: &PodTemplateSpec) -> serde_json::Value {
        let mut t = t.clone();
        if let Some(meta) = t.metadata.as_mut()
            && let Some(labels) = meta.labels.as_mut()
        {
            labels.remove(POD_TEMPLATE_HASH);
        }
        canonical(&t)
    }
    strip(a) == strip(b)
}

/// A ReplicaSet's revision annotation (0 when missing).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The annotations a new ReplicaSet takes from its Deployment.
pub fn copied_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .collect()
}

fn rs_spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn rs_status(rs: &ReplicaSet) -> (i32, i32, i32) {
    rs.status.as_ref().map_or((0, 0, 0), |s| {
        (
            s.replicas,
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
        )
    })
}

/// Sets `cond` in `conditions` as upstream's SetDeploymentCondition: an unchanged status and
/// reason leave the existing condition alone; a changed reason with the same status keeps its
/// lastTransitionTime.
pub fn set_condition(conditions: &mut Vec<DeploymentCondition>, mut cond: DeploymentCondition) {
    if let Some(current) = conditions.iter().find(|c| c.type_ == cond.type_) {
        if current.status == cond.status && current.reason == cond.reason {
            return;
        }
        if current.status == cond.status {
            cond.last_transition_time = current.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != cond.type_);
    conditions.push(cond);
}

/// A condition stamped `now`.
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The progress deadline in seconds, if the Deployment has one (`i32::MAX` means none).
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

/// Whether the rollout is complete: every replica updated and available, nothing old left,
/// and the newest generation observed.
pub fn is_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let want = replicas(d);
    status.updated_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether the new status shows progress over the Deployment's recorded status.
pub fn is_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let v = |x: Option<i32>| x.unwrap_or(0);
    let new_old_pods = v(new.replicas) - v(new.updated_replicas);
    let cur_old_pods = v(old.replicas) - v(old.updated_replicas);
    v(new.updated_replicas) > v(old.updated_replicas)
        || new_old_pods < cur_old_pods
        || v(new.ready_replicas) > v(old.ready_replicas)
        || v(new.available_replicas) > v(old.available_replicas)
}

/// Whether the rollout ran past its progress deadline, judged from the Progressing condition.
pub fn timed_out(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(cond) = status
        .conditions
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.type_ == "Progressing"))
    else {
        return false;
    };
    match cond.reason.as_deref() {
        Some("NewReplicaSetAvailable") => false,
        Some("ProgressDeadlineExceeded") => true,
        _ => cond.last_update_time.as_ref().is_some_and(|t| {
            t.0.checked_add(std::time::Duration::from_secs(deadline.max(0) as u64))
                .is_ok_and(|at| now > at)
        }),
    }
}

/// The Deployment's status given its ReplicaSets (`new_rs` among them), with the Available,
/// ReplicaFailure and Progressing conditions, as upstream's calculateStatus and
/// syncRolloutStatus compute them. `progress` is a Progressing reason and message to record
/// first (NewReplicaSetCreated, FoundNewReplicaSet).
pub fn compute_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    progress: Option<(&str, String)>,
    now: Timestamp,
) -> DeploymentStatus {
    let old = d.status.clone().unwrap_or_default();
    let spec_total: i32 = all.iter().map(|rs| rs_spec_replicas(rs)).sum();
    let (mut replicas, mut ready, mut available) = (0, 0, 0);
    for rs in all {
        let (r, re, a) = rs_status(rs);
        replicas += r;
        ready += re;
        available += a;
    }
    let updated = new_rs.map_or(0, |rs| rs_status(rs).0);
    let mut conditions = old.conditions.clone().unwrap_or_default();
    let want = replicas_of(d);
    let available_cond = if available >= want - max_unavailable(d) {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut conditions, available_cond);
    let failure = all.iter().find_map(|rs| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
            .cloned()
    });
    match failure {
        Some(f) => set_condition(
            &mut conditions,
            condition(
                "ReplicaFailure",
                "True",
                f.reason.as_deref().unwrap_or("FailedCreate"),
                f.message.unwrap_or_default(),
                now,
            ),
        ),
        None => conditions.retain(|c| c.type_ != "ReplicaFailure"),
    }
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    if progress_deadline(d).is_some() {
        let current = conditions
            .iter()
            .find(|c| c.type_ == "Progressing")
            .cloned();
        let paused_reason =
            current.as_ref().and_then(|c| c.reason.as_deref()) == Some("DeploymentPaused");
        if paused && !paused_reason {
            set_condition(
                &mut conditions,
                condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused".into(),
                    now,
                ),
            );
        } else if !paused && paused_reason {
            set_condition(
                &mut conditions,
                condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentResumed",
                    "Deployment is resumed".into(),
                    now,
                ),
            );
        }
        if let Some((reason, message)) = progress {
            set_condition(
                &mut conditions,
                condition("Progressing", "True", reason, message, now),
            );
        }
    }
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((spec_total - available).max(0)),
        collision_count: old.collision_count,
        conditions: None,
        terminating_replicas: None,
    };
    if progress_deadline(d).is_some() && !paused {
        let current = conditions
            .iter()
            .find(|c| c.type_ == "Progressing")
            .cloned();
        let already_complete = status.replicas == status.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some("NewReplicaSetAvailable");
        let rs_name = new_rs
            .and_then(|rs| rs.metadata.name.clone())
            .unwrap_or_default();
        status.conditions = Some(conditions.clone());
        if !already_complete {
            if is_complete(d, &status) {
                set_condition(
                    &mut conditions,
                    condition(
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        format!("ReplicaSet {rs_name:?} has successfully progressed."),
                        now,
                    ),
                );
            } else if is_progressing(d, &status) {
                let mut cond = condition(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    format!("ReplicaSet {rs_name:?} is progressing."),
                    now,
                );
                if let Some(c) = current.as_ref().filter(|c| c.status == "True") {
                    cond.last_transition_time = c.last_transition_time.clone();
                }
                conditions.retain(|c| c.type_ != "Progressing");
                conditions.push(cond);
            } else if timed_out(d, &status, now) {
                set_condition(
                    &mut conditions,
                    condition(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        format!("ReplicaSet {rs_name:?} has timed out progressing."),
                        now,
                    ),
                );
            }
        }
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    status
}

fn replicas_of(d: &Deployment) -> i32 {
    replicas(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn surge_rounds_up_and_unavailable_rounds_down() {
        assert_eq!(resolve_fenceposts(None, None, 10), (3, 2));
        assert_eq!(resolve_fenceposts(None, None, 1), (1, 0));
        assert_eq!(
            resolve_fenceposts(Some(&pct("0%")), Some(&pct("10%")), 5),
            (0, 1)
        );
        assert_eq!(
            resolve_fenceposts(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 5),
            (0, 1),
            "both zero leaves one pod of room"
        );
        assert_eq!(
            resolve_fenceposts(Some(&pct("50%")), Some(&IntOrString::Int(2)), 3),
            (2, 2)
        );
    }

    #[test]
    fn the_new_replica_set_grows_within_the_surge() {
        // 10 desired, surge 3: from nothing the new set may take 3.
        assert_eq!(new_rs_replicas(10, 3, 10, 0), 3);
        assert_eq!(new_rs_replicas(10, 3, 13, 3), 3, "budget spent");
        assert_eq!(new_rs_replicas(10, 3, 11, 9), 10, "never past desired");
        assert_eq!(
            new_rs_replicas(10, 3, 15, 12),
            10,
            "shrinks back to desired"
        );
    }

    #[test]
    fn old_replica_sets_shed_unavailable_pods_first_then_keep_min_available() {
        // 10 desired, max unavailable 2, new set has 3 (none available), old has 10 available.
        assert_eq!(
            scale_down_old(
                10,
                2,
                3,
                0,
                &[OldReplicaSet {
                    replicas: 10,
                    available: 10
                }]
            ),
            [8]
        );
        // Old set with 4 unavailable pods: they go first, within the budget of 2.
        assert_eq!(
            scale_down_old(
                10,
                2,
                0,
                0,
                &[OldReplicaSet {
                    replicas: 10,
                    available: 6
                }]
            ),
            [8]
        );
        assert_eq!(
            scale_down_old(
                10,
                2,
                0,
                0,
                &[OldReplicaSet {
                    replicas: 12,
                    available: 8
                }]
            ),
            [8]
        );
        // Nothing may go while availability is at the minimum.
        assert_eq!(
            scale_down_old(
                10,
                2,
                3,
                0,
                &[OldReplicaSet {
                    replicas: 8,
                    available: 8
                }]
            ),
            [8]
        );
        // Oldest first.
        assert_eq!(
            scale_down_old(
                4,
                1,
                4,
                4,
                &[
                    OldReplicaSet {
                        replicas: 1,
                        available: 1
                    },
                    OldReplicaSet {
                        replicas: 2,
                        available: 2
                    }
                ]
            ),
            [0, 0]
        );
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        // 10 → 20 with surge 3 (max 13 → 23): a 7/6 split grows to about 12/11.
        let sets = [
            Sized {
                replicas: 7,
                max_replicas: Some(13),
            },
            Sized {
                replicas: 6,
                max_replicas: Some(13),
            },
        ];
        let out = proportional(&sets, 20, 3, 13);
        assert_eq!(out.iter().sum::<i32>(), 23);
        assert_eq!(out, [12, 11]);
        let down = proportional(&sets, 5, 2, 13);
        assert_eq!(down.iter().sum::<i32>(), 7);
    }

    #[test]
    fn the_template_hash_is_stable_and_changes_with_the_template_and_collisions() {
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
        }))
        .unwrap();
        let h = pod_template_hash(&t, None);
        assert_eq!(h, pod_template_hash(&t.clone(), None));
        assert!(h.len() <= 10 && h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_ne!(h, pod_template_hash(&t, Some(1)));
        let mut t2 = t.clone();
        t2.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        assert_ne!(h, pod_template_hash(&t2, None));
        let mut hashed = t.clone();
        hashed
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_HASH.into(), h.clone());
        assert!(equal_ignoring_hash(&hashed, &t));
        assert!(!equal_ignoring_hash(&hashed, &t2));
        let mut explicit = t.clone();
        explicit.spec.as_mut().unwrap().containers[0].stdin = Some(false);
        explicit.spec.as_mut().unwrap().host_network = Some(false);
        assert!(
            equal_ignoring_hash(&explicit, &t),
            "zero values count as absent"
        );
        assert_eq!(pod_template_hash(&explicit, None), h);
    }
}
