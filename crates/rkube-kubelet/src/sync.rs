//! What to do next for one pod: the pure decision the pod worker acts on, from the pod's spec,
//! what the runtime holds for it, probe results and back-off (upstream's computePodActions).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container as ContainerSpec, Pod};

use crate::backoff::Backoff;
use crate::observed::{RuntimePod, State};

/// Which list of the spec a container comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `spec.initContainers` (a sidecar when its restartPolicy is Always).
    Init,
    /// `spec.containers`.
    App,
    /// `spec.ephemeralContainers`: started once, never restarted.
    Ephemeral,
}

/// An ephemeral container as a container (the fields they share; the rest stay unset).
pub fn ephemeral_as_container(
    e: &k8s_openapi::api::core::v1::EphemeralContainer,
) -> Option<ContainerSpec> {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

/// One step for the worker.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Stop every container and the sandbox (the pod is going away, or its sandbox died).
    KillPod,
    /// Make a new sandbox.
    CreateSandbox {
        /// Its attempt number.
        attempt: u32,
    },
    /// Pull the image if needed, create and start a container.
    StartContainer {
        /// Its list.
        kind: Kind,
        /// Its index in that list.
        index: usize,
        /// Its restart count.
        attempt: u32,
    },
    /// Stop a running container.
    KillContainer {
        /// The runtime's id.
        id: String,
        /// The container's name.
        name: String,
        /// Why, for the event.
        reason: String,
    },
}

/// What the pod worker should do now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Steps, in order.
    pub actions: Vec<Action>,
    /// Containers waiting, with the reason and message their status shows.
    pub waiting: HashMap<String, (String, String)>,
    /// Sync again after this long even if nothing changes.
    pub requeue: Option<Duration>,
}

/// What probes and earlier syncs learned about the pod's containers.
#[derive(Clone, Debug, Default)]
pub struct ProbeState {
    /// Container ids whose liveness (or startup) probe says they must be restarted.
    pub restart: HashSet<String>,
    /// Container ids whose readiness probe passed last.
    pub ready: HashSet<String>,
    /// Container ids whose startup probe has passed.
    pub started: HashSet<String>,
}

/// Whether the pod is going away or has finished: then its containers are stopped.
pub fn pod_is_finished(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
        || pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed")
}

/// An init container that keeps running beside the app containers (a sidecar).
pub fn is_sidecar(c: &ContainerSpec) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// The key restart back-off uses for a container.
pub fn backoff_key(pod: &Pod, name: &str) -> String {
    format!("{}/{name}", pod.metadata.uid.as_deref().unwrap_or_default())
}

/// The hash recorded on a container, to notice when its spec changed.
pub fn container_hash(c: &ContainerSpec) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(c).unwrap_or_default().hash(&mut h);
    format!("{:x}", h.finish())
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// The restart count the next instance of `name` gets: one past the highest seen, in the
/// runtime or in the pod's last reported status (which outlives removed containers).
pub fn next_attempt(pod: &Pod, runtime: &RuntimePod, name: &str) -> u32 {
    let reported = pod
        .status
        .as_ref()
        .into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .filter(|s| s.name == name && s.container_id.is_some())
        .map(|s| u32::try_from(s.restart_count).unwrap_or(0) + 1)
        .max();
    let seen = runtime.latest(name).map(|c| c.attempt + 1);
    reported.max(seen).unwrap_or(0)
}

fn crash_loop(name: &str, pod: &Pod, wait: Duration, delay: Duration) -> (String, String) {
    let _ = wait;
    (
        "CrashLoopBackOff".to_owned(),
        format!(
            "back-off {} restarting failed container={name} pod={}_{}({})",
            format_delay(delay),
            pod.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.uid.as_deref().unwrap_or_default(),
        ),
    )
}

