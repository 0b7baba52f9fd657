//! What the runtime holds for one pod, read from CRI listings by the labels the kubelet puts
//! on everything it creates.

use std::collections::HashMap;

use crate::cri::v1;

/// Label: the pod's name.
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// Label: the pod's namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Label: the pod's uid.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// Label: the container's name.
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Label on everything this agent made, naming the node.
pub const LABEL_MANAGED_BY_NODE: &str = "io.rkube.node";
/// Annotation: a hash of the container's spec, to notice changes (a new image).
pub const ANNOTATION_HASH: &str = "io.kubernetes.container.hash";
/// Annotation: where the termination message is written.
pub const ANNOTATION_TERMINATION_PATH: &str = "io.kubernetes.container.terminationMessagePath";
/// Annotation: the pod's grace period, for stopping containers of a pod the API forgot.
pub const ANNOTATION_GRACE: &str = "io.kubernetes.pod.terminationGracePeriod";

/// A sandbox of the pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Sandbox {
    /// The runtime's id.
    pub id: String,
    /// How many sandboxes the pod had before this one.
    pub attempt: u32,
    /// Whether it is running.
    pub ready: bool,
    /// When it was made (ns since the epoch).
    pub created_at: i64,
}

/// A container's state as the runtime reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited.
    Exited,
    /// Unknown to the runtime.
    Unknown,
}

/// One container instance of the pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Container {
    /// The runtime's id.
    pub id: String,
    /// The container's name in the pod spec.
    pub name: String,
    /// Its restart count when it was made.
    pub attempt: u32,
    /// The sandbox it runs in.
    pub sandbox_id: String,
    /// Its state.
    pub state: State,
    /// The hash of the spec it was made from.
    pub hash: String,
    /// Exit code, when exited.
    pub exit_code: i32,
    /// Made (ns since the epoch).
    pub created_at: i64,
    /// Started (ns), 0 if never.
    pub started_at: i64,
    /// Finished (ns), 0 if not.
    pub finished_at: i64,
    /// The runtime's reason (e.g. OOMKilled) for the exit.
    pub reason: String,
    /// The runtime's message (the termination message).
    pub message: String,
    /// The image reference it runs (its id).
    pub image_ref: String,
}

/// Everything the runtime holds for one pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuntimePod {
    /// Its sandboxes, newest first.
    pub sandboxes: Vec<Sandbox>,
    /// Its container instances, in no order.
    pub containers: Vec<Container>,
}

impl RuntimePod {
    /// The newest sandbox.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandboxes.first()
    }

    /// The newest instance of a container (highest attempt), in any sandbox.
    pub fn latest<'a>(&'a self, name: &'a str) -> Option<&'a Container> {
        self.instances(name).next()
    }

    /// Every instance of a container, newest first.
    pub fn instances<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Container> + 'a {
        let mut found: Vec<&Container> =
            self.containers.iter().filter(|c| c.name == name).collect();
        found.sort_by_key(|c| std::cmp::Reverse((c.attempt, c.created_at)));
        found.into_iter()
    }

    /// The newest instance of a container in the newest sandbox.
    pub fn current<'a>(&'a self, name: &'a str) -> Option<&'a Container> {
        let sandbox = self.sandbox()?;
        self.instances(name).find(|c| c.sandbox_id == sandbox.id)
    }
}

/// Groups the runtime's listings by pod uid (what carries the kubelet's labels).
pub fn group_by_pod(
    sandboxes: &[v1::PodSandbox],
    containers: &[v1::Container],
    statuses: &HashMap<String, v1::ContainerStatus>,
) -> HashMap<String, RuntimePod> {
    let mut pods: HashMap<String, RuntimePod> = HashMap::new();
    for s in sandboxes {
        let Some(uid) = s.labels.get(LABEL_POD_UID) else {
            continue;
        };
        pods.entry(uid.clone())
            .or_default()
            .sandboxes
            .push(Sandbox {
                id: s.id.clone(),
                attempt: s.metadata.as_ref().map_or(0, |m| m.attempt),
                ready: s.state == v1::PodSandboxState::SandboxReady as i32,
                created_at: s.created_at,
            });
    }
    for c in containers {
        let Some(uid) = c.labels.get(LABEL_POD_UID) else {
            continue;
        };
        let status = statuses.get(&c.id);
        let state = match v1::ContainerState::try_from(c.state) {
            Ok(v1::ContainerState::ContainerCreated) => State::Created,
            Ok(v1::ContainerState::ContainerRunning) => State::Running,
            Ok(v1::ContainerState::ContainerExited) => State::Exited,
            _ => State::Unknown,
        };
        pods.entry(uid.clone())
            .or_default()
            .containers
            .push(Container {
                id: c.id.clone(),
                name: c
                    .labels
                    .get(LABEL_CONTAINER_NAME)
                    .cloned()
                    .or_else(|| c.metadata.as_ref().map(|m| m.name.clone()))
                    .unwrap_or_default(),
                attempt: c.metadata.as_ref().map_or(0, |m| m.attempt),
                sandbox_id: c.pod_sandbox_id.clone(),
                state,
                hash: c
                    .annotations
                    .get(ANNOTATION_HASH)
                    .cloned()
                    .unwrap_or_default(),
                exit_code: status.map_or(0, |s| s.exit_code),
                created_at: c.created_at,
                started_at: status.map_or(0, |s| s.started_at),
                finished_at: status.map_or(0, |s| s.finished_at),
                reason: status.map(|s| s.reason.clone()).unwrap_or_default(),
                message: status.map(|s| s.message.clone()).unwrap_or_default(),
                image_ref: if c.image_ref.is_empty() {
                    status.map(|s| s.image_ref.clone()).unwrap_or_default()
                } else {
                    c.image_ref.clone()
                },
            });
    }
    for pod in pods.values_mut() {
        pod.sandboxes
            .sort_by_key(|s| std::cmp::Reverse((s.attempt, s.created_at)));
    }
    pods
}
