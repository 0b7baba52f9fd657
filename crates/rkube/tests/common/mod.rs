//! The harness of the kubectl end-to-end tests: the real `rkube server` binary (without its
//! agent) on a free loopback port with a temporary data directory, and the real kubectl of a
//! given version pointed at it through the server's admin kubeconfig.

// Each test file uses the part of the harness it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use rkube_store_tests::{EtcdServer, free_port, kubectl_binary};

/// kubectl of one version, for one cluster; cheap to clone into helper threads.
#[derive(Clone)]
pub struct Kubectl {
    binary: PathBuf,
    dir: PathBuf,
}

impl Kubectl {
    /// The data directory (holding `kubeconfig.yaml` and `server.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig the server wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig.yaml")
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// kubectl with `args`, ready to run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", &self.dir);
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run kubectl")
    }

    /// stdout when kubectl succeeds.
    pub fn try_run(&self, args: &[&str]) -> Option<String> {
        let out = self.run(args);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs kubectl, expecting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs kubectl, expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Runs kubectl, expecting JSON on stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Writes `contents` to `name` in the data directory; its path.
    pub fn write(&self, name: &str, contents: &str) -> String {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path.display().to_string()
    }

    /// `kubectl apply -f` of a manifest.
    pub fn apply(&self, manifest: &str) -> String {
        let path = self.write("manifest.yaml", manifest);
        self.ok(&["apply", "-f", &path])
    }

    /// Calls `check` until it gives a value, for at most `within`.
    pub fn eventually_within<T>(
        &self,
        within: Duration,
        what: &str,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\nserver log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (up to a minute) until `check` holds.
    pub fn until(&self, what: &str, mut check: impl FnMut(&Self) -> bool) {
        self.eventually_within(Duration::from_secs(60), what, || check(self).then_some(()));
    }

    /// Runs `args` until kubectl fails, undoing each success with `undo`; the failure's
    /// stderr. For what takes effect through the server's caches (admission configuration).
    pub fn refusal(&self, what: &str, args: &[&str], undo: &[&str]) -> String {
        self.eventually(what, || {
            let out = self.run(args);
            if out.status.success() {
                self.ok(undo);
                return None;
            }
            Some(String::from_utf8(out.stderr).unwrap())
        })
    }

    /// [`Kubectl::eventually_within`] 30 seconds.
    pub fn eventually<T>(&self, what: &str, check: impl FnMut() -> Option<T>) -> T {
        self.eventually_within(Duration::from_secs(30), what, check)
    }
}

/// A running `rkube server`, stopped when dropped.
pub struct Cluster {
    child: Child,
    /// Removed when the cluster is dropped.
    _dir: tempfile::TempDir,
    pub kubectl: Kubectl,
    /// The server's arguments after its data directory.
    args: Vec<String>,
    /// The etcd the server stores in, kept as long as the server.
    _etcd: Option<EtcdServer>,
}

impl std::ops::Deref for Cluster {
    type Target = Kubectl;

    fn deref(&self) -> &Kubectl {
        &self.kubectl
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rkube server` on a free loopback port with its data in `dir`, logging to
/// `dir/server.log` (appended to, across restarts).
fn spawn_server(dir: &Path, args: &[String]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args([
            "server",
            "--disable-agent",
            "--bind-address",
            "127.0.0.1",
            "--https-listen-port",
        ])
        .arg(free_port().to_string())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start rkube server")
}

impl Cluster {
    /// A server on the embedded store, driven by kubectl `version` ("1.32" or "1.33").
    pub fn start(version: &str) -> Self {
        Self::start_with(version, &[])
    }

    /// [`Cluster::start`] with more `rkube server` arguments.
    pub fn start_with(version: &str, extra: &[&str]) -> Self {
        Self::launch(version, extra.iter().map(|a| a.to_string()).collect(), None)
    }

    /// A server storing in `etcd`.
    pub fn on_etcd(version: &str, etcd: EtcdServer) -> Self {
        let endpoint = etcd.endpoint().replace("http://", "etcd://");
        Self::launch(
            version,
            vec!["--datastore-endpoint".to_owned(), endpoint],
            Some(etcd),
        )
    }

    fn launch(version: &str, args: Vec<String>, etcd: Option<EtcdServer>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let child = spawn_server(dir.path(), &args);
        let kubectl = Kubectl {
            binary: kubectl_binary(version),
            dir: dir.path().to_owned(),
        };
        let cluster = Self {
            child,
            _dir: dir,
            kubectl,
            args,
            _etcd: etcd,
        };
        cluster.wait_ready();
        cluster
    }

    /// Waits until the server answers readyz, with the kubeconfig it wrote.
    fn wait_ready(&self) {
        self.eventually("the server to get ready", || {
            (self.kubeconfig().exists() && self.run(&["get", "--raw", "/readyz"]).status.success())
                .then_some(())
        });
    }

    /// Stops the server as a service manager would (SIGTERM); how it exited, within 10 s.
    pub fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let kubectl = self.kubectl.clone();
        kubectl.eventually_within(Duration::from_secs(10), "the server to exit", || {
            self.child.try_wait().unwrap()
        })
    }

    /// Starts the server again on the same data directory, with the same arguments.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_server(self.kubectl.dir(), &self.args);
        self.wait_ready();
    }
}
