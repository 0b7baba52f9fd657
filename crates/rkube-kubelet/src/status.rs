//! The pod status the kubelet reports, computed from the spec, the runtime's containers, probe
//! results and what the worker is waiting on (upstream's generateAPIPodStatus and getPhase).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    Container as ContainerSpec, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::observed::{Container, RuntimePod, State};
use crate::sync::{ProbeState, is_sidecar};

/// What the status is computed from besides the pod and its containers.
pub struct StatusInput<'a> {
    /// Containers waiting, with reason and message (back-off, image pulls, config errors).
    pub waiting: &'a HashMap<String, (String, String)>,
    /// Probe results.
    pub probes: &'a ProbeState,
    /// The sandbox's addresses, primary first.
    pub pod_ips: &'a [String],
    /// The node's addresses.
    pub host_ips: &'a [String],
    /// Now (ns since the epoch).
    pub now: i64,
    /// The pod failed with this reason and message (e.g. DeadlineExceeded).
    pub failed: Option<(String, String)>,
}

fn time(ns: i64) -> Option<Time> {
    (ns > 0)
        .then(|| Timestamp::from_nanosecond(i128::from(ns)).ok())
        .flatten()
        .map(|t| Time(t.round(k8s_openapi::jiff::Unit::Second).unwrap_or(t)))
}

fn terminated(c: &Container) -> ContainerStateTerminated {
    let reason = if !c.reason.is_empty() && c.reason != "Completed" && c.reason != "Error" {
        c.reason.clone()
    } else if c.exit_code == 0 {
        "Completed".to_owned()
    } else {
        "Error".to_owned()
    };
    ContainerStateTerminated {
        exit_code: c.exit_code,
        reason: Some(reason),
        message: (!c.message.is_empty()).then(|| c.message.clone()),
        started_at: time(c.started_at),
        finished_at: time(c.finished_at),
        container_id: Some(format!("containerd://{}", c.id)),
        signal: None,
    }
}

fn container_status(
    spec: &ContainerSpec,
    runtime: &RuntimePod,
    input: &StatusInput<'_>,
    default_waiting: &str,
) -> ContainerStatus {
    let mut instances = runtime.instances(&spec.name);
    let latest = instances.next();
    let previous = instances.next();
    let waiting = input.waiting.get(&spec.name);
    let mut status = ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        restart_count: latest.map_or(0, |c| i32::try_from(c.attempt).unwrap_or(i32::MAX)),
        ..Default::default()
    };
    let waiting_state = |reason: &str, message: Option<String>| ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message,
        }),
        ..Default::default()
    };
    match latest {
        None => {
            let (reason, message) = waiting
                .map(|(r, m)| (r.as_str(), (!m.is_empty()).then(|| m.clone())))
                .unwrap_or((default_waiting, None));
            status.state = Some(waiting_state(reason, message));
            status.started = Some(false);
        }
        Some(c) => {
            status.container_id = Some(format!("containerd://{}", c.id));
            status.image_id = c.image_ref.clone();
            match c.state {
                State::Running => {
                    status.state = Some(ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: time(c.started_at),
                        }),
                        ..Default::default()
                    });
                    let started =
                        spec.startup_probe.is_none() || input.probes.started.contains(&c.id);
                    status.started = Some(started);
                    status.ready = started
                        && (spec.readiness_probe.is_none() || input.probes.ready.contains(&c.id));
                    if let Some(p) = previous.filter(|p| p.state == State::Exited) {
                        status.last_state = Some(ContainerState {
                            terminated: Some(terminated(p)),
                            ..Default::default()
                        });
                    }
                }
                State::Exited => {
                    status.started = Some(false);
                    if let Some((reason, message)) = waiting {
                        status.state = Some(waiting_state(
                            reason,
                            (!message.is_empty()).then(|| message.clone()),
                        ));
                        status.last_state = Some(ContainerState {
                            terminated: Some(terminated(c)),
                            ..Default::default()
                        });
                    } else {
                        status.state = Some(ContainerState {
                            terminated: Some(terminated(c)),
                            ..Default::default()
                        });
                        if let Some(p) = previous.filter(|p| p.state == State::Exited) {
                            status.last_state = Some(ContainerState {
                                terminated: Some(terminated(p)),
                                ..Default::default()
                            });
                        }
                    }
                }
                State::Created | State::Unknown => {
                    status.started = Some(false);
                    status.state = Some(waiting_state("ContainerCreating", None));
                }
            }
        }
    }
    status
}

fn condition(
    type_: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: if ok { None } else { reason },
        message: if ok { None } else { message },
        ..Default::default()
    }
}

