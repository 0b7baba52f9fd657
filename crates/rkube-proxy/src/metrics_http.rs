//! A minimal HTTP endpoint for Prometheus text: `GET /metrics` (and `/healthz`) on one
//! address, enough for scrapers and curl, one request per connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Renders the metrics text.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The response to one request line.
fn respond(request: &str, render: &Render) -> String {
    let path = request
        .lines()
        .next()
        .and_then(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("GET")).then(|| words.next())?
        })
        .unwrap_or("");
    let (status, kind, body) = match path.split('?').next().unwrap_or("") {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", render()),
        "/healthz" | "/livez" => ("200 OK", "text/plain", "ok".to_owned()),
        _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Binds `address`.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Serves until `stop` resolves.
pub async fn serve(listener: TcpListener, render: Render, stop: impl Future<Output = ()>) {
    let accept = async {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let render = render.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut len = 0;
                // Read up to the end of the request head (bodies are not expected).
                while len < buf.len() {
                    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf[len..]))
                        .await
                    {
                        Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                        Ok(Ok(n)) => len += n,
                    }
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let request = String::from_utf8_lossy(&buf[..len]);
                let _ = stream
                    .write_all(respond(&request, &render).as_bytes())
                    .await;
                let _ = stream.shutdown().await;
            });
        }
    };
    tokio::select! {
        () = accept => {}
        () = stop => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_healthz_and_everything_else() {
        let render: Render = Arc::new(|| "x 1\n".to_owned());
        let ok = respond("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", &render);
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(ok.ends_with("\r\n\r\nx 1\n"));
        assert!(respond("GET /healthz HTTP/1.1\r\n\r\n", &render).ends_with("ok"));
        assert!(respond("GET /other HTTP/1.1\r\n\r\n", &render).starts_with("HTTP/1.1 404"));
        assert!(respond("POST /metrics HTTP/1.1\r\n\r\n", &render).starts_with("HTTP/1.1 404"));
    }
}
