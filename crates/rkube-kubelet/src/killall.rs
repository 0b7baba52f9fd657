//! `rkube killall`: stops every pod the agent of a data directory started and removes what it
//! made on the host (containers, sandboxes and their network, mounts, the pod bridge, pod
//! cgroups), then stops its containerd. Nothing else on the host is touched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::containerd::ContainerdPaths;
use crate::cri::CriRuntime;
use crate::runtime::ContainerRuntime;

/// What an agent records at start so killall can find what it made.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Footprint {
    /// The pod bridge.
    pub bridge: String,
    /// The cgroup root pods were put under.
    pub cgroup_root: String,
    /// runc used systemd cgroups.
    pub systemd_cgroups: bool,
}

/// Where the footprint is kept.
pub fn footprint_path(agent_dir: &Path) -> PathBuf {
    agent_dir.join("footprint.json")
}

/// Records the footprint.
pub fn record(agent_dir: &Path, footprint: &Footprint) -> std::io::Result<()> {
    std::fs::create_dir_all(agent_dir)?;
    let text = serde_json::to_string_pretty(footprint).map_err(std::io::Error::other)?;
    std::fs::write(footprint_path(agent_dir), text)
}

fn processes_with(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

fn kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) with a pid read from /proc; a stale pid at worst gets ESRCH.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Mount points at or under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    let mut found: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(str::to_owned)
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.len()));
    found.dedup();
    found
}

async fn connect(socket: &Path) -> Option<CriRuntime> {
    if !socket.exists() {
        return None;
    }
    let rt = tokio::time::timeout(
        Duration::from_secs(5),
        CriRuntime::connect(&socket.display().to_string()),
    )
    .await
    .ok()?
    .ok()?;
    rt.version().await.ok().map(|_| rt)
}

/// SIGKILLs every process in a cgroup tree.
fn kill_cgroup_tree(dir: &Path) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            kill(pid, libc::SIGKILL);
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                kill_cgroup_tree(&e.path());
            }
        }
    }
}

fn cgroup_tree_is_empty(dir: &Path) -> bool {
    let here =
        std::fs::read_to_string(dir.join("cgroup.procs")).map_or(true, |t| t.trim().is_empty());
    here && std::fs::read_dir(dir).map_or(true, |entries| {
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .all(|e| cgroup_tree_is_empty(&e.path()))
    })
}

/// Removes a cgroup directory tree bottom-up (cgroupfs only allows removing empty leaves).
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The cgroup directories pods of this agent used, in every mounted hierarchy.
pub fn pod_cgroup_dirs(footprint: &Footprint) -> Vec<PathBuf> {
    let root = footprint.cgroup_root.trim_matches('/');
    let relative = if root.is_empty() {
        "kubepods".to_owned()
    } else {
        format!("{root}/kubepods")
    };
    let mut dirs = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            let d = e.path().join(&relative);
            if d.is_dir() {
                dirs.push(d);
            }
        }
    }
    let unified = Path::new("/sys/fs/cgroup").join(&relative);
    if unified.is_dir() && !dirs.contains(&unified) {
        dirs.push(unified);
    }
    dirs
}

/// Cleans up after the agent of `agent_dir`.
pub async fn run(agent_dir: &Path) -> anyhow::Result<()> {
    let paths = ContainerdPaths::new(agent_dir);
    let footprint: Footprint = std::fs::read_to_string(footprint_path(agent_dir))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let socket = paths.socket();
    // Through CRI: sandboxes are torn down with their network (CNI DEL removes veths,
    // addresses and port mappings). A containerd that is not running is started for this.
    let mut started = None;
    let mut runtime = connect(&socket).await;
    if runtime.is_none() && paths.config().exists() {
        let _ = std::fs::remove_file(&socket);
        started = tokio::process::Command::new("containerd")
            .arg("--config")
            .arg(paths.config())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            runtime = connect(&socket).await;
            if runtime.is_some() {
                break;
            }
        }
    }
    if let Some(rt) = &runtime
        && let Ok(sandboxes) = rt.list_pod_sandboxes(None).await
    {
        for s in sandboxes {
            let _ = rt.stop_pod_sandbox(&s.id).await;
            let _ = rt.remove_pod_sandbox(&s.id).await;
        }
    }
    if let Some(mut child) = started {
        let _ = child.kill().await;
    }
    // Whatever still runs in the pods' cgroups is killed.
    for dir in pod_cgroup_dirs(&footprint) {
        kill_cgroup_tree(&dir);
    }
    let socket_text = socket.display().to_string();
    // Shims of this containerd (they name its socket), then containerd itself.
    for pid in processes_with(&format!("-address {socket_text}")) {
        kill(pid, libc::SIGKILL);
    }
    for pid in processes_with(&paths.config().display().to_string()) {
        kill(pid, libc::SIGTERM);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for pid in processes_with(&paths.config().display().to_string()) {
        kill(pid, libc::SIGKILL);
    }
    for m in mounts_under(agent_dir) {
        let _ = std::process::Command::new("umount")
            .args(["-l", &m])
            .status();
    }
    if !footprint.bridge.is_empty() {
        for table in [
            crate::cni::masquerade_table(&footprint.bridge),
            crate::cni::proxy_table(&footprint.bridge),
            crate::cni::netpol_table(&footprint.bridge),
        ] {
            let _ = std::process::Command::new("nft")
                .args(["delete", "table", "ip", &table])
                .stderr(std::process::Stdio::null())
                .status();
        }
        // The routes to other nodes' pods (the service proxy's node routes, protocol 147).
        let _ = std::process::Command::new("ip")
            .args(["route", "flush", "proto", "147"])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::process::Command::new("ip")
            .args(["link", "delete", &footprint.bridge])
            .stderr(std::process::Stdio::null())
            .status();
    }
    if !footprint.systemd_cgroups {
        // Killed processes leave their cgroups when they are reaped.
        for _ in 0..50 {
            if pod_cgroup_dirs(&footprint)
                .iter()
                .all(|d| cgroup_tree_is_empty(d))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for dir in pod_cgroup_dirs(&footprint) {
            remove_cgroup_tree(&dir);
            // The root given with --cgroup-root, once empty.
            if let Some(parent) = dir.parent()
                && !footprint.cgroup_root.trim_matches('/').is_empty()
            {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
    let _ = std::fs::remove_dir_all(paths.state());
    Ok(())
}
