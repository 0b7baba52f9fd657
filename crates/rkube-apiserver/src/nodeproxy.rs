//! Requests the API server hands to a node's kubelet: `pods/log`, `pods/exec`, `pods/attach`,
//! `pods/portforward` and `nodes/proxy`. The caller is authenticated here; the kubelet is
//! reached over TLS with the API server's kubelet client certificate, on a connection made
//! for the one request (see `rkube_forward`).

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};
use http_body_util::BodyExt;
use rkube_api::ApiError;
use serde_json::Value;

use crate::app::App;
use crate::encode::{Body, error_response};

/// How the API server reaches kubelets: its client certificate (CN
/// kube-apiserver-kubelet-client, group system:masters), and no check of the kubelets'
/// serving certificates (upstream's default without `--kubelet-certificate-authority`).
#[derive(Clone)]
pub struct KubeletTls(pub Arc<rustls::ClientConfig>);

impl std::fmt::Debug for KubeletTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeletTls")
    }
}

#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A verifier that accepts any server certificate (its signatures still checked), for
/// backends whose identity is not verified (kubelets; `insecureSkipTLSVerify` APIServices).
pub(crate) fn any_server_cert(
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Arc<dyn rustls::client::danger::ServerCertVerifier> {
    Arc::new(AnyServerCert(provider))
}

impl KubeletTls {
    /// From the client certificate and key (PEM).
    pub fn new(cert: &str, key: &str) -> Result<Self, String> {
        use rustls::pki_types::pem::PemObject;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
            .filter_map(Result::ok)
            .collect();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
            .with_client_auth_cert(certs, key)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self(Arc::new(config)))
    }
}

/// A request for a kubelet: what the path names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// `/api/v1/namespaces/{ns}/pods/{name}/{log|exec|attach|portforward}`.
    Pod {
        namespace: String,
        name: String,
        subresource: String,
    },
    /// `/api/v1/nodes/{name}/proxy/{rest}`.
    Node { name: String, rest: String },
}

/// Whether the path is one the kubelet serves.
pub(crate) fn target(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [
            "api",
            "v1",
            "namespaces",
            ns,
            "pods",
            name,
            sub @ ("log" | "exec" | "attach" | "portforward"),
        ] => Some(Target::Pod {
            namespace: (*ns).to_owned(),
            name: (*name).to_owned(),
            subresource: (*sub).to_owned(),
        }),
        ["api", "v1", "nodes", name, "proxy", rest @ ..] => Some(Target::Node {
            name: (*name).to_owned(),
            rest: rest.join("/"),
        }),
        _ => None,
    }
}

/// The options object of a connect request, as upstream decodes it from the query
/// (PodExecOptions, PodAttachOptions, PodPortForwardOptions, NodeProxyOptions); none for a
/// log request, which is a read.
fn connect_options(target: &Target, query: Option<&str>) -> Option<Value> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let all = |key: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let mut options = serde_json::Map::new();
    let kind = match target {
        Target::Node { rest, .. } => {
            options.insert("path".into(), Value::from(format!("/{rest}")));
            "NodeProxyOptions"
        }
        Target::Pod { subresource, .. } => {
            let kind = match subresource.as_str() {
                "exec" => "PodExecOptions",
                "attach" => "PodAttachOptions",
                "portforward" => "PodPortForwardOptions",
                _ => return None,
            };
            if kind == "PodPortForwardOptions" {
                let ports: Vec<Value> = all("ports")
                    .iter()
                    .flat_map(|p| p.split(','))
                    .filter_map(|p| p.trim().parse::<u16>().ok())
                    .map(Value::from)
                    .collect();
                if !ports.is_empty() {
                    options.insert("ports".into(), Value::from(ports));
                }
            } else {
                for flag in ["stdin", "stdout", "stderr", "tty"] {
                    if all(flag).last().is_some_and(|v| matches!(*v, "true" | "1")) {
                        options.insert(flag.into(), Value::Bool(true));
                    }
                }
                if let Some(container) = all("container").last() {
                    options.insert("container".into(), Value::from(*container));
                }
                if kind == "PodExecOptions" {
                    options.insert("command".into(), Value::from(all("command")));
                }
            }
            kind
        }
    };
    options.insert("kind".into(), Value::from(kind));
    options.insert("apiVersion".into(), Value::from("v1"));
    Some(Value::Object(options))
}

