//! Pod-level cgroups, as upstream's pod container manager makes them: before a pod's sandbox
//! starts, its cgroup (`<root>/kubepods[/burstable|/besteffort]/pod<uid>`) is made and given
//! the pod's CPU shares (or weight), CPU quota and memory limit — the sums over its containers,
//! the limits only when every container declares one — so the pod as a whole is held to what
//! it declared, whatever its containers do between them. The cgroupfs layout on cgroup v1 and
//! v2; with the systemd driver the pod's slice is made by runc and the containers' own limits
//! apply.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::podconfig::{NodeSettings, cgroup_parent, millis, units};

/// The CFS period limits are expressed in (µs), as upstream's.
const CPU_PERIOD: i64 = 100_000;
const MIN_SHARES: i64 = 2;
const MAX_SHARES: i64 = 262_144;

/// What a pod's cgroup is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PodResources {
    /// cgroup v1 cpu.shares.
    pub cpu_shares: i64,
    /// CFS quota per period (µs), when every container has a cpu limit.
    pub cpu_quota: Option<i64>,
    /// Bytes, when every container has a memory limit.
    pub memory_limit: Option<i64>,
}

impl PodResources {
    /// cgroup v2 cpu.weight for the shares (the conversion runc and upstream use).
    pub fn cpu_weight(&self) -> i64 {
        1 + ((self.cpu_shares - 2) * 9999) / 262_142
    }
}

fn quantity(c: &Container, kind: &str, resource: &str) -> Option<i64> {
    let list = c.resources.as_ref().and_then(|r| match kind {
        "requests" => r.requests.as_ref(),
        _ => r.limits.as_ref(),
    })?;
    let q = list.get(resource)?;
    if resource == "cpu" {
        millis(q)
    } else {
        units(q)
    }
}

/// Sum over app containers, or the largest init container's if that is more (upstream's pod
/// requests and limits); `None` when a container does not declare it.
fn pod_total(pod: &Pod, kind: &str, resource: &str) -> Option<i64> {
    let spec = pod.spec.as_ref()?;
    let of = |c: &Container| {
        let own = quantity(c, kind, resource);
        // A request not given defaults to the limit.
        if kind == "requests" {
            own.or_else(|| quantity(c, "limits", resource))
        } else {
            own
        }
        .filter(|v| *v > 0)
    };
    let mut app = 0i64;
    for c in &spec.containers {
        app += of(c)?;
    }
    let mut init = 0i64;
    for c in spec.init_containers.iter().flatten() {
        init = init.max(of(c)?);
    }
    Some(app.max(init))
}

/// The pod cgroup's settings for `pod`.
pub fn pod_resources(pod: &Pod) -> PodResources {
    let cpu_request = pod_total_requested(pod, "cpu");
    let cpu_shares = if crate::podconfig::qos_class(pod) == "BestEffort" {
        MIN_SHARES
    } else {
        (cpu_request * 1024 / 1000).clamp(MIN_SHARES, MAX_SHARES)
    };
    PodResources {
        cpu_shares,
        cpu_quota: pod_total(pod, "limits", "cpu").map(|m| (m * CPU_PERIOD / 1000).max(1000)),
        memory_limit: pod_total(pod, "limits", "memory"),
    }
}

/// Requests summed over the containers that have them (a container without one adds nothing).
fn pod_total_requested(pod: &Pod, resource: &str) -> i64 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let of = |c: &Container| {
        quantity(c, "requests", resource)
            .or_else(|| quantity(c, "limits", resource))
            .unwrap_or(0)
            .max(0)
    };
    let app: i64 = spec.containers.iter().map(of).sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(of)
        .max()
        .unwrap_or(0);
    app.max(init)
}

fn unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The pod cgroup's directories: (cpu, memory) on v1, the one unified directory on v2.
fn dirs(settings: &NodeSettings, pod: &Pod) -> Vec<(&'static str, PathBuf)> {
    let relative = cgroup_parent(settings, pod)
        .trim_start_matches('/')
        .to_owned();
    if unified() {
        vec![("unified", Path::new("/sys/fs/cgroup").join(relative))]
    } else {
        vec![
            ("cpu", Path::new("/sys/fs/cgroup/cpu").join(&relative)),
            ("memory", Path::new("/sys/fs/cgroup/memory").join(&relative)),
        ]
    }
}

