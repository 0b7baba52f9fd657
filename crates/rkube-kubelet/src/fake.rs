//! A container runtime in memory that records every call: for unit tests of the pod-sync
//! logic, and for simulated nodes. Containers run until told to exit; a stopped container
//! exits at once.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::cri::v1;
use crate::observed::LABEL_POD_UID;
use crate::runtime::{ContainerRuntime, Result, RuntimeError};

#[derive(Default)]
struct State {
    next: u64,
    sandboxes: HashMap<String, v1::PodSandbox>,
    containers: HashMap<String, (v1::Container, v1::ContainerStatus)>,
    images: HashMap<String, v1::Image>,
    calls: Vec<String>,
    /// Calls are not kept (a simulated node runs for hours).
    unrecorded: bool,
    pull_errors: HashMap<String, String>,
    /// Sandbox addresses by sandbox id.
    ips: HashMap<String, String>,
    pod_cidr: Option<(Ipv4Addr, u32)>,
    /// Counts changes to sandboxes and containers (what a relist would see).
    changes: u64,
    /// Sandbox and container ids by their pod uid label (a pod's are looked up on every sync).
    by_pod: HashMap<String, Vec<String>>,
}

/// The pod uid label of a sandbox's or container's labels.
fn pod_of(labels: &HashMap<String, String>) -> &str {
    labels.get(LABEL_POD_UID).map_or("", String::as_str)
}

impl State {
    /// Files a sandbox or container id under its pod.
    fn index(&mut self, uid: &str, id: &str) {
        self.by_pod
            .entry(uid.to_owned())
            .or_default()
            .push(id.to_owned());
    }

    /// Takes ids out of their pod's entry.
    fn unindex(&mut self, uid: &str, gone: impl Fn(&str) -> bool) {
        if let Some(ids) = self.by_pod.get_mut(uid) {
            ids.retain(|id| !gone(id));
            if ids.is_empty() {
                self.by_pod.remove(uid);
            }
        }
    }

    /// The ids filed under a pod.
    fn of_pod(&self, uid: &str) -> &[String] {
        self.by_pod.get(uid).map_or(&[], Vec::as_slice)
    }

    fn record(&mut self, call: String) {
        if !self.unrecorded {
            self.calls.push(call);
        }
    }

    /// The sandbox's address: the lowest free host of the pod CIDR (after the gateway's .1),
    /// or `10.42.0.<n>` without one.
    fn allocate_ip(&self, n: u64) -> String {
        let Some((base, prefix)) = self.pod_cidr else {
            return format!("10.42.0.{}", u8::try_from(n).unwrap_or(0));
        };
        let size = 1u64 << (32 - prefix);
        let used: std::collections::HashSet<&str> = self.ips.values().map(String::as_str).collect();
        (2..size.saturating_sub(1))
            .map(|host| Ipv4Addr::from(u32::from(base).wrapping_add(host as u32)).to_string())
            .find(|ip| !used.contains(ip.as_str()))
            .unwrap_or_default()
    }
}

/// The fake runtime.
#[derive(Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
    clock: std::sync::atomic::AtomicI64,
    sandbox_delay: Duration,
    wall_clock: bool,
}

/// Tests get a counter (deterministic times); hollow nodes the wall clock, for start times a
/// user reads.
fn now(rt: &FakeRuntime) -> i64 {
    if rt.wall_clock {
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    }
    rt.clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1_000_000_000
}

impl FakeRuntime {
    /// A fake holding no images.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fake for a simulated node: every sandbox takes `sandbox_delay` to start (what pulling
    /// the pause image and setting up the network cost a real node), and calls are not kept.
    pub fn hollow(sandbox_delay: Duration) -> Self {
        let fake = Self {
            sandbox_delay,
            wall_clock: true,
            ..Self::default()
        };
        fake.lock().unrecorded = true;
        fake
    }