impl App {
    /// Admission of a connect request (exec, attach, port-forward, node proxy): webhooks and
    /// policies that take CONNECT see its options, as upstream admits connects.
    pub(crate) async fn admit_connect(
        &self,
        target: &Target,
        query: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(mut options) = connect_options(target, query) else {
            return Ok(());
        };
        let (kind, namespace, name, subresource) = match target {
            Target::Pod {
                namespace,
                name,
                subresource,
            } => ("Pod", Some(namespace.as_str()), name, subresource.as_str()),
            Target::Node { name, .. } => ("Node", None, name, "proxy"),
        };
        let request = crate::admission::Request {
            attrs: crate::admission::Attributes {
                rt: crate::admission::kind("", kind)?,
                subresource: Some(subresource),
                namespace,
                name,
                operation: crate::admission::Operation::Connect,
                dry_run: false,
            },
            admitted_as: name,
            old: None,
            scheme_defaulted: false,
            validated: true,
        };
        self.admit(&request, Some(&mut options)).await
    }
}

fn bad_request(message: String) -> Response<Body> {
    error_response(&ApiError::BadRequest(message))
}

async fn object(
    app: &App,
    plural: &str,
    ns: Option<&str>,
    name: &str,
) -> Result<Value, Response<Body>> {
    let Some(rt) = rkube_api::registry::all().by_path("", "v1", plural) else {
        return Err(error_response(&ApiError::NoSuchPath));
    };
    app.cached_object(rt, ns, name).await.ok_or_else(|| {
        error_response(&ApiError::NotFound {
            group: String::new(),
            resource: plural.to_owned(),
            name: name.to_owned(),
        })
    })
}

fn node_address(node: &Value) -> Option<(String, u16)> {
    let status = &node["status"];
    let addresses = status["addresses"].as_array()?;
    let ip = addresses
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .or_else(|| addresses.first())?["address"]
        .as_str()?
        .to_owned();
    let port = status["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(10250);
    Some((ip, port))
}

fn container_names(pod: &Value, key: &str) -> Vec<String> {
    pod["spec"][key]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The container a request names, or the pod's only one (upstream's rules and messages).
fn pick_container(pod: &Value, pod_name: &str, asked: Option<&str>) -> Result<String, String> {
    let app = container_names(pod, "containers");
    let init = container_names(pod, "initContainers");
    let ephemeral = container_names(pod, "ephemeralContainers");
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if app.iter().chain(&init).chain(&ephemeral).any(|n| n == c) => Ok(c.to_owned()),
        Some(c) => Err(format!("container {c} is not valid for pod {pod_name}")),
        None if app.len() == 1 => Ok(app[0].clone()),
        None => {
            let mut message = format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                app.join(" ")
            );
            if !init.is_empty() {
                message.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(message)
        }
    }
}

fn query_without(query: Option<&str>, drop: &str) -> String {
    let kept: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k != drop)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish()
}