fn write(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(file), value).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("writing {}: {e}", dir.join(file).display()),
        )
    })
}

/// On v2 a controller can be set in a directory only once every ancestor delegates it.
fn delegate(dir: &Path) {
    let root = Path::new("/sys/fs/cgroup");
    let mut ancestors: Vec<&Path> = dir
        .ancestors()
        .skip(1)
        .take_while(|a| a.starts_with(root))
        .collect();
    ancestors.reverse();
    for a in ancestors {
        for controller in ["+cpu", "+memory", "+pids"] {
            let _ = std::fs::write(a.join("cgroup.subtree_control"), controller);
        }
    }
}

/// Makes the pod's cgroup and sets its limits (cgroupfs driver; nothing with systemd's).
pub fn apply(settings: &NodeSettings, pod: &Pod) -> std::io::Result<()> {
    if settings.systemd_cgroups {
        return Ok(());
    }
    let r = pod_resources(pod);
    for (kind, dir) in dirs(settings, pod) {
        if kind == "unified" {
            delegate(&dir);
        }
        std::fs::create_dir_all(&dir)?;
        match kind {
            "cpu" => {
                write(&dir, "cpu.shares", &r.cpu_shares.to_string())?;
                write(&dir, "cpu.cfs_period_us", &CPU_PERIOD.to_string())?;
                write(
                    &dir,
                    "cpu.cfs_quota_us",
                    &r.cpu_quota.unwrap_or(-1).to_string(),
                )?;
            }
            "memory" => {
                write(
                    &dir,
                    "memory.limit_in_bytes",
                    &r.memory_limit.unwrap_or(-1).to_string(),
                )?;
            }
            _ => {
                write(&dir, "cpu.weight", &r.cpu_weight().to_string())?;
                let quota = r.cpu_quota.map_or("max".to_owned(), |q| q.to_string());
                write(&dir, "cpu.max", &format!("{quota} {CPU_PERIOD}"))?;
                let memory = r.memory_limit.map_or("max".to_owned(), |m| m.to_string());
                write(&dir, "memory.max", &memory)?;
            }
        }
    }
    Ok(())
}

/// Removes the cgroup of the pod with `uid` once nothing runs in it (its container cgroups
/// first), wherever its QoS class put it.
pub fn remove(settings: &NodeSettings, uid: &str) {
    if settings.systemd_cgroups {
        return;
    }
    for qos in ["Guaranteed", "Burstable", "BestEffort"] {
        let pod = Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                uid: Some(uid.to_owned()),
                ..Default::default()
            },
            status: Some(k8s_openapi::api::core::v1::PodStatus {
                qos_class: Some(qos.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        for (_, dir) in dirs(settings, &pod) {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn limits_are_summed_only_when_every_container_declares_them() {
        let guaranteed = pod(json!({
            "spec": {"containers": [
                {"name": "a", "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "50m", "memory": "16Mi"}}}]},
            "status": {"qosClass": "Guaranteed"}}));
        let r = pod_resources(&guaranteed);
        assert_eq!(r.cpu_shares, 153);
        assert_eq!(r.cpu_quota, Some(15_000));
        assert_eq!(r.memory_limit, Some(48 << 20));
        assert_eq!(r.cpu_weight(), 6);

        let partial = pod(json!({
            "spec": {"containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "32Mi"}}},
                {"name": "b"}]},
            "status": {"qosClass": "Burstable"}}));
        let r = pod_resources(&partial);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_quota, None);
        assert_eq!(r.memory_limit, None);

        let init_bigger = pod(json!({
            "spec": {
                "initContainers": [{"name": "i", "resources": {"limits": {"memory": "100Mi"}}}],
                "containers": [{"name": "a", "resources": {"limits": {"memory": "10Mi"}}}]},
            "status": {"qosClass": "Burstable"}}));
        assert_eq!(pod_resources(&init_bigger).memory_limit, Some(100 << 20));

        let best_effort = pod(json!({
            "spec": {"containers": [{"name": "a"}]}, "status": {"qosClass": "BestEffort"}}));
        assert_eq!(
            pod_resources(&best_effort),
            PodResources {
                cpu_shares: 2,
                cpu_quota: None,
                memory_limit: None
            }
        );
    }
}