/// The status to report for `pod`.
pub fn pod_status(pod: &Pod, runtime: &RuntimePod, input: &StatusInput<'_>) -> PodStatus {
    let old = pod.status.clone().unwrap_or_default();
    let Some(spec) = pod.spec.as_ref() else {
        return old;
    };
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let init_specs = spec.init_containers.as_deref().unwrap_or_default();
    let init_done = |s: &ContainerStatus, spec: &ContainerSpec| {
        if is_sidecar(spec) {
            s.started == Some(true)
        } else {
            s.state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0)
        }
    };
    let mut init_statuses = Vec::new();
    let mut initialized = true;
    let mut init_failed = false;
    for c in init_specs {
        let mut s = container_status(c, runtime, input, "PodInitializing");
        if !is_sidecar(c) && init_done(&s, c) {
            s.ready = true;
        }
        if !init_done(&s, c) {
            initialized = false;
            if !is_sidecar(c) && policy == "Never" {
                init_failed |= s
                    .state
                    .as_ref()
                    .and_then(|st| st.terminated.as_ref())
                    .is_some_and(|t| t.exit_code != 0);
            }
        }
        init_statuses.push(s);
    }
    // An init container that finished once counts as done for good, as upstream: the pod
    // stays initialized when a new sandbox reruns them.
    // Once a regular container has started the pod stays initialized, whatever its init
    // containers and sidecars do later (upstream's HasAnyRegularContainerStarted).
    let regular_started = spec.containers.iter().any(|c| {
        runtime
            .latest(&c.name)
            .is_some_and(|i| matches!(i.state, State::Running | State::Exited))
    });
    if regular_started || old.phase.as_deref() == Some("Succeeded") {
        initialized = true;
        init_failed = false;
    }
    // Upstream shows PodInitializing for the app containers of any pod with init containers.
    let app_default = if init_specs.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, runtime, input, app_default))
        .collect();

    let sidecars_running = init_specs
        .iter()
        .zip(&init_statuses)
        .filter(|(c, _)| is_sidecar(c))
        .any(|(_, s)| s.state.as_ref().is_some_and(|st| st.running.is_some()));
    let old_phase = old.phase.as_deref().unwrap_or_default();
    let phase = if input.failed.is_some() {
        "Failed"
    } else if old_phase == "Succeeded" || old_phase == "Failed" {
        // A pod never leaves a terminal phase.
        if old_phase == "Succeeded" {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if init_failed {
        "Failed"
    } else if !initialized {
        "Pending"
    } else {
        phase(&statuses, policy, sidecars_running)
    };

    let mut status = PodStatus {
        phase: Some(phase.to_owned()),
        host_ip: input.host_ips.first().cloned(),
        host_ips: (!input.host_ips.is_empty()).then(|| {
            input
                .host_ips
                .iter()
                .map(|ip| HostIP { ip: ip.clone() })
                .collect()
        }),
        pod_ip: input.pod_ips.first().cloned(),
        pod_ips: (!input.pod_ips.is_empty()).then(|| {
            input
                .pod_ips
                .iter()
                .map(|ip| PodIP { ip: ip.clone() })
                .collect()
        }),
        start_time: old.start_time.clone().or_else(|| time(input.now)),
        qos_class: old.qos_class.clone(),
        nominated_node_name: old.nominated_node_name.clone(),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(statuses),
        ephemeral_container_statuses: spec.ephemeral_containers.as_ref().map(|list| {
            list.iter()
                .filter_map(crate::sync::ephemeral_as_container)
                .map(|c| container_status(&c, runtime, input, "ContainerCreating"))
                .collect()
        }),
        reason: input.failed.as_ref().map(|(r, _)| r.clone()),
        message: input.failed.as_ref().map(|(_, m)| m.clone()),
        ..Default::default()
    };
    if spec.host_network == Some(true) {
        status.pod_ip = status.host_ip.clone();
        status.pod_ips = input
            .host_ips
            .first()
            .map(|ip| vec![PodIP { ip: ip.clone() }]);
    }

    let terminal = phase == "Succeeded" || phase == "Failed";
    let unready = |list: &[ContainerStatus]| -> Vec<String> {
        list.iter()
            .filter(|s| !s.ready)
            .map(|s| s.name.clone())
            .collect()
    };
    // Sidecars count for readiness as app containers do, and are named first.
    let mut not_ready: Vec<String> = init_specs
        .iter()
        .zip(status.init_container_statuses.iter().flatten())
        .filter(|(c, s)| is_sidecar(c) && !s.ready)
        .map(|(_, s)| s.name.clone())
        .collect();
    not_ready.extend(unready(
        status.container_statuses.as_deref().unwrap_or_default(),
    ));
    let incomplete: Vec<String> = init_specs
        .iter()
        .zip(status.init_container_statuses.iter().flatten())
        .filter(|(c, s)| !init_done(s, c))
        .map(|(_, s)| s.name.clone())
        .collect();
    let sandbox_ready = runtime.sandbox().is_some_and(|s| s.ready);
    let list = |names: &[String]| format!("[{}]", names.join(" "));
    let mut conditions = vec![
        condition("PodReadyToStartContainers", sandbox_ready, None, None),
        condition(
            "Initialized",
            initialized,
            Some("ContainersNotInitialized".to_owned()),
            Some(format!(
                "containers with incomplete status: {}",
                list(&incomplete)
            )),
        ),
    ];
    let (ready_reason, ready_message) = if phase == "Failed" {
        ("PodFailed".to_owned(), None)
    } else if terminal {
        ("PodCompleted".to_owned(), None)
    } else {
        (
            "ContainersNotReady".to_owned(),
            Some(format!(
                "containers with unready status: {}",
                list(&not_ready)
            )),
        )
    };
    let containers_ready = !terminal && not_ready.is_empty();
    let gate_problems: Vec<String> = spec
        .readiness_gates
        .iter()
        .flatten()
        .filter_map(|gate| {
            match old
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == gate.condition_type)
            {
                None => Some(format!(
                    "corresponding condition of pod readiness gate {:?} does not exist.",
                    gate.condition_type
                )),
                Some(c) if c.status != "True" => Some(format!(
                    "the status of pod readiness gate {:?} is not \"True\", but {}",
                    gate.condition_type, c.status
                )),
                Some(_) => None,
            }
        })
        .collect();
    let gates_ok = gate_problems.is_empty();
    conditions.push(condition(
        "ContainersReady",
        containers_ready,
        Some(ready_reason.clone()),
        ready_message.clone(),
    ));
    let (ready_reason, ready_message) = if containers_ready && !gates_ok {
        (
            "ReadinessGatesNotReady".to_owned(),
            Some(gate_problems.join(", ")),
        )
    } else {
        (ready_reason, ready_message)
    };
    conditions.push(condition(
        "Ready",
        containers_ready && gates_ok,
        Some(ready_reason),
        ready_message,
    ));
    // Conditions the kubelet does not own (PodScheduled, readiness gates, disruption) stay.
    let ours = [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ];
    let mut merged: Vec<PodCondition> = old
        .conditions
        .iter()
        .flatten()
        .filter(|c| !ours.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    // A pod the kubelet evicted says so in a DisruptionTarget condition (rejected pods, which
    // never ran, do not).
    if let Some((reason, message)) = &input.failed
        && reason == "Evicted"
        && !message.starts_with("Pod was rejected")
        && !merged.iter().any(|c| c.type_ == "DisruptionTarget")
    {
        merged.push(PodCondition {
            type_: "DisruptionTarget".to_owned(),
            status: "True".to_owned(),
            reason: Some("TerminationByKubelet".to_owned()),
            message: Some(message.clone()),
            last_transition_time: time(input.now),
            ..Default::default()
        });
    }
    let now = time(input.now);
    for mut c in conditions {
        // A condition keeps its transition time while its status stays.
        let prior = old.conditions.iter().flatten().find(|o| o.type_ == c.type_);
        c.last_transition_time = match prior {
            Some(p) if p.status == c.status => p.last_transition_time.clone(),
            _ => now.clone(),
        };
        c.last_probe_time = None;
        merged.push(c);
    }
    status.conditions = Some(merged);
    status
}

/// The phase of an initialized pod from its app containers (upstream's getPhase).
fn phase(statuses: &[ContainerStatus], policy: &str, sidecars_running: bool) -> &'static str {
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = s.state.as_ref();
        if state.is_some_and(|st| st.running.is_some()) {
            running += 1;
        } else if let Some(t) = state.and_then(|st| st.terminated.as_ref()) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.is_some_and(|st| st.waiting.is_some()) {
            match s.last_state.as_ref().and_then(|l| l.terminated.as_ref()) {
                Some(t) => {
                    stopped += 1;
                    if t.exit_code == 0 {
                        succeeded += 1;
                    }
                }
                None => waiting += 1,
            }
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == statuses.len() {
        if policy == "Always" || (sidecars_running && policy != "Never" && stopped != succeeded) {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