    /// Gives sandboxes addresses from `cidr` (the node's podCIDR, IPv4 `a.b.c.d/len`).
    pub fn set_pod_cidr(&self, cidr: &str) -> std::result::Result<(), String> {
        let (ip, len) = cidr
            .split_once('/')
            .ok_or_else(|| format!("{cidr:?} is not a CIDR"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("{cidr:?} is not IPv4"))?;
        let len: u32 = len
            .parse()
            .ok()
            .filter(|l| *l <= 30)
            .ok_or_else(|| format!("{cidr:?} has no room for pods"))?;
        let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
        self.lock().pod_cidr = Some((Ipv4Addr::from(u32::from(ip) & mask), len));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state, to change a sandbox or container.
    fn lock_to_change(&self) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.lock();
        state.changes += 1;
        state
    }

    /// The calls made so far (`RunPodSandbox name`, `CreateContainer name/attempt`, …).
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Makes pulls of `image` fail with `message`.
    pub fn fail_pulls(&self, image: &str, message: &str) {
        self.lock()
            .pull_errors
            .insert(image.to_owned(), message.to_owned());
    }

    /// Makes a running container exit with `code`.
    pub fn exit(&self, id: &str, code: i32) {
        let t = now(self);
        let mut state = self.lock_to_change();
        if let Some((c, s)) = state.containers.get_mut(id) {
            c.state = v1::ContainerState::ContainerExited as i32;
            s.state = c.state;
            s.exit_code = code;
            s.finished_at = t;
            s.reason = if code == 0 { "Completed" } else { "Error" }.to_owned();
        }
    }

    /// Ids of containers named `name`, oldest first.
    pub fn containers_named(&self, name: &str) -> Vec<String> {
        let state = self.lock();
        let mut found: Vec<(i64, String)> = state
            .containers
            .values()
            .filter(|(c, _)| c.metadata.as_ref().is_some_and(|m| m.name == name))
            .map(|(c, _)| (c.created_at, c.id.clone()))
            .collect();
        found.sort();
        found.into_iter().map(|(_, id)| id).collect()
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    fn changes(&self) -> Option<u64> {
        Some(self.lock().changes)
    }

    async fn version(&self) -> Result<v1::VersionResponse> {
        Ok(v1::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: "1.0.0".into(),
            runtime_api_version: "v1".into(),
        })
    }

    async fn run_pod_sandbox(
        &self,
        config: v1::PodSandboxConfig,
        _handler: &str,
    ) -> Result<String> {
        if !self.sandbox_delay.is_zero() {
            tokio::time::sleep(self.sandbox_delay).await;
        }
        let t = now(self);
        let mut state = self.lock_to_change();
        state.next += 1;
        let id = format!("sandbox-{}", state.next);
        let ip = state.allocate_ip(state.next);
        state.ips.insert(id.clone(), ip);
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        state.record(format!("RunPodSandbox {name}"));
        state.index(pod_of(&config.labels), &id);
        state.sandboxes.insert(
            id.clone(),
            v1::PodSandbox {
                id: id.clone(),
                metadata: config.metadata.clone(),
                state: v1::PodSandboxState::SandboxReady as i32,
                created_at: t,
                labels: config.labels.clone(),
                annotations: config.annotations.clone(),
                ..Default::default()
            },
        );
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let t = now(self);
        let mut state = self.lock_to_change();
        state.record(format!("StopPodSandbox {id}"));
        if let Some(s) = state.sandboxes.get_mut(id) {
            s.state = v1::PodSandboxState::SandboxNotready as i32;
        }
        for (c, s) in state.containers.values_mut() {
            if c.pod_sandbox_id == id && c.state == v1::ContainerState::ContainerRunning as i32 {
                c.state = v1::ContainerState::ContainerExited as i32;
                s.state = c.state;
                s.exit_code = 137;
                s.finished_at = t;
            }
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let mut state = self.lock_to_change();
        state.record(format!("RemovePodSandbox {id}"));
        if let Some(sandbox) = state.sandboxes.remove(id) {
            let uid = pod_of(&sandbox.labels).to_owned();
            let containers: Vec<String> = state
                .containers
                .values()
                .filter(|(c, _)| c.pod_sandbox_id == id)
                .map(|(c, _)| c.id.clone())
                .collect();
            for c in &containers {
                if let Some((c, _)) = state.containers.remove(c) {
                    let owner = pod_of(&c.labels).to_owned();
                    state.unindex(&owner, |i| i == c.id);
                }
            }
            state.unindex(&uid, |i| i == id);
        }
        state.ips.remove(id);
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<v1::PodSandboxStatus> {
        let state = self.lock();
        let s = state
            .sandboxes
            .get(id)
            .ok_or_else(|| RuntimeError::not_found(format!("sandbox {id}")))?;
        Ok(v1::PodSandboxStatus {
            id: id.to_owned(),
            metadata: s.metadata.clone(),
            state: s.state,
            created_at: s.created_at,
            network: Some(v1::PodSandboxNetworkStatus {
                ip: state.ips.get(id).cloned().unwrap_or_default(),
                ..Default::default()
            }),
            labels: s.labels.clone(),
            ..Default::default()
        })
    }

    async fn list_pod_sandboxes(&self, pod_uid: Option<&str>) -> Result<Vec<v1::PodSandbox>> {
        let state = self.lock();
        Ok(match pod_uid {
            Some(uid) => (state.of_pod(uid).iter())
                .filter_map(|id| state.sandboxes.get(id))
                .cloned()
                .collect(),
            None => state.sandboxes.values().cloned().collect(),
        })
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: v1::ContainerConfig,
        _sandbox_config: v1::PodSandboxConfig,
    ) -> Result<String> {
        let t = now(self);
        let mut state = self.lock_to_change();
        if !state.sandboxes.contains_key(sandbox_id) {
            return Err(RuntimeError::not_found(format!("sandbox {sandbox_id}")));
        }
        state.next += 1;
        let id = format!("container-{}", state.next);
        let meta = config.metadata.clone().unwrap_or_default();
        state.record(format!("CreateContainer {}/{}", meta.name, meta.attempt));
        let container = v1::Container {
            id: id.clone(),
            pod_sandbox_id: sandbox_id.to_owned(),
            metadata: config.metadata.clone(),
            image: config.image.clone(),
            image_ref: config
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default(),
            state: v1::ContainerState::ContainerCreated as i32,
            created_at: t,
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            ..Default::default()
        };
        let status = v1::ContainerStatus {
            id: id.clone(),
            metadata: config.metadata.clone(),
            state: container.state,
            created_at: t,
            ..Default::default()
        };
        state.index(pod_of(&container.labels), &id);
        state.containers.insert(id.clone(), (container, status));
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let t = now(self);
        let mut state = self.lock_to_change();
        state.record(format!("StartContainer {id}"));
        let (c, s) = state
            .containers
            .get_mut(id)
            .ok_or_else(|| RuntimeError::not_found(format!("container {id}")))?;
        c.state = v1::ContainerState::ContainerRunning as i32;
        s.state = c.state;
        s.started_at = t;
        Ok(())
    }

    async fn stop_container(&self, id: &str, _timeout: i64) -> Result<()> {
        let t = now(self);
        let mut state = self.lock_to_change();
        state.record(format!("StopContainer {id}"));
        if let Some((c, s)) = state.containers.get_mut(id)
            && c.state == v1::ContainerState::ContainerRunning as i32
        {
            c.state = v1::ContainerState::ContainerExited as i32;
            s.state = c.state;
            s.exit_code = 137;
            s.finished_at = t;
            s.reason = "Error".to_owned();
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let mut state = self.lock_to_change();
        state.record(format!("RemoveContainer {id}"));
        if let Some((c, _)) = state.containers.remove(id) {
            state.unindex(pod_of(&c.labels), |i| i == id);
        }
        Ok(())
    }

    async fn list_containers(&self, pod_uid: Option<&str>) -> Result<Vec<v1::Container>> {
        let state = self.lock();
        Ok(match pod_uid {
            Some(uid) => (state.of_pod(uid).iter())
                .filter_map(|id| state.containers.get(id))
                .map(|(c, _)| c.clone())
                .collect(),
            None => state.containers.values().map(|(c, _)| c.clone()).collect(),
        })
    }

    async fn container_status(&self, id: &str) -> Result<v1::ContainerStatus> {
        self.lock()
            .containers
            .get(id)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| RuntimeError::not_found(format!("container {id}")))
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        _timeout: i64,
    ) -> Result<v1::ExecSyncResponse> {
        self.lock()
            .record(format!("ExecSync {id} {}", cmd.join(" ")));
        Ok(v1::ExecSyncResponse::default())
    }

    async fn exec(&self, _request: v1::ExecRequest) -> Result<String> {
        Err(RuntimeError::other("the fake runtime does not stream"))
    }

    async fn attach(&self, _request: v1::AttachRequest) -> Result<String> {
        Err(RuntimeError::other("the fake runtime does not stream"))
    }

    async fn port_forward(&self, _sandbox_id: &str, _ports: Vec<i32>) -> Result<String> {
        Err(RuntimeError::other("the fake runtime does not stream"))
    }

    async fn pull_image(
        &self,
        image: &str,
        _auth: Option<v1::AuthConfig>,
        _sandbox_config: Option<v1::PodSandboxConfig>,
    ) -> Result<String> {
        let mut state = self.lock();
        state.record(format!("PullImage {image}"));
        if let Some(message) = state.pull_errors.get(image) {
            return Err(RuntimeError::other(message.clone()));
        }
        let id = format!("sha256:{:064x}", image.len());
        state.images.insert(
            image.to_owned(),
            v1::Image {
                id: id.clone(),
                repo_tags: vec![image.to_owned()],
                size: 1000,
                ..Default::default()
            },
        );
        Ok(id)
    }

    async fn image_status(&self, image: &str) -> Result<Option<v1::Image>> {
        let state = self.lock();
        Ok(state
            .images
            .get(image)
            .cloned()
            .or_else(|| state.images.values().find(|i| i.id == image).cloned()))
    }

    async fn list_images(&self) -> Result<Vec<v1::Image>> {
        Ok(self.lock().images.values().cloned().collect())
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        self.lock().images.remove(image);
        Ok(())
    }

    async fn list_container_stats(&self) -> Result<Vec<v1::ContainerStats>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changes_move_with_sandboxes_and_containers_only() {
        let rt = FakeRuntime::new();
        let count = || rt.changes().expect("the fake counts its changes");
        let start = count();
        let sandbox = rt
            .run_pod_sandbox(v1::PodSandboxConfig::default(), "")
            .await
            .unwrap();
        let after_sandbox = count();
        assert!(after_sandbox > start);
        rt.list_pod_sandboxes(None).await.unwrap();
        rt.list_containers(None).await.unwrap();
        rt.pod_sandbox_status(&sandbox).await.unwrap();
        rt.pull_image("busybox", None, None).await.unwrap();
        assert_eq!(
            count(),
            after_sandbox,
            "reads and pulls change nothing a relist sees"
        );
        let id = rt
            .create_container(
                &sandbox,
                v1::ContainerConfig::default(),
                v1::PodSandboxConfig::default(),
            )
            .await
            .unwrap();
        let created = count();
        assert!(created > after_sandbox);
        rt.start_container(&id).await.unwrap();
        let started = count();
        assert!(started > created);
        rt.exit(&id, 3);
        assert!(count() > started, "an exit is a change");
    }
}