/// A duration as Go prints it for whole seconds and minutes (`10s`, `1m20s`, `5m0s`).
pub fn format_delay(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

/// Decides what to do next for `pod` at `now` (ns since the epoch).
pub fn plan(
    pod: &Pod,
    runtime: &RuntimePod,
    probes: &ProbeState,
    backoff: &mut Backoff,
    now: i64,
) -> Plan {
    let mut plan = Plan::default();
    if pod_is_finished(pod) {
        if runtime.sandboxes.iter().any(|s| s.ready)
            || runtime.containers.iter().any(|c| c.state == State::Running)
        {
            plan.actions.push(Action::KillPod);
        }
        return plan;
    }
    let Some(spec) = pod.spec.as_ref() else {
        return plan;
    };
    let policy = restart_policy(pod);
    let sandbox = runtime.sandbox();
    if !sandbox.is_some_and(|s| s.ready) {
        // A pod that ran and must not restart is not given a new sandbox: its containers'
        // last states decide its phase.
        if sandbox.is_some() && policy == "Never" && !runtime.containers.is_empty() {
            if runtime.containers.iter().any(|c| c.state == State::Running) {
                plan.actions.push(Action::KillPod);
            }
            return plan;
        }
        // Under OnFailure, nothing is left to start once every app container succeeded.
        let all_succeeded = policy == "OnFailure"
            && spec.containers.iter().all(|c| {
                runtime
                    .latest(&c.name)
                    .is_some_and(|l| l.state == State::Exited && l.exit_code == 0)
            });
        if sandbox.is_some() && all_succeeded {
            if runtime.containers.iter().any(|c| c.state == State::Running) {
                plan.actions.push(Action::KillPod);
            }
            return plan;
        }
        if sandbox.is_some() {
            plan.actions.push(Action::KillPod);
        }
        plan.actions.push(Action::CreateSandbox {
            attempt: sandbox.map_or(0, |s| s.attempt + 1),
        });
        plan.requeue = Some(Duration::ZERO);
        return plan;
    }

    // Init containers in order; sidecars start in order among them and keep running. Once an
    // app container has been made, the pod is initialized: regular init containers are done
    // and a sidecar's restart no longer holds back the app containers (upstream's
    // computeInitContainerActions).
    let initialized = spec.containers.iter().any(|c| {
        runtime
            .current(&c.name)
            .is_some_and(|i| matches!(i.state, State::Running | State::Created | State::Exited))
    });
    // Every start in this plan shares the pod, its runtime view, back-off and the time.
    macro_rules! start {
        ($kind:expr, $index:expr, $c:expr, $exited:expr) => {
            start(
                &mut plan, pod, runtime, $kind, $index, $c, backoff, now, $exited,
            )
        };
    }
    let init = spec.init_containers.as_deref().unwrap_or_default();
    for (index, c) in init.iter().enumerate() {
        let current = runtime.current(&c.name);
        if initialized && !is_sidecar(c) {
            continue;
        }
        if initialized {
            match current {
                Some(inst) if inst.state == State::Running && probes.restart.contains(&inst.id) => {
                    kill(
                        &mut plan,
                        inst.id.clone(),
                        &c.name,
                        "Container failed startup or liveness probe, will be restarted",
                    );
                }
                Some(inst) if inst.state == State::Running => {}
                other => {
                    let exited = other
                        .filter(|i| i.state == State::Exited)
                        .map(|i| i.finished_at);
                    start!(Kind::Init, index, c, exited);
                }
            }
            continue;
        }
        if is_sidecar(c) {
            match current {
                None => {
                    start!(Kind::Init, index, c, None);
                    return plan;
                }
                Some(inst) if inst.state == State::Exited || probes.restart.contains(&inst.id) => {
                    if inst.state != State::Exited {
                        kill(
                            &mut plan,
                            inst.id.clone(),
                            &c.name,
                            "Container failed startup or liveness probe, will be restarted",
                        );
                        return plan;
                    }
                    start!(Kind::Init, index, c, Some(inst.finished_at));
                    return plan;
                }
                Some(inst) => {
                    // The next init container waits until the sidecar has started.
                    let started = c.startup_probe.is_none() || probes.started.contains(&inst.id);
                    if inst.state != State::Running || !started {
                        plan.requeue = Some(Duration::from_secs(1));
                        return plan;
                    }
                }
            }
            continue;
        }
        match current {
            None => {
                start!(Kind::Init, index, c, None);
                return plan;
            }
            Some(inst) if inst.state == State::Exited && inst.exit_code == 0 => continue,
            Some(inst) if inst.state == State::Exited => {
                if policy == "Never" {
                    // The pod has failed; its status says so and nothing runs again.
                    return plan;
                }
                start!(Kind::Init, index, c, Some(inst.finished_at));
                return plan;
            }
            Some(inst) if inst.state == State::Created => {
                kill(
                    &mut plan,
                    inst.id.clone(),
                    &c.name,
                    "Container was created but never started",
                );
                return plan;
            }
            Some(_) => return plan,
        }
    }

    for (index, c) in spec.containers.iter().enumerate() {
        let hash = container_hash(c);
        match runtime.current(&c.name) {
            None => {
                // A container of an earlier sandbox that must not restart stays down.
                if let Some(prev) = runtime.latest(&c.name) {
                    let ok = prev.exit_code == 0;
                    if prev.state == State::Exited
                        && (policy == "Never" || (policy == "OnFailure" && ok))
                    {
                        continue;
                    }
                }
                start!(Kind::App, index, c, None);
            }
            Some(inst) if inst.state == State::Running || inst.state == State::Created => {
                if probes.restart.contains(&inst.id) {
                    let reason = if c.startup_probe.is_some() && !probes.started.contains(&inst.id)
                    {
                        "Container failed startup probe, will be restarted"
                    } else {
                        "Container failed liveness probe, will be restarted"
                    };
                    kill(&mut plan, inst.id.clone(), &c.name, reason);
                } else if !inst.hash.is_empty() && inst.hash != hash {
                    kill(
                        &mut plan,
                        inst.id.clone(),
                        &c.name,
                        "Container definition changed, will be restarted",
                    );
                } else if inst.state == State::Created {
                    kill(
                        &mut plan,
                        inst.id.clone(),
                        &c.name,
                        "Container was created but never started",
                    );
                }
            }
            Some(inst) => {
                let restart = match policy {
                    "Never" => false,
                    "OnFailure" => inst.exit_code != 0,
                    _ => true,
                };
                if restart {
                    start!(Kind::App, index, c, Some(inst.finished_at));
                }
            }
        }
    }
    if initialized {
        plan_ephemeral(&mut plan, pod, runtime);
    }
    plan
}

/// Ephemeral containers not yet started are started once the pod runs (upstream never
/// restarts them).
fn plan_ephemeral(plan: &mut Plan, pod: &Pod, runtime: &RuntimePod) {
    let Some(spec) = pod.spec.as_ref() else {
        return;
    };
    for (index, e) in spec.ephemeral_containers.iter().flatten().enumerate() {
        if runtime.latest(&e.name).is_none() {
            plan.actions.push(Action::StartContainer {
                kind: Kind::Ephemeral,
                index,
                attempt: 0,
            });
        }
    }
}

fn kill(plan: &mut Plan, id: String, name: &str, reason: &str) {
    plan.actions.push(Action::KillContainer {
        id,
        name: name.to_owned(),
        reason: reason.to_owned(),
    });
    plan.requeue = Some(Duration::ZERO);
}

/// Plans a container start, unless its restart back-off holds it (then it waits in
/// CrashLoopBackOff and the pod is synced again when the back-off ends).
#[allow(clippy::too_many_arguments)]
fn start(
    plan: &mut Plan,
    pod: &Pod,
    runtime: &RuntimePod,
    kind: Kind,
    index: usize,
    c: &ContainerSpec,
    backoff: &mut Backoff,
    now: i64,
    exited_at: Option<i64>,
) {
    let key = backoff_key(pod, &c.name);
    if let Some(finished) = exited_at {
        if let Some(wait) = backoff.remaining(&key, finished, now) {
            let delay = backoff.delay(&key).unwrap_or(wait);
            plan.waiting
                .insert(c.name.clone(), crash_loop(&c.name, pod, wait, delay));
            plan.requeue = Some(plan.requeue.map_or(wait, |r| r.min(wait)));
            return;
        }
        backoff.next(&key, now);
    }
    plan.actions.push(Action::StartContainer {
        kind,
        index,
        attempt: next_attempt(pod, runtime, &c.name),
    });
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
