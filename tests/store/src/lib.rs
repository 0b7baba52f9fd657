//! Test support for the store: a real etcd server started from the Debian `etcd-server`
//! package on free loopback ports, and the backends opened the way the tests need them.

// This crate is test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod suite;

use rkube_store::{EtcdConfig, EtcdStore, MemoryStore, SqliteConfig, SqliteStore, Store};

/// Where the versioned kubectl binaries are (`kubectl.1.33`, `kubectl.1.32`):
/// `$RKUBE_KUBECTL_DIR`, or beside the `kubectl` on the PATH (a dispatcher that picks the
/// binary matching the server).
pub fn kubectl_binary(version: &str) -> PathBuf {
    let dir = match std::env::var_os("RKUBE_KUBECTL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let found = std::env::split_paths(&path)
                .map(|d| d.join("kubectl"))
                .find(|p| p.exists())
                .expect("kubectl on the PATH");
            std::fs::canonicalize(found)
                .unwrap()
                .parent()
                .unwrap()
                .to_owned()
        }
    };
    let binary = dir.join(format!("kubectl.{version}"));
    assert!(binary.exists(), "{} is missing", binary.display());
    binary
}

/// A free TCP port on the loopback address (free when asked; etcd binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A real etcd process with its own data directory, stopped when dropped.
pub struct EtcdServer {
    child: Option<Child>,
    data_dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    _dir: Option<tempfile::TempDir>,
}

impl EtcdServer {
    /// Starts etcd in a fresh temporary directory and waits until it serves.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data_dir = dir.path().join("etcd");
        let mut server = Self {
            child: None,
            data_dir,
            client_port: 0,
            peer_port: 0,
            _dir: Some(dir),
        };
        for _ in 0..5 {
            server.client_port = free_port();
            server.peer_port = free_port();
            if server.spawn().is_ok() {
                return server;
            }
        }
        panic!("etcd did not start; is the etcd-server package installed?");
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Kills etcd at once (SIGKILL), keeping its data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().expect("etcd did not restart");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.data_dir.with_extension("log"))
            .map_err(|e| format!("etcd log: {e}"))?;
        let child = Command::new(etcd_binary())
            .arg("--name=default")
            .arg(format!("--data-dir={}", self.data_dir.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=default={peer}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run etcd: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("etcd exited: {status}"));
            }
            if healthy(self.client_port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        Err("etcd did not become healthy".to_owned())
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn etcd_binary() -> PathBuf {
    std::env::var_os("RKUBE_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| "etcd".into())
}

/// Whether etcd answers its health endpoint, asked over a plain socket.
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
    let request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if conn.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

/// A backend under test, with whatever keeps it alive.
pub struct Backend {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The etcd process, for the etcd backend.
    pub etcd: Option<EtcdServer>,
    /// The database directory, for the sqlite backend.
    pub dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// A fresh memory store.
    pub async fn memory() -> Self {
        Self {
            store: Arc::new(MemoryStore::new()),
            etcd: None,
            dir: None,
        }
    }

    /// A fresh sqlite store in a temporary directory.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(SqliteConfig::new(db_path(dir.path())))
            .await
            .expect("open sqlite store");
        Self {
            store: Arc::new(store),
            etcd: None,
            dir: Some(dir),
        }
    }

    /// A store on a fresh etcd server.
    pub async fn etcd() -> Self {
        let etcd = tokio::task::spawn_blocking(EtcdServer::start)
            .await
            .expect("etcd start task");
        let store = EtcdStore::connect(EtcdConfig::new(vec![etcd.endpoint()]))
            .await
            .expect("connect to etcd");
        Self {
            store: Arc::new(store),
            etcd: Some(etcd),
            dir: None,
        }
    }
}

/// Where the tests keep a sqlite database inside `dir`.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("state.db")
}
