//! The supervised containerd: its generated configuration, the host checks the configuration
//! depends on, and the child process kept running for the agent's lifetime.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// The image every pod sandbox runs. It is built by the agent and imported at start, so no
/// registry is needed for it.
pub const SANDBOX_IMAGE: &str = "rkube.local/pause:3.10";

/// Where one agent keeps containerd's files.
#[derive(Clone, Debug)]
pub struct ContainerdPaths {
    /// `<data-dir>/agent`.
    pub agent_dir: PathBuf,
}

impl ContainerdPaths {
    /// The paths under an agent directory.
    pub fn new(agent_dir: impl Into<PathBuf>) -> Self {
        Self {
            agent_dir: agent_dir.into(),
        }
    }
    /// The generated config.toml.
    pub fn config(&self) -> PathBuf {
        self.agent_dir.join("etc/containerd/config.toml")
    }
    /// containerd's persistent root (images, snapshots).
    pub fn root(&self) -> PathBuf {
        self.agent_dir.join("containerd")
    }
    /// containerd's state (running tasks, sockets of shims).
    pub fn state(&self) -> PathBuf {
        self.agent_dir.join("run/containerd")
    }
    /// The gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.agent_dir.join("run/containerd/containerd.sock")
    }
    /// The CNI configuration directory the agent writes.
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.agent_dir.join("etc/cni/net.d")
    }
    /// Per-registry host configuration (`hosts.toml` files).
    pub fn certs_d(&self) -> PathBuf {
        self.agent_dir.join("etc/containerd/certs.d")
    }
    /// containerd's log.
    pub fn log(&self) -> PathBuf {
        self.agent_dir.join("containerd/containerd.log")
    }
}

/// What the host allows, read once at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// systemd is the init system, so runc is told to use the systemd cgroup driver.
    pub systemd_cgroups: bool,
    /// The process lacks CAP_SYS_RESOURCE, so it cannot lower a process's oom_score_adj below
    /// its own: containerd must keep sandboxes' scores at or above the agent's.
    pub restrict_oom_score_adj: bool,
    /// The unified (v2) cgroup hierarchy is mounted.
    pub cgroup_v2: bool,
}

impl HostFacts {
    /// Reads this host's facts.
    pub fn detect() -> Self {
        let cgroup_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let systemd = Path::new("/run/systemd/system").is_dir();
        Self {
            systemd_cgroups: systemd,
            restrict_oom_score_adj: !has_capability(CAP_SYS_RESOURCE),
            cgroup_v2,
        }
    }
}

const CAP_SYS_RESOURCE: u32 = 24;

/// Whether this process's effective capability set holds `cap` (from /proc/self/status).
fn has_capability(cap: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << cap) != 0)
}

/// The containerd 1.6+ configuration (version 2) for one agent; registry hosts come from
/// `hosts.toml` files under `config_path`, and credentials per host (mirror endpoints
/// included) from `registries`.
pub fn config_toml(
    paths: &ContainerdPaths,
    facts: &HostFacts,
    cni_bin_dir: &Path,
    registries: &crate::images::Registries,
) -> String {
    let q = |p: PathBuf| toml_string(&p.display().to_string());
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    format!(
        r#"# Written by rkube at every agent start; edits are lost.
version = 2
root = {root}
state = {state}
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = {socket}

[ttrpc]
  address = {ttrpc}

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[{cri}]
  sandbox_image = "{sandbox}"
  restrict_oom_score_adj = {restrict}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  tolerate_missing_hugetlb_controller = true
  device_ownership_from_security_context = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = {systemd}

[{cri}.cni]
  bin_dir = {cni_bin}
  conf_dir = {cni_conf}
  max_conf_num = 1

[{cri}.registry]
  config_path = {certs_d}
{auth}"#,
        root = q(paths.root()),
        state = q(paths.state()),
        socket = q(paths.socket()),
        ttrpc = q(paths.state().join("containerd.sock.ttrpc")),
        opt = q(paths.root().join("opt")),
        sandbox = SANDBOX_IMAGE,
        restrict = facts.restrict_oom_score_adj,
        systemd = facts.systemd_cgroups,
        cni_bin = q(cni_bin_dir.to_path_buf()),
        cni_conf = q(paths.cni_conf_dir()),
        certs_d = q(paths.certs_d()),
        auth = registries.containerd_auth(),
    )
}

