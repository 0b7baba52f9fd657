//! Pod facts controllers share: activity, readiness, availability (ready for
//! `minReadySeconds`), and upstream's `ActivePods` order of which pods to delete first.

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::jiff::Timestamp;

use crate::informer::{KeyIndex, SharedInformers};

/// The shared index of pods by the node they are bound to (unbound pods are in none).
pub async fn pods_by_node(informers: &SharedInformers) -> KeyIndex<Pod> {
    informers
        .key_index("spec.nodeName", |pod: &Pod| {
            pod.spec.as_ref()?.node_name.as_deref()
        })
        .await
}

/// The shared index of pods by namespace.
pub async fn pods_by_namespace(informers: &SharedInformers) -> KeyIndex<Pod> {
    informers
        .key_index("metadata.namespace", |pod: &Pod| {
            pod.metadata.namespace.as_deref()
        })
        .await
}

/// Whether the pod counts toward its controller: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When the pod last became ready, if it is.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Whether the pod is available at `now`: ready for at least `min_ready_seconds`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    match ready_since(pod) {
        Some(since) => since
            .checked_add(std::time::Duration::from_secs(min_ready_seconds as u64))
            .is_ok_and(|t| t <= now),
        None => false,
    }
}

/// How long until a ready pod becomes available, if it is ready and not yet available.
pub fn until_available(
    pod: &Pod,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<std::time::Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    let since = ready_since(pod)?;
    let at = since
        .checked_add(std::time::Duration::from_secs(min_ready_seconds as u64))
        .ok()?;
    let left = now.duration_until(at);
    (left.is_positive())
        .then(|| std::time::Duration::try_from(left).ok())
        .flatten()
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    }
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

fn is_assigned(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// `Less` when `a` is less valuable than `b` (deleted first), as upstream's `ActivePods`:
/// unassigned before assigned; Pending before Unknown before Running; not ready before ready;
/// of two ready pods the one ready for less time; more container restarts; newer.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    is_assigned(a)
        .cmp(&is_assigned(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| match (ready_since(a), ready_since(b)) {
            (Some(x), Some(y)) if is_ready(a) && is_ready(b) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then_with(|| max_restarts(b).cmp(&max_restarts(a)))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(b).cmp(&created(a))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(
        name: &str,
        node: Option<&str>,
        phase: &str,
        ready: Option<&str>,
        restarts: i32,
        created: &str,
    ) -> Pod {
        let mut conditions = vec![];
        if let Some(since) = ready {
            conditions
                .push(json!({"type": "Ready", "status": "True", "lastTransitionTime": since}));
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"containers": [], "nodeName": node},
            "status": {
                "phase": phase,
                "conditions": conditions,
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": ready.is_some(), "restartCount": restarts}],
            },
        }))
        .unwrap()
    }

    #[test]
    fn the_least_valuable_pods_come_first() {
        let t0 = "2026-01-01T00:00:00Z";
        let t1 = "2026-01-01T00:01:00Z";
        let mut pods = [
            pod("ready-old", Some("n"), "Running", Some(t0), 0, t0),
            pod("ready-new", Some("n"), "Running", Some(t1), 0, t0),
            pod("running-not-ready", Some("n"), "Running", None, 0, t0),
            pod("unknown", Some("n"), "Unknown", None, 0, t0),
            pod("pending", Some("n"), "Pending", None, 0, t0),
            pod("unscheduled", None, "Pending", None, 0, t0),
            pod("restarting", Some("n"), "Running", None, 5, t0),
            pod("newer", Some("n"), "Running", None, 0, t1),
        ];
        pods.sort_by(deletion_order);
        let names: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "unscheduled",
                "pending",
                "unknown",
                "restarting",
                "newer",
                "running-not-ready",
                "ready-new",
                "ready-old"
            ]
        );
    }

    #[test]
    fn a_pod_is_available_after_min_ready_seconds() {
        let p = pod(
            "p",
            Some("n"),
            "Running",
            Some("2026-01-01T00:00:00Z"),
            0,
            "2026-01-01T00:00:00Z",
        );
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(is_available(&p, 0, at("2026-01-01T00:00:00Z")));
        assert!(!is_available(&p, 10, at("2026-01-01T00:00:05Z")));
        assert!(is_available(&p, 10, at("2026-01-01T00:00:10Z")));
        assert_eq!(
            until_available(&p, 10, at("2026-01-01T00:00:04Z")),
            Some(std::time::Duration::from_secs(6))
        );
    }
}