/// Serves a request for a kubelet.
pub(crate) async fn handle<B>(
    app: Arc<App>,
    target: Target,
    mut request: Request<B>,
) -> Response<Body> {
    let query = request.uri().query().map(str::to_owned);
    let (node_name, path) = match &target {
        Target::Pod {
            namespace,
            name,
            subresource,
        } => {
            let pod = match object(&app, "pods", Some(namespace), name).await {
                Ok(p) => p,
                Err(r) => return r,
            };
            let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
                return bad_request(format!("pod {name} does not have a host assigned"));
            };
            let asked = form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
                .find(|(k, _)| k == "container")
                .map(|(_, v)| v.into_owned());
            let rest = query_without(query.as_deref(), "container");
            let path = if subresource == "portforward" {
                format!("/portForward/{namespace}/{name}?{rest}")
            } else {
                let container = match pick_container(&pod, name, asked.as_deref()) {
                    Ok(c) => c,
                    Err(message) => return bad_request(message),
                };
                let verb = if subresource == "log" {
                    "containerLogs"
                } else {
                    subresource.as_str()
                };
                format!("/{verb}/{namespace}/{name}/{container}?{rest}")
            };
            (node.to_owned(), path)
        }
        Target::Node { name, rest } => {
            let path = match &query {
                Some(q) => format!("/{rest}?{q}"),
                None => format!("/{rest}"),
            };
            (name.clone(), path)
        }
    };
    let node = match object(&app, "nodes", None, &node_name).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let Some((ip, port)) = node_address(&node) else {
        return error_response(&ApiError::Unavailable(format!(
            "no address known for node {node_name:?}"
        )));
    };
    let Some(tls) = app.config.kubelet_tls.clone() else {
        return error_response(&ApiError::Unavailable(
            "this server has no kubelet client certificate".to_owned(),
        ));
    };
    let tcp = match tokio::net::TcpStream::connect((ip.as_str(), port)).await {
        Ok(t) => t,
        Err(e) => {
            return error_response(&ApiError::Unavailable(format!(
                "error dialing backend: dial tcp {ip}:{port}: {e}"
            )));
        }
    };
    let server_name = match rustls::pki_types::ServerName::try_from(ip.clone()) {
        Ok(n) => n,
        Err(e) => return error_response(&ApiError::Unavailable(e.to_string())),
    };
    let stream = match tokio_rustls::TlsConnector::from(tls.0)
        .connect(server_name, tcp)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            return error_response(&ApiError::Unavailable(format!(
                "error dialing backend: {e}"
            )));
        }
    };
    let upgrade = if rkube_forward::is_upgrade(request.headers()) {
        request
            .extensions_mut()
            .remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    let authority = format!("{ip}:{port}");
    match rkube_forward::forward(
        stream,
        request.method(),
        &path,
        &authority,
        request.headers(),
        upgrade,
    )
    .await
    {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            // The kubelet's body is streamed (logs -f); an error from it ends the stream.
            let frames = futures::stream::unfold(body, |mut body| async move {
                match body.frame().await {
                    Some(Ok(frame)) => Some((Ok::<_, Infallible>(frame), body)),
                    _ => None,
                }
            });
            Response::from_parts(
                parts,
                BodyExt::boxed_unsync(http_body_util::StreamBody::new(frames)),
            )
        }
        Err(e) => error_response(&ApiError::Unavailable(e.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_options_are_read_from_the_query_as_upstream() {
        let pod = |sub: &str| Target::Pod {
            namespace: "ns".into(),
            name: "p".into(),
            subresource: sub.into(),
        };
        let exec = connect_options(
            &pod("exec"),
            Some("command=ls&command=-l&container=c&stdin=true&tty=false"),
        );
        assert_eq!(
            exec,
            Some(
                serde_json::json!({"kind": "PodExecOptions", "apiVersion": "v1",
                "stdin": true, "container": "c", "command": ["ls", "-l"]})
            )
        );
        let forward = connect_options(&pod("portforward"), Some("ports=8080,9090"));
        assert_eq!(forward.unwrap()["ports"], serde_json::json!([8080, 9090]));
        let node = Target::Node {
            name: "n".into(),
            rest: "stats/summary".into(),
        };
        assert_eq!(
            connect_options(&node, None).unwrap()["path"],
            "/stats/summary"
        );
        assert_eq!(connect_options(&pod("log"), Some("follow=true")), None);
    }

    #[test]
    fn kubelet_paths_are_recognized() {
        assert_eq!(
            target("/api/v1/namespaces/default/pods/web/log"),
            Some(Target::Pod {
                namespace: "default".into(),
                name: "web".into(),
                subresource: "log".into()
            })
        );
        assert_eq!(
            target("/api/v1/nodes/n1/proxy/stats/summary"),
            Some(Target::Node {
                name: "n1".into(),
                rest: "stats/summary".into()
            })
        );
        assert_eq!(target("/api/v1/namespaces/default/pods/web/status"), None);
    }

    #[test]
    fn a_pod_with_several_containers_needs_a_name() {
        let pod = serde_json::json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(
            pick_container(&pod, "web", None),
            Err("a container name must be specified for pod web, choose one of: [a b] or one of the init containers: [i]".to_owned())
        );
        assert_eq!(pick_container(&pod, "web", Some("i")), Ok("i".to_owned()));
        assert_eq!(
            pick_container(&pod, "web", Some("x")),
            Err("container x is not valid for pod web".to_owned())
        );
    }
}