/// A TOML basic string.
pub fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A failure to start containerd.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// The binary could not be run.
    #[error("starting containerd ({binary}): {source}")]
    Spawn {
        /// The binary.
        binary: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing its files failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It did not open its socket in time.
    #[error("containerd did not open {socket} within {seconds} s (its log: {log})")]
    NotReady {
        /// The socket.
        socket: String,
        /// How long we waited.
        seconds: u64,
        /// The log to read.
        log: String,
    },
}

/// containerd run as the agent's child, restarted when it dies.
pub struct Supervisor {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Supervisor {
    /// Writes the configuration, starts containerd and waits for its socket; then keeps it
    /// running until [`Supervisor::shutdown`].
    pub async fn start(
        paths: ContainerdPaths,
        facts: &HostFacts,
        cni_bin_dir: &Path,
        registries: &crate::images::Registries,
    ) -> Result<Self, ContainerdError> {
        share_netns_dir();
        let config = paths.config();
        write_file(
            &config,
            config_toml(&paths, facts, cni_bin_dir, registries).as_bytes(),
        )?;
        for dir in [
            paths.root(),
            paths.state(),
            paths.cni_conf_dir(),
            paths.certs_d(),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| ContainerdError::Write {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let mut child = spawn(&paths)?;
        wait_for_socket(&paths, &mut child).await?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut restarts = 0u32;
            loop {
                tokio::select! {
                    status = child.wait() => {
                        tracing::warn!(?status, "containerd exited; restarting it");
                        restarts += 1;
                        // Restart at once the first time, then no faster than every 2 s.
                        if restarts > 1 {
                            tokio::time::sleep(Duration::from_secs(2)).await;
                        }
                        match spawn(&paths) {
                            Ok(mut new) => {
                                if let Err(err) = wait_for_socket(&paths, &mut new).await {
                                    tracing::error!(error = %err, "restarting containerd");
                                }
                                child = new;
                            }
                            Err(err) => {
                                tracing::error!(error = %err, "restarting containerd");
                                tokio::time::sleep(Duration::from_secs(5)).await;
                            }
                        }
                    }
                    changed = stopped.changed() => {
                        if changed.is_err() || *stopped.borrow() {
                            terminate(&mut child).await;
                            return;
                        }
                    }
                }
            }
        });
        Ok(Self { stop, task })
    }

