//! Liveness, readiness and startup probes: exec, httpGet, tcpSocket and grpc, with upstream's
//! periods, thresholds and timeouts. One task per probe of a running container writes its
//! results into the pod's probe state and wakes the pod worker when a result changes.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{Container as ContainerSpec, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::runtime::ContainerRuntime;

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Restart on failure.
    Liveness,
    /// Ready or not.
    Readiness,
    /// Holds the other two until it passes.
    Startup,
}

impl ProbeKind {
    /// The name in events (`Liveness probe failed: …`).
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// The outcome of one probe run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Success,
    /// Failed, with the output or error.
    Failure(String),
}

/// What a probe needs to reach its container.
#[derive(Clone)]
pub struct Target {
    /// The runtime, for exec probes.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// The container's id.
    pub container_id: String,
    /// The pod's IP (or the node's with host networking).
    pub pod_ip: String,
    /// The container spec (named ports).
    pub container: ContainerSpec,
}

fn port(target: &Target, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
        IntOrString::String(name) => target
            .container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("couldn't find port {name:?} in the container")),
    }
}

/// Runs a probe once.
pub async fn run(probe: &Probe, target: &Target) -> Outcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    let attempt = async {
        if let Some(exec) = &probe.exec {
            let cmd = exec.command.clone().unwrap_or_default();
            let secs = timeout.as_secs() as i64;
            return match target
                .runtime
                .exec_sync(&target.container_id, cmd, secs)
                .await
            {
                Ok(r) if r.exit_code == 0 => Outcome::Success,
                Ok(r) => {
                    let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
                    out.push_str(&String::from_utf8_lossy(&r.stderr));
                    Outcome::Failure(out)
                }
                Err(e) => Outcome::Failure(e.message),
            };
        }
        if let Some(tcp) = &probe.tcp_socket {
            let port = match port(target, &tcp.port) {
                Ok(p) => p,
                Err(e) => return Outcome::Failure(e),
            };
            let host = tcp.host.clone().unwrap_or_else(|| target.pod_ip.clone());
            return match tokio::net::TcpStream::connect((host.as_str(), port)).await {
                Ok(_) => Outcome::Success,
                Err(e) => Outcome::Failure(format!("dial tcp {host}:{port}: {e}")),
            };
        }
        if let Some(get) = &probe.http_get {
            let port = match port(target, &get.port) {
                Ok(p) => p,
                Err(e) => return Outcome::Failure(e),
            };
            let host = get.host.clone().unwrap_or_else(|| target.pod_ip.clone());
            let path = get.path.clone().unwrap_or_else(|| "/".to_owned());
            let headers: Vec<(String, String)> = get
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect();
            return http_get(&host, port, &path, &headers).await;
        }
        if let Some(grpc) = &probe.grpc {
            let Ok(port) = u16::try_from(grpc.port) else {
                return Outcome::Failure(format!("invalid port {}", grpc.port));
            };
            return grpc_check(&target.pod_ip, port, grpc.service.as_deref().unwrap_or("")).await;
        }
        Outcome::Failure("probe has no handler".to_owned())
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Failure(format!("command timed out after {}s", timeout.as_secs())),
    }
}

async fn http_get(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> Outcome {
    let url = format!("http://{host}:{port}{path}");
    let stream = match tokio::net::TcpStream::connect((host, port)).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failure(format!("Get \"{url}\": dial tcp {host}:{port}: {e}")),
    };
    let io = hyper_util::rt::TokioIo::new(stream);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(io).await else {
        return Outcome::Failure(format!("Get \"{url}\": handshake failed"));
    };
    tokio::spawn(conn);
    let mut request = http::Request::get(path)
        .header(http::header::HOST, format!("{host}:{port}"))
        .header(http::header::USER_AGENT, "kube-probe/1.33")
        .header(http::header::ACCEPT, "*/*");
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let Ok(request) = request.body(http_body_util::Empty::<bytes::Bytes>::new()) else {
        return Outcome::Failure(format!("Get \"{url}\": bad request"));
    };
    match sender.send_request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            if (200..400).contains(&status) {
                Outcome::Success
            } else {
                Outcome::Failure(format!("HTTP probe failed with statuscode: {status}"))
            }
        }
        Err(e) => Outcome::Failure(format!("Get \"{url}\": {e}")),
    }
}

/// The gRPC health checking protocol (grpc.health.v1.Health/Check) over plain HTTP/2.
async fn grpc_check(host: &str, port: u16, service: &str) -> Outcome {
    let stream = match tokio::net::TcpStream::connect((host, port)).await {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Failure(format!(
                "failed to connect service \"{host}:{port}\" within 1s: {e}"
            ));
        }
    };
    let io = hyper_util::rt::TokioIo::new(stream);
    let Ok((mut sender, conn)) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await
    else {
        return Outcome::Failure("gRPC handshake failed".to_owned());
    };
    tokio::spawn(conn);
    // HealthCheckRequest { string service = 1; } in a gRPC length-prefixed frame.
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a);
        message.push(service.len() as u8);
        message.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let request = http::Request::post(format!("http://{host}:{port}/grpc.health.v1.Health/Check"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from(frame)));
    let Ok(request) = request else {
        return Outcome::Failure("bad gRPC request".to_owned());
    };
    match sender.send_request(request).await {
        Ok(response) => {
            let Ok(body) = response.into_body().collect().await else {
                return Outcome::Failure("reading the gRPC answer".to_owned());
            };
            let bytes = body.to_bytes();
            // HealthCheckResponse { ServingStatus status = 1; } SERVING is 1.
            if bytes.len() >= 7 && bytes[5] == 0x08 && bytes[6] == 1 {
                Outcome::Success
            } else {
                Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".to_owned())
            }
        }
        Err(e) => Outcome::Failure(format!("gRPC health check: {e}")),
    }
}

/// Tracks consecutive results against a probe's thresholds.
#[derive(Clone, Debug)]
pub struct Counter {
    success_threshold: i32,
    failure_threshold: i32,
    successes: i32,
    failures: i32,
    /// The last settled result: `Some(true)` passed, `Some(false)` failed.
    pub result: Option<bool>,
}

impl Counter {
    /// A counter for a probe (thresholds default to 1 and 3, as upstream).
    pub fn new(probe: &Probe) -> Self {
        Self {
            success_threshold: probe.success_threshold.unwrap_or(1).max(1),
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1),
            successes: 0,
            failures: 0,
            result: None,
        }
    }

    /// Adds a run; returns the settled result if it changed.
    pub fn observe(&mut self, passed: bool) -> Option<bool> {
        if passed {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= self.success_threshold && self.result != Some(true) {
                self.result = Some(true);
                return Some(true);
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= self.failure_threshold && self.result != Some(false) {
                self.result = Some(false);
                return Some(false);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_settle_at_the_thresholds() {
        let probe = Probe {
            failure_threshold: Some(2),
            success_threshold: Some(2),
            ..Default::default()
        };
        let mut c = Counter::new(&probe);
        assert_eq!(c.observe(true), None);
        assert_eq!(c.observe(true), Some(true));
        assert_eq!(c.observe(false), None);
        assert_eq!(c.observe(true), None);
        assert_eq!(c.observe(false), None);
        assert_eq!(c.observe(false), Some(false));
    }
}
