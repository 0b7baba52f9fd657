//! API aggregation against the real API server: an extension API server (the `wardle`
//! test server, HTTPS on 127.0.0.1 with a CA of its own) behind a Service, registered with
//! an APIService; the server checks it, proxies requests to it with its front-proxy
//! certificate and the caller's identity, and lists its group in discovery. Callers reach
//! the server over HTTPS with client certificates, as users do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, DeleteParams, PostParams};
use rkube_apiserver_tests::wardle::{RequestHeaderTrust, Wardle, openapi};
use rkube_apiserver_tests::{TestServer, start_with};
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const API_SERVICE: &str = "v1alpha1.wardle.example.com";
const FLUNDERS: &str = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders";

/// A server that checks remote APIServices every second.
async fn start() -> TestServer {
    start_with(|config| config.api_service_resync = Duration::from_secs(1)).await
}

/// An answer seen over HTTPS.
struct Answer {
    status: u16,
    body: Value,
}

/// An HTTPS client of the test server presenting a client certificate.
struct UserClient {
    tls: Arc<rustls::ClientConfig>,
    port: u16,
}

impl UserClient {
    /// With a certificate for `user` in `groups`, signed by the CA kept in the server's
    /// `tls/<prefix>ca.{crt,key}` (`""`: the cluster CA, `"front-proxy-"`: the request-header
    /// CA).
    fn new(t: &TestServer, prefix: &str, user: &str, groups: &[&str]) -> Self {
        let tls_dir = t.dir.path().join("tls");
        let read = |f: &str| std::fs::read_to_string(tls_dir.join(f)).unwrap();
        let (cert, key) = rkube_apiserver::certs::client_cert(
            &read(&format!("{prefix}ca.crt")),
            &read(&format!("{prefix}ca.key")),
            user,
            groups,
        )
        .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(
                rustls::pki_types::CertificateDer::from_pem_slice(t.server.ca_cert().as_bytes())
                    .unwrap(),
            )
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap();
        Self {
            tls: Arc::new(config),
            port: t.server.local_addr().port(),
        }
    }

