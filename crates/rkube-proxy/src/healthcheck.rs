//! Health check node ports: for a LoadBalancer Service with externalTrafficPolicy Local, the
//! proxy answers HTTP on its `healthCheckNodePort` with 200 while the node has ready endpoints
//! of the Service and 503 otherwise, so that load balancers send traffic only to nodes that
//! can serve it (upstream's service health server, with its body and headers).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::model::ServicePort;

/// What one health check port reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthInfo {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// Its ready endpoints on this node.
    pub local_endpoints: usize,
}

/// The health check ports `ports` ask for, with what each reports.
pub fn desired(ports: &[ServicePort]) -> BTreeMap<u16, HealthInfo> {
    let mut out: BTreeMap<u16, HealthInfo> = BTreeMap::new();
    for sp in ports {
        let Some(port) = sp.health_check_node_port else {
            continue;
        };
        let local = sp.endpoints.iter().filter(|e| e.local && e.ready).count();
        let entry = out.entry(port).or_insert_with(|| HealthInfo {
            namespace: sp.namespace.clone(),
            name: sp.name.clone(),
            local_endpoints: 0,
        });
        if entry.namespace == sp.namespace && entry.name == sp.name {
            // Every port of the Service lists the same endpoints: count them once.
            entry.local_endpoints = entry.local_endpoints.max(local);
        }
    }
    out
}

/// The HTTP response for `info`.
pub fn response(info: &HealthInfo) -> String {
    let body = serde_json::json!({
        "service": {"namespace": info.namespace, "name": info.name},
        "localEndpoints": info.local_endpoints,
        "serviceProxyHealthy": true,
    })
    .to_string();
    let status = if info.local_endpoints > 0 {
        "200 OK"
    } else {
        "503 Service Unavailable"
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nX-Load-Balancing-Endpoint-Weight: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        info.local_endpoints,
        body.len()
    )
}

/// The listeners of the health check ports.
#[derive(Default)]
pub struct HealthServers {
    servers: BTreeMap<u16, (Arc<Mutex<HealthInfo>>, JoinHandle<()>)>,
}

impl HealthServers {
    /// Opens, updates and closes listeners to match `want`.
    pub async fn sync(&mut self, want: BTreeMap<u16, HealthInfo>) {
        self.servers.retain(|port, (_, task)| {
            let keep = want.contains_key(port);
            if !keep {
                task.abort();
            }
            keep
        });
        for (port, info) in want {
            if let Some((shared, _)) = self.servers.get(&port) {
                *shared.lock().unwrap_or_else(|e| e.into_inner()) = info;
                continue;
            }
            let listener = match TcpListener::bind(("0.0.0.0", port)).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(port, error = %e, "opening a health check node port");
                    continue;
                }
            };
            let shared = Arc::new(Mutex::new(info));
            let task = tokio::spawn(serve(listener, shared.clone()));
            self.servers.insert(port, (shared, task));
        }
    }
}

impl Drop for HealthServers {
    fn drop(&mut self) {
        for (_, task) in self.servers.values() {
            task.abort();
        }
    }
}

async fn serve(listener: TcpListener, info: Arc<Mutex<HealthInfo>>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let text = response(&info.lock().unwrap_or_else(|e| e.into_inner()));
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
            let _ = stream.write_all(text.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_only_with_local_ready_endpoints() {
        let info = HealthInfo {
            namespace: "ns".into(),
            name: "lb".into(),
            local_endpoints: 0,
        };
        let r = response(&info);
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(r.ends_with(
            r#"{"localEndpoints":0,"service":{"name":"lb","namespace":"ns"},"serviceProxyHealthy":true}"#
        ));
        let r = response(&HealthInfo {
            local_endpoints: 2,
            ..info
        });
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(r.contains("X-Load-Balancing-Endpoint-Weight: 2\r\n"));
    }
}
