//! A validating admission webhook on loopback for the benchmark: HTTPS with a certificate
//! from a CA of its own, allowing every request, counting the reviews it answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// A running webhook server.
pub struct Webhook {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The CA its certificate chains to, PEM.
    pub ca_pem: String,
    /// Reviews answered so far.
    pub reviews: Arc<AtomicUsize>,
}

fn acceptor() -> (tokio_rustls::TlsAcceptor, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench-webhook-ca");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem())
}

/// Answers one `AdmissionReview`: allowed, with the request's uid.
fn review(body: &[u8]) -> Vec<u8> {
    let review: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": true},
    }))
    .unwrap()
}

impl Webhook {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let (acceptor, ca_pem) = acceptor();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let reviews = Arc::new(AtomicUsize::new(0));
        let counter = reviews.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, counter) = (acceptor.clone(), counter.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let counter = counter.clone();
                        async move {
                            let body = BodyExt::collect(request.into_body()).await?.to_bytes();
                            counter.fetch_add(1, Ordering::Relaxed);
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(
                                bytes::Bytes::from(review(&body)),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            port,
            ca_pem,
            reviews,
        }
    }

    /// A `ValidatingWebhookConfiguration` that sends every create of `resource` in
    /// `group`/`version` here, from namespaces labelled `bench-webhook: "on"`.
    pub fn configuration(&self, group: &str, version: &str, resource: &str) -> Value {
        use base64::Engine;
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "bench"},
            "webhooks": [{
                "name": "validate.bench.example.com",
                "clientConfig": {
                    "url": format!("https://127.0.0.1:{}/validate", self.port),
                    "caBundle": base64::engine::general_purpose::STANDARD.encode(&self.ca_pem),
                },
                "rules": [{"operations": ["CREATE"], "apiGroups": [group],
                           "apiVersions": [version], "resources": [resource]}],
                "namespaceSelector": {"matchLabels": {"bench-webhook": "on"}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
                "failurePolicy": "Fail",
            }],
        })
    }

    /// Reviews answered so far.
    pub fn answered(&self) -> usize {
        self.reviews.load(Ordering::Relaxed)
    }
}
