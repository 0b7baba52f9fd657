//! The packet filter the rules go to: `nft -f` on the host (or in a network namespace), and a
//! recording fake for tests.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// A dataplane failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tool could not be run.
    #[error("running {tool}: {source}")]
    Spawn {
        /// The tool.
        tool: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// nft refused the script.
    #[error("nft refused the rules: {0}")]
    Refused(String),
}

/// UDP flows whose conntrack entries must go, so that packets take the current rules.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StaleFlow {
    /// Every flow to a service address and port (it had no endpoints, and rejected packets
    /// left entries that would keep new endpoints from being used).
    ToService {
        /// The service address (cluster, external or load-balancer IP).
        ip: Ipv4Addr,
        /// The port.
        port: u16,
    },
    /// Every flow to a node port.
    ToNodePort {
        /// The node port.
        port: u16,
    },
    /// Flows to a service address that were sent to an endpoint that went away.
    ToEndpoint {
        /// The service address.
        ip: Ipv4Addr,
        /// The endpoint's address.
        endpoint: Ipv4Addr,
    },
}

/// Where rules are applied.
pub trait Dataplane: Send + Sync {
    /// Applies an `nft -f` script as one transaction.
    fn apply(&self, script: &str) -> Result<(), Error>;
    /// Removes the conntrack entries of stale UDP flows (best effort).
    fn clear_udp_flows(&self, flows: &[StaleFlow]);
}

/// The host's nftables through the `nft` command (Debian's `nftables` package), and conntrack
/// entries through `conntrack` (Debian's `conntrack`), optionally inside a network namespace.
#[derive(Clone, Debug, Default)]
pub struct Nft {
    /// A named network namespace (`ip netns`) to work in, instead of the caller's.
    pub netns: Option<String>,
}

impl Nft {
    fn command(&self, tool: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, tool]);
                c
            }
            None => Command::new(tool),
        }
    }

    /// Whether `nft` can be run here.
    pub fn available(&self) -> bool {
        self.command("nft")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Deletes a table if it exists.
    pub fn delete_table(&self, table: &str) -> Result<(), Error> {
        self.apply(&format!("add table ip {table}\ndelete table ip {table}\n"))
    }
}

impl Dataplane for Nft {
    fn apply(&self, script: &str) -> Result<(), Error> {
        let mut child = self
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                tool: "nft",
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .map_err(|source| Error::Spawn {
                    tool: "nft",
                    source,
                })?;
        }
        let out = child.wait_with_output().map_err(|source| Error::Spawn {
            tool: "nft",
            source,
        })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Refused(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ))
        }
    }

    fn clear_udp_flows(&self, flows: &[StaleFlow]) {
        for flow in flows {
            let mut c = self.command("conntrack");
            c.args(["-D", "-p", "udp"]);
            match flow {
                StaleFlow::ToService { ip, port } => {
                    c.arg("--orig-dst")
                        .arg(ip.to_string())
                        .arg("--orig-port-dst")
                        .arg(port.to_string());
                }
                StaleFlow::ToNodePort { port } => {
                    c.arg("--orig-port-dst").arg(port.to_string());
                }
                StaleFlow::ToEndpoint { ip, endpoint } => {
                    c.arg("--orig-dst")
                        .arg(ip.to_string())
                        .arg("--dst-nat")
                        .arg(endpoint.to_string());
                }
            }
            // conntrack exits 1 when no entry matched: nothing to report.
            if let Err(e) = c.stdout(Stdio::null()).stderr(Stdio::null()).status() {
                tracing::debug!(error = %e, "conntrack is not available");
                return;
            }
        }
    }
}

/// Records what it is asked to do.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Applied scripts, in order.
    pub scripts: Mutex<Vec<String>>,
    /// Cleared flows, in order.
    pub flows: Mutex<Vec<StaleFlow>>,
    /// Refuse the next script.
    pub fail_next: Mutex<bool>,
}

impl Dataplane for Recorder {
    fn apply(&self, script: &str) -> Result<(), Error> {
        let mut fail = self.fail_next.lock().unwrap_or_else(|e| e.into_inner());
        if std::mem::take(&mut *fail) {
            return Err(Error::Refused("refused by the recorder".to_owned()));
        }
        self.scripts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(script.to_owned());
        Ok(())
    }

    fn clear_udp_flows(&self, flows: &[StaleFlow]) {
        self.flows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(flows);
    }
}