    /// Sends a request and returns the answer's status and body as they stream.
    async fn open(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, hyper::body::Incoming) {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(connection.with_upgrades());
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(bytes::Bytes::from(body.to_owned())))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        (response.status().as_u16(), response.into_body())
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let (status, body) = self.open(method, path, headers, body).await;
        let bytes = body.collect().await.unwrap().to_bytes();
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// Asks to switch `path` to `protocol`; the status and, when switched, the connection.
    async fn upgrade(&self, path: &str, protocol: &str) -> (u16, hyper::upgrade::Upgraded) {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = (*self.tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(connection.with_upgrades());
        let request = http::Request::get(path)
            .header("host", "localhost")
            .header("connection", "Upgrade")
            .header("upgrade", protocol)
            .body(Full::new(bytes::Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let connection = response.headers().get("connection").unwrap();
        assert!(connection.to_str().unwrap().eq_ignore_ascii_case("upgrade"));
        assert_eq!(response.headers()["upgrade"], protocol);
        (status, hyper::upgrade::on(response).await.unwrap())
    }

    async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, &[], "").await
    }
}

/// A Service `api` in `default` whose port 443 leads to `port` on 127.0.0.1, through an
/// EndpointSlice (as the EndpointSlice controller would write it for a pod there).
async fn route_service(client: &kube::Client, port: u16) {
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc = json!({
        "metadata": {"name": "api"},
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
    });
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(svc).unwrap(),
        )
        .await
        .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let slice = json!({
        "metadata": {"name": "api-1", "labels": {"kubernetes.io/service-name": "api"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    slices
        .create(
            &PostParams::default(),
            &serde_json::from_value(slice).unwrap(),
        )
        .await
        .unwrap();
}

/// Registers the wardle group version, served by Service `api`.
async fn register(client: &kube::Client, ca_pem: &str) {
    let api: Api<APIService> = Api::all(client.clone());
    let service = json!({
        "metadata": {"name": API_SERVICE},
        "spec": {
            "group": "wardle.example.com",
            "version": "v1alpha1",
            "service": {"namespace": "default", "name": "api", "port": 443},
            "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            "groupPriorityMinimum": 2000,
            "versionPriority": 200,
        },
    });
    api.create(
        &PostParams::default(),
        &serde_json::from_value(service).unwrap(),
    )
    .await
    .unwrap();
}

/// Waits until the APIService's Available condition has `status` and `reason`; its message.
async fn available(client: &kube::Client, status: &str, reason: &str) -> String {
    let api: Api<APIService> = Api::all(client.clone());
    let mut last = None;
    for _ in 0..300 {
        let service = api.get(API_SERVICE).await.unwrap();
        let condition = service
            .status
            .and_then(|s| s.conditions)
            .and_then(|c| c.into_iter().find(|c| c.type_ == "Available"));
        if let Some(c) = &condition
            && c.status == status
            && c.reason.as_deref() == Some(reason)
        {
            return c.message.clone().unwrap_or_default();
        }
        last = condition;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("APIService never became {status}/{reason}; last {last:?}");
}

/// Retries `attempt` until it gives `Some`.
async fn eventually<T, F: Future<Output = Option<T>>>(mut attempt: impl FnMut() -> F) -> T {
    for _ in 0..300 {
        if let Some(done) = attempt().await {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the condition never held");
}

/// The next watch event on a streaming body (one event per line), within five seconds.
async fn next_event(body: &mut hyper::body::Incoming) -> Value {
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("no watch event within 5s")
        .unwrap()
        .unwrap();
    let data = frame.into_data().unwrap();
    serde_json::from_slice(data.strip_suffix(b"\n").unwrap_or(&data)).unwrap()
}

async fn get_json(client: &kube::Client, path: &str, accept: &str) -> Value {
    let request = http::Request::get(path)
        .header("Accept", accept)
        .body(Vec::new())
        .unwrap();
    serde_json::from_str(&client.request_text(request).await.unwrap()).unwrap()
}

/// `/openapi/v2` in JSON, and its ETag.
async fn openapi_v2(client: &kube::Client) -> (String, Value) {
    let request = http::Request::get("/openapi/v2")
        .header("Accept", "application/json")
        .body(kube::client::Body::from(Vec::new()))
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body = response.into_body().collect_bytes().await.unwrap();
    (etag, serde_json::from_slice(&body).unwrap())
}

/// What `/openapi/v3` says of the wardle group version: its `serverRelativeURL`.
async fn wardle_v3_url(client: &kube::Client) -> Option<String> {
    let root = get_json(client, "/openapi/v3", "application/json").await;
    root["paths"]["apis/wardle.example.com/v1alpha1"]["serverRelativeURL"]
        .as_str()
        .map(str::to_owned)
}

fn group_names(apis: &Value) -> Vec<String> {
    apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_authentication_config_map_tells_extension_servers_whom_to_trust() {
    let t = start().await;
    let trust = RequestHeaderTrust::read(&t.client).await;
    assert_eq!(trust.allowed_names, ["front-proxy-client"]);
    let tls = t.dir.path().join("tls");
    assert_eq!(
        trust.client_ca,
        std::fs::read_to_string(tls.join("front-proxy-ca.crt")).unwrap()
    );
    assert_ne!(trust.client_ca, t.server.ca_cert());
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(t.client.clone(), "kube-system");
    let data = configmaps
        .get("extension-apiserver-authentication")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(data["client-ca-file"], t.server.ca_cert());
    assert_eq!(
        data["requestheader-username-headers"],
        "[\"X-Remote-User\"]"
    );
    assert_eq!(data["requestheader-group-headers"], "[\"X-Remote-Group\"]");
    assert_eq!(
        data["requestheader-extra-headers-prefix"],
        "[\"X-Remote-Extra-\"]"
    );
}

#[tokio::test]
async fn a_remote_api_service_is_checked_proxied_listed_and_removed() {
    let t = start().await;
    let trust = RequestHeaderTrust::read(&t.client).await;
    let wardle = Wardle::start(trust, &["api.default.svc"]).await;
    wardle.insert("default", "one");
    route_service(&t.client, wardle.addr.port()).await;
    register(&t.client, &wardle.ca_pem).await;
    assert_eq!(
        available(&t.client, "True", "Passed").await,
        "all checks passed"
    );
    let check = wardle.seen()[0].clone();
    assert_eq!(
        (check.path.as_str(), check.proxy.as_str()),
        ("/apis/wardle.example.com/v1alpha1", "front-proxy-client")
    );
    assert_eq!(check.users, ["system:kube-aggregator"]);

    // A user's request reaches the backend with the user's identity, not the one the client
    // claims in its own X-Remote-* headers.
    let jane = UserClient::new(&t, "", "jane", &["devs"]);
    let answer = jane
        .send(
            "GET",
            FLUNDERS,
            &[
                ("X-Remote-User", "mallory"),
                ("X-Remote-Group", "system:masters"),
            ],
            "",
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["kind"], "FlunderList");
    assert_eq!(answer.body["items"][0]["metadata"]["name"], "one");
    let seen = wardle.seen_api().pop().unwrap();
    assert_eq!(seen.path, format!("{FLUNDERS}"));
    assert_eq!(seen.proxy, "front-proxy-client");
    assert_eq!(seen.users, ["jane"]);
    assert_eq!(seen.groups, ["devs", "system:authenticated"]);

    // A watch streams each event as the backend sends it.
    let (status, mut watch) = jane
        .open("GET", &format!("{FLUNDERS}?watch=true"), &[], "")
        .await;
    assert_eq!(status, 200);
    let first = next_event(&mut watch).await;
    assert_eq!(
        (
            first["type"].as_str(),
            first["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("one"))
    );

    // Bodies and answers pass both ways, codes included.
    let created = jane
        .send("POST", FLUNDERS, &[], r#"{"metadata": {"name": "two"}}"#)
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(
        created.body["metadata"]["annotations"]["wardle.example.com/created-by"],
        "jane"
    );
    // An upgrade request is switched through to the backend, both ways.
    let (status, upgraded) = jane.upgrade(&format!("{FLUNDERS}/one/echo"), "echo").await;
    assert_eq!(status, 101);
    let mut upgraded = TokioIo::new(upgraded);
    upgraded.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), upgraded.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"ping");
    drop(upgraded);

    let second = next_event(&mut watch).await;
    assert_eq!(second["object"]["metadata"]["name"], "two");
    drop(watch);
    let missing = jane.get(&format!("{FLUNDERS}/three")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body["message"],
        "flunders.wardle.example.com \"three\" not found"
    );
    // Components in the server's process are proxied too, as system:apiserver.
    let listed = get_json(&t.client, FLUNDERS, "application/json").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    assert_eq!(wardle.seen_api().pop().unwrap().users, ["system:apiserver"]);

    // Discovery lists the group, ahead of the custom resource groups' priority.
    let apis = get_json(&t.client, "/apis", "application/json").await;
    let wardle_group = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "wardle.example.com")
        .unwrap()
        .clone();
    assert_eq!(
        wardle_group["preferredVersion"]["groupVersion"],
        "wardle.example.com/v1alpha1"
    );
    let group = get_json(&t.client, "/apis/wardle.example.com", "application/json").await;
    assert_eq!(group["kind"], "APIGroup");
    let aggregated = get_json(
        &t.client,
        "/apis",
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    )
    .await;
    let item = aggregated["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "wardle.example.com")
        .unwrap()
        .clone();
    let flunders = &item["versions"][0]["resources"][0];
    assert_eq!(
        (
            flunders["resource"].as_str(),
            flunders["scope"].as_str(),
            flunders["responseKind"]["kind"].as_str()
        ),
        (Some("flunders"), Some("Namespaced"), Some("Flunder"))
    );
    assert_eq!(item["versions"][0]["freshness"], "Current");

    // The backend goes away: the APIService says so and requests are refused as upstream
    // refuses them.
    wardle.stop();
    let message = available(&t.client, "False", "FailedDiscoveryCheck").await;
    assert!(
        message.starts_with(
            "failing or missing response from https://api.default.svc:443/apis/wardle.example.com/v1alpha1:"
        ),
        "{message}"
    );
    let refused = jane.get(FLUNDERS).await;
    assert_eq!(refused.status, 503);
    assert_eq!(
        (
            refused.body["reason"].as_str(),
            refused.body["message"].as_str()
        ),
        (Some("ServiceUnavailable"), Some("service unavailable"))
    );

    // Without its APIService the group is gone.
    let api: Api<APIService> = Api::all(t.client.clone());
    api.delete(API_SERVICE, &DeleteParams::default())
        .await
        .unwrap();
    eventually(|| async {
        let answer = jane.get(FLUNDERS).await;
        (answer.status == 404).then_some(())
    })
    .await;
    let apis = get_json(&t.client, "/apis", "application/json").await;
    assert!(!group_names(&apis).contains(&"wardle.example.com".to_owned()));
    assert_eq!(jane.get("/apis/wardle.example.com").await.status, 404);
}

#[tokio::test]
async fn an_api_service_without_a_way_to_its_server_is_unavailable_with_upstreams_reason() {
    let t = start().await;
    register(&t.client, "").await;
    assert_eq!(
        available(&t.client, "False", "ServiceNotFound").await,
        "service/api in \"default\" is not present"
    );
    let services: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let svc = json!({
        "metadata": {"name": "api"},
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443}]},
    });
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(svc).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        available(&t.client, "False", "EndpointsNotFound").await,
        "cannot find endpointslices for service/api in \"default\""
    );
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), "default");
    let slice = json!({
        "metadata": {"name": "api-1", "labels": {"kubernetes.io/service-name": "api"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": false}}],
        "ports": [{"name": "https", "port": 8443, "protocol": "TCP"}],
    });
    slices
        .create(
            &PostParams::default(),
            &serde_json::from_value(slice).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        available(&t.client, "False", "MissingEndpoints").await,
        "endpointslices for service/api in \"default\" have no addresses with port name \"https\""
    );
    // The group is listed all the same (upstream lists every APIService's group), and its
    // requests are refused.
    let apis = get_json(&t.client, "/apis", "application/json").await;
    assert!(group_names(&apis).contains(&"wardle.example.com".to_owned()));
    let request = http::Request::get(FLUNDERS).body(Vec::new()).unwrap();
    let err = t.client.request_text(request).await.unwrap_err();
    let status = rkube_apiserver_tests::api_error(err);
    assert_eq!(
        (status.code, status.message.as_str()),
        (503, "service unavailable")
    );
}

#[tokio::test]
async fn a_front_proxy_certificate_vouches_for_the_request_header_user() {
    let t = start().await;
    let proxy = UserClient::new(&t, "front-proxy-", "front-proxy-client", &[]);
    let review = r#"{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}"#;
    let path = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    let answer = proxy
        .send(
            "POST",
            path,
            &[
                ("X-Remote-User", "alice"),
                ("X-Remote-Group", "team-a"),
                ("X-Remote-Group", "team-b"),
                ("X-Remote-Extra-Scopes", "read"),
            ],
            review,
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let user = &answer.body["status"]["userInfo"];
    assert_eq!(user["username"], "alice");
    assert_eq!(
        user["groups"],
        json!(["team-a", "team-b", "system:authenticated"])
    );
    assert_eq!(user["extra"]["scopes"], json!(["read"]));
    // Without a user header, or from a name not allowed, nobody is authenticated.
    assert_eq!(proxy.send("POST", path, &[], review).await.status, 401);
    let other = UserClient::new(&t, "front-proxy-", "someone-else", &[]);
    let headers = [("X-Remote-User", "alice")];
    assert_eq!(other.send("POST", path, &headers, review).await.status, 401);
    // A cluster user's X-Remote-User is ignored.
    let jane = UserClient::new(&t, "", "jane", &[]);
    let answer = jane.send("POST", path, &headers, review).await;
    assert_eq!(answer.body["status"]["userInfo"]["username"], "jane");
}

#[tokio::test]
async fn a_remote_group_versions_openapi_joins_the_servers_documents_while_it_is_registered() {
    let t = start().await;
    let (local_etag, local) = openapi_v2(&t.client).await;
    assert!(local["definitions"].get(openapi::FLUNDER).is_none());
    let trust = RequestHeaderTrust::read(&t.client).await;
    let wardle = Wardle::start(trust, &["api.default.svc"]).await;
    route_service(&t.client, wardle.addr.port()).await;
    register(&t.client, &wardle.ca_pem).await;
    available(&t.client, "True", "Passed").await;

    // The v3 root lists the backend's group version (and not its other paths), and the
    // document it points to is the backend's own.
    let url = eventually(|| wardle_v3_url(&t.client)).await;
    assert!(
        url.starts_with("/openapi/v3/apis/wardle.example.com/v1alpha1?hash="),
        "{url}"
    );
    let root = get_json(&t.client, "/openapi/v3", "application/json").await;
    assert!(root["paths"].get("version").is_none());
    assert!(root["paths"].get("apis/apps/v1").is_some());
    let doc = get_json(&t.client, &url, "application/json").await;
    assert_eq!(doc, openapi::v3());
    // Fetched as upstream's aggregator fetches them: as system:aggregator, through the
    // front proxy.
    let downloads: Vec<_> = wardle
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/openapi/"))
        .collect();
    let paths: BTreeSet<&str> = downloads.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        BTreeSet::from([
            "/openapi/v2",
            "/openapi/v3",
            "/openapi/v3/apis/wardle.example.com/v1alpha1?hash=WARDLE1"
        ])
    );
    for download in &downloads {
        assert_eq!(download.users, ["system:aggregator"]);
        assert!(download.groups.is_empty(), "{download:?}");
        assert_eq!(download.proxy, "front-proxy-client");
    }

    // The v2 document has the backend's paths and definitions; its own ObjectMeta, which
    // differs from this server's, is renamed as upstream renames it.
    let (etag, merged) = openapi_v2(&t.client).await;
    assert_ne!(etag, local_etag);
    let flunder = &merged["definitions"][openapi::FLUNDER];
    assert_eq!(
        flunder["x-kubernetes-group-version-kind"][0]["kind"],
        "Flunder"
    );
    assert_eq!(
        flunder["properties"]["metadata"]["$ref"],
        format!("#/definitions/{}_v2", openapi::OBJECT_META)
    );
    assert_eq!(
        merged["definitions"][openapi::OBJECT_META],
        local["definitions"][openapi::OBJECT_META]
    );
    let patch = &merged["paths"]["/apis/wardle.example.com/v1alpha1/namespaces/{namespace}/flunders/{name}"]
        ["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Flunder");
    assert!(merged["definitions"]["io.k8s.api.apps.v1.Deployment"].is_object());

    // While the backend cannot be reached, what it published last stays, as upstream keeps
    // its last success.
    wardle.stop();
    available(&t.client, "False", "FailedDiscoveryCheck").await;
    assert_eq!(wardle_v3_url(&t.client).await, Some(url.clone()));
    assert_eq!(openapi_v2(&t.client).await.0, etag);

    // Deleting the APIService takes its documents away.
    let api: Api<APIService> = Api::all(t.client.clone());
    api.delete(API_SERVICE, &DeleteParams::default())
        .await
        .unwrap();
    eventually(|| async { wardle_v3_url(&t.client).await.is_none().then_some(()) }).await;
    let (etag, doc) = openapi_v2(&t.client).await;
    assert!(doc["definitions"].get(openapi::FLUNDER).is_none());
    assert_eq!(etag, local_etag);
    let request = http::Request::get("/openapi/v3/apis/wardle.example.com/v1alpha1")
        .body(Vec::new())
        .unwrap();
    let err = t.client.request_text(request).await.unwrap_err();
    assert_eq!(rkube_apiserver_tests::api_error(err).code, 404);
}

#[tokio::test]
async fn a_users_uid_reaches_the_extension_server() {
    let t = start().await;
    let trust = RequestHeaderTrust::read(&t.client).await;
    let wardle = Wardle::start(trust, &["api.default.svc"]).await;
    route_service(&t.client, wardle.addr.port()).await;
    register(&t.client, &wardle.ca_pem).await;
    available(&t.client, "True", "Passed").await;
    // A service account's token names its uid.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(t.client.clone(), "default");
    let account = accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "reader"}})).unwrap(),
        )
        .await
        .unwrap();
    let token = accounts
        .create_token_request(
            "reader",
            &PostParams::default(),
            &serde_json::from_value(json!({"spec": {"audiences": []}})).unwrap(),
        )
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let url = format!("https://127.0.0.1:{}", t.server.local_addr().port());
    let mut config = kube::Config::new(url.parse().unwrap());
    let ca =
        rustls::pki_types::CertificateDer::from_pem_slice(t.server.ca_cert().as_bytes()).unwrap();
    config.root_cert = Some(vec![ca.to_vec()]);
    config.auth_info.token = Some(token.into());
    let reader = kube::Client::try_from(config).unwrap();
    let request = http::Request::get(FLUNDERS).body(Vec::new()).unwrap();
    // Forbidden or not, the answer does not matter: only a request that reached the backend.
    let _ = reader.request_text(request).await;
    let uid = account.metadata.uid.unwrap();
    eventually(|| async {
        wardle
            .seen_api()
            .iter()
            .any(|s| s.uids == [uid.as_str()])
            .then_some(())
    })
    .await;
}