    /// Stops containerd (SIGTERM, then SIGKILL after 10 s). Running containers keep running:
    /// their shims outlive containerd, and the next start picks them up.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Where containerd mounts pods' network namespaces (as `ip netns` does its own).
const NETNS_DIR: &str = "/run/netns";

/// What the mount table says of a directory.
#[derive(Debug, PartialEq, Eq)]
enum DirMounts {
    /// The directory is a mount point.
    MountPoint,
    /// Not a mount point, but something is mounted below it.
    HasMounts,
    /// Neither.
    Plain,
}

/// Reads `/proc/self/mountinfo` text for `dir` (an absolute path without escapes).
fn dir_mounts(mountinfo: &str, dir: &str) -> DirMounts {
    let below = format!("{}/", dir.trim_end_matches('/'));
    let mut found = DirMounts::Plain;
    for point in mountinfo.lines().filter_map(|l| l.split(' ').nth(4)) {
        if point == dir {
            return DirMounts::MountPoint;
        }
        if point.starts_with(&below) {
            found = DirMounts::HasMounts;
        }
    }
    found
}

/// Makes the network namespace directory a shared mount point of its own, as the first
/// `ip netns add` on a host does, while no namespace is mounted there yet. Otherwise a first
/// `ip netns add` run later (by a user or a tool) binds the directory over the pods' namespaces
/// with copies of their mounts; removing a pod then unmounts only the copy and its namespace
/// file stays behind, busy, for good.
fn share_netns_dir() {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    if let Err(err) = std::fs::create_dir_all(NETNS_DIR) {
        tracing::warn!(dir = NETNS_DIR, error = %err, "creating the network namespace directory");
        return;
    }
    match dir_mounts(&mountinfo, NETNS_DIR) {
        DirMounts::MountPoint => return,
        DirMounts::HasMounts => {
            tracing::warn!(
                dir = NETNS_DIR,
                "network namespaces are mounted in a directory that is not a mount point; \
                 a first `ip netns add` would hide them"
            );
            return;
        }
        DirMounts::Plain => {}
    }
    let dir = std::ffi::CString::new(NETNS_DIR).expect("no NUL in a constant");
    // SAFETY: valid NUL-terminated strings; null filesystem type and data are allowed for
    // bind and propagation changes.
    #[allow(unsafe_code)]
    let done = unsafe {
        libc::mount(
            dir.as_ptr(),
            dir.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        ) == 0
            && libc::mount(
                std::ptr::null(),
                dir.as_ptr(),
                std::ptr::null(),
                libc::MS_SHARED | libc::MS_REC,
                std::ptr::null(),
            ) == 0
    };
    if !done {
        tracing::warn!(
            dir = NETNS_DIR,
            error = %std::io::Error::last_os_error(),
            "making the network namespace directory a shared mount point"
        );
    }
}

fn write_file(path: &Path, contents: &[u8]) -> Result<(), ContainerdError> {
    let fail = |source| ContainerdError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    std::fs::write(path, contents).map_err(fail)
}

fn spawn(paths: &ContainerdPaths) -> Result<Child, ContainerdError> {
    let binary = std::env::var("RKUBE_CONTAINERD").unwrap_or_else(|_| "containerd".to_owned());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.log())
        .map_err(|source| ContainerdError::Write {
            path: paths.log().display().to_string(),
            source,
        })?;
    let err_log = log.try_clone().map_err(|source| ContainerdError::Write {
        path: paths.log().display().to_string(),
        source,
    })?;
    let _ = std::fs::remove_file(paths.socket());
    Command::new(&binary)
        .arg("--config")
        .arg(paths.config())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        // Its own process group: a Ctrl-C meant for the agent reaches containerd only
        // through the agent's orderly shutdown.
        .process_group(0)
        .spawn()
        .map_err(|source| ContainerdError::Spawn { binary, source })
}

async fn wait_for_socket(
    paths: &ContainerdPaths,
    child: &mut Child,
) -> Result<(), ContainerdError> {
    let socket = paths.socket();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(ContainerdError::NotReady {
        socket: socket.display().to_string(),
        seconds: 60,
        log: paths.log().display().to_string(),
    })
}

async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on our own child's pid.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_keeps_everything_under_the_agent_directory() {
        let paths = ContainerdPaths::new("/data/agent");
        let facts = HostFacts {
            systemd_cgroups: false,
            restrict_oom_score_adj: true,
            cgroup_v2: false,
        };
        let registries = crate::images::Registries::from_yaml(
            "configs:\n  \"mirror.local:5000\":\n    auth: {username: u, password: \"p\\\"w\"}\n  \"open.local\":\n    tls: {insecure_skip_verify: true}\n",
        )
        .unwrap();
        let toml = config_toml(&paths, &facts, Path::new("/usr/lib/cni"), &registries);
        assert!(toml.contains("root = \"/data/agent/containerd\""));
        assert!(toml.contains(
            "[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"mirror.local:5000\".auth]\n  username = \"u\"\n  password = \"p\\\"w\"\n"
        ));
        assert!(
            !toml.contains("open.local"),
            "TLS settings go to hosts.toml"
        );
        assert!(toml.contains("address = \"/data/agent/run/containerd/containerd.sock\""));
        assert!(toml.contains("restrict_oom_score_adj = true"));
        assert!(toml.contains("SystemdCgroup = false"));
        assert!(toml.contains("conf_dir = \"/data/agent/etc/cni/net.d\""));
    }

    #[test]
    fn the_netns_directory_is_told_from_the_mount_table() {
        let root = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n";
        assert_eq!(dir_mounts(root, NETNS_DIR), DirMounts::Plain);
        let bound = format!(
            "{root}45 27 254:0 /run/netns /run/netns rw shared:1 - ext4 /dev/vda rw\n\
             56 45 0:4 net:[4026532509] /run/netns/cni-1 rw - nsfs nsfs rw\n"
        );
        assert_eq!(dir_mounts(&bound, NETNS_DIR), DirMounts::MountPoint);
        let hidden =
            format!("{root}56 27 0:4 net:[4026532509] /run/netns/cni-1 rw - nsfs nsfs rw\n");
        assert_eq!(dir_mounts(&hidden, NETNS_DIR), DirMounts::HasMounts);
        let other = format!("{root}57 27 0:4 net:[1] /run/netns2/x rw - nsfs nsfs rw\n");
        assert_eq!(dir_mounts(&other, NETNS_DIR), DirMounts::Plain);
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
