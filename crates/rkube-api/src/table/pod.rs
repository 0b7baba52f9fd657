//! Pods and pod templates: READY, STATUS and RESTARTS as upstream's `printPod` derives them.

use jiff::Timestamp;
use serde_json::Value;

use super::desc::{POD_GATES, POD_IP, POD_NODE, POD_NOMINATED};
use super::format::{
    age, at, condition_status, containers, flag, format_labels, has, human, int, list, name,
    or_none, text, time,
};
use super::{AGE, Column, NAME, col, wide};

/// `kubectl get pods`.
pub(super) const POD: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", POD_IP),
    wide("Node", "string", POD_NODE),
    wide("Nominated Node", "string", POD_NOMINATED),
    wide("Readiness Gates", "string", POD_GATES),
];

/// The reason a pod on an unreachable node is being deleted for (upstream's
/// `NodeUnreachablePodReason`).
const NODE_LOST: &str = "NodeLost";

/// Restart counts and the latest restart time, over some of a pod's containers.
#[derive(Default, Clone, Copy)]
struct Restarts {
    count: i64,
    last: Option<Timestamp>,
}

impl Restarts {
    fn add(&mut self, status: &Value) {
        self.count += int(status, &["restartCount"]);
        let finished = time(text(status, &["lastState", "terminated", "finishedAt"]));
        if finished > self.last {
            self.last = finished;
        }
    }
}

/// A terminated state's reason, or `Signal:N` / `ExitCode:N` when it gives none.
fn terminated_reason(terminated: &Value) -> String {
    let reason = text(terminated, &["reason"]);
    if !reason.is_empty() {
        return reason.to_owned();
    }
    let signal = int(terminated, &["signal"]);
    if signal != 0 {
        format!("Signal:{signal}")
    } else {
        format!("ExitCode:{}", int(terminated, &["exitCode"]))
    }
}

/// One pod's row.
pub(super) fn pod(pod: &Value, now: Timestamp) -> Vec<Value> {
    let init_specs = list(pod, &["spec", "initContainers"]);
    // Sidecars (init containers that restart always) count as containers of the pod.
    let is_sidecar = |container_name: &str| {
        init_specs.iter().any(|c| {
            text(c, &["name"]) == container_name && text(c, &["restartPolicy"]) == "Always"
        })
    };
    let sidecars = init_specs
        .iter()
        .filter(|c| text(c, &["restartPolicy"]) == "Always")
        .count();
    let total = list(pod, &["spec", "containers"]).len() + sidecars;
    let mut ready = 0usize;

    let phase = text(pod, &["status", "phase"]);
    let status_reason = text(pod, &["status", "reason"]);
    let mut reason = if status_reason.is_empty() {
        phase.to_owned()
    } else {
        status_reason.to_owned()
    };
    let conditions = list(pod, &["status", "conditions"]);
    if conditions
        .iter()
        .any(|c| text(c, &["type"]) == "PodScheduled" && text(c, &["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".to_owned();
    }

    let mut all = Restarts::default();
    let mut of_sidecars = Restarts::default();
    let mut initializing = false;
    for (i, status) in list(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        all.add(status);
        let sidecar = is_sidecar(text(status, &["name"]));
        if sidecar {
            of_sidecars.add(status);
        }
        let terminated = at(status, &["state", "terminated"]);
        let waiting_reason = text(status, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && flag(status, &["started"]) {
            if flag(status, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(terminated) = terminated {
            format!("Init:{}", terminated_reason(terminated))
        } else if has(status, &["state", "waiting"])
            && !waiting_reason.is_empty()
            && waiting_reason != "PodInitializing"
        {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    let mut restarts = all;
    if !initializing || condition_status(conditions, "Initialized") == Some("True") {
        restarts = of_sidecars;
        let mut has_running = false;
        for status in list(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts.add(status);
            let waiting_reason = text(status, &["state", "waiting", "reason"]);
            if has(status, &["state", "waiting"]) && !waiting_reason.is_empty() {
                reason = waiting_reason.to_owned();
            } else if let Some(terminated) = at(status, &["state", "terminated"]) {
                reason = terminated_reason(terminated);
            } else if flag(status, &["ready"]) && has(status, &["state", "running"]) {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed while another still runs is not "Completed".
        if reason == "Completed" && has_running {
            reason = if conditions
                .iter()
                .any(|c| text(c, &["type"]) == "Ready" && text(c, &["status"]) == "True")
            {
                "Running".to_owned()
            } else {
                "NotReady".to_owned()
            };
        }
    }

    let deleting = has(pod, &["metadata", "deletionTimestamp"]);
    if deleting && status_reason == NODE_LOST {
        reason = "Unknown".to_owned();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_owned();
    }

    let restarts_cell = match restarts.last {
        Some(last) if restarts.count != 0 => {
            format!(
                "{} ({} ago)",
                restarts.count,
                human(now.duration_since(last))
            )
        }
        _ => restarts.count.to_string(),
    };

    // Upstream's conversion from v1 makes `podIP` the first of `podIPs` when it is set.
    let ip = match text(pod, &["status", "podIP"]) {
        "" => list(pod, &["status", "podIPs"])
            .first()
            .map_or("", |ip| text(ip, &["ip"])),
        ip => ip,
    };
    let gates = list(pod, &["spec", "readinessGates"]);
    let gates_cell = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let true_gates = gates
            .iter()
            .filter(|gate| {
                condition_status(conditions, text(gate, &["conditionType"])) == Some("True")
            })
            .count();
        format!("{true_gates}/{}", gates.len())
    };

    vec![
        name(pod),
        Value::from(format!("{ready}/{total}")),
        Value::from(reason),
        Value::from(restarts_cell),
        age(pod, now),
        Value::from(or_none(ip)),
        Value::from(or_none(text(pod, &["spec", "nodeName"]))),
        Value::from(or_none(text(pod, &["status", "nominatedNodeName"]))),
        Value::from(gates_cell),
    ]
}

/// `kubectl get podtemplates`.
pub(super) const POD_TEMPLATE: &[Column] = &[
    NAME,
    col(
        "Containers",
        "string",
        "Names of each container in the template.",
    ),
    col(
        "Images",
        "string",
        "Images referenced by each container in the template.",
    ),
    col("Pod Labels", "string", "The labels for the pod template."),
];

/// One pod template's row.
pub(super) fn pod_template(template: &Value, _now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(list(template, &["template", "spec", "containers"]));
    vec![
        name(template),
        names,
        images,
        Value::from(format_labels(at(
            template,
            &["template", "metadata", "labels"],
        ))),
    ]
}
