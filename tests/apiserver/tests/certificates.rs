//! Certificate signing requests against the real API server, in process: a node joining
//! with the join secret gets its kubelet client certificate approved and issued, requests
//! outside that shape wait for a person, and what a person approves is issued.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use rkube_apiserver::auth::UserInfo;
use rkube_apiserver::{ApiServer, ServerConfig};
use rkube_apiserver_tests::open_store;
use rkube_controllers::ControllerManager;
use serde_json::json;
use x509_parser::prelude::X509Certificate;

const JOIN_SECRET: &str = "0123456789abcdef0123456789abcdef";
const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A server that accepts the join secret, with the CSR approver and signer running.
struct Cluster {
    server: ApiServer,
    _manager: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.https_port = 0;
    config.bind_address = [127, 0, 0, 1].into();
    config
        .extra_tokens
        .insert(JOIN_SECRET, UserInfo::bootstrapper("rkube"));
    let server = ApiServer::start(config, open_store(dir.path()).await)
        .await
        .unwrap();
    let manager = ControllerManager::new(server.client(), server.ca_cert())
        .with_signing_key(server.ca_key())
        .with_controllers(&["csrapproving", "csrsigning"]);
    Cluster {
        _manager: tokio::spawn(manager.run()),
        server,
        _dir: dir,
    }
}

/// The DER of the first PEM block (the base64 body, read as a ByteString reads it).
fn der_of(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    serde_json::from_value::<ByteString>(json!(body)).unwrap().0
}

fn base64_of(text: &str) -> String {
    serde_json::to_value(ByteString(text.as_bytes().to_vec()))
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// A client over HTTPS that trusts the cluster CA and presents `token` or a certificate.
fn https_client(
    server: &ApiServer,
    token: Option<&str>,
    cert: Option<(&str, &str)>,
) -> kube::Client {
    let url = format!("https://127.0.0.1:{}", server.local_addr().port());
    let mut config = kube::Config::new(url.parse().unwrap());
    config.root_cert = Some(vec![der_of(server.ca_cert())]);
    if let Some(token) = token {
        config.auth_info.token = Some(token.to_owned().into());
    }
    if let Some((cert, key)) = cert {
        config.auth_info.client_certificate_data = Some(base64_of(cert));
        config.auth_info.client_key_data = Some(base64_of(key).into());
    }
    kube::Client::try_from(config).unwrap()
}

/// A new key and a PEM request for `cn` in `organization`.
fn request(cn: &str, organization: &str) -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, organization);
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    (key, pem)
}

fn csr(
    name: &str,
    pem: &str,
    signer: &str,
    usages: &[&str],
    expiration_seconds: Option<i32>,
) -> CertificateSigningRequest {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "request": base64_of(pem),
            "signerName": signer,
            "usages": usages,
            "expirationSeconds": expiration_seconds,
        },
    }))
    .unwrap()
}

fn conditions(csr: &CertificateSigningRequest) -> Vec<(String, String, String, String)> {
    csr.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .map(|c| {
            (
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
        .collect()
}

async fn issued(api: &Api<CertificateSigningRequest>, name: &str) -> CertificateSigningRequest {
    eventually(&format!("{name} to be issued"), || async {
        let csr = api.get(name).await.unwrap();
        csr.status
            .as_ref()
            .and_then(|s| s.certificate.as_ref())
            .is_some_and(|c| !c.0.is_empty())
            .then_some(csr)
    })
    .await
}

fn certificate_pem(csr: &CertificateSigningRequest) -> String {
    let bytes = &csr.status.as_ref().unwrap().certificate.as_ref().unwrap().0;
    String::from_utf8(bytes.clone()).unwrap()
}

/// Parses an issued certificate, checks the cluster CA signed it, and hands it to `check`.
fn with_certificate(ca_pem: &str, pem: &str, check: impl FnOnce(&X509Certificate<'_>)) {
    let ca_der = der_of(ca_pem);
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let der = der_of(pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(cert.issuer(), ca.subject());
    cert.verify_signature(Some(ca.public_key()))
        .expect("signed by the cluster CA");
    check(&cert);
}

fn names(cert: &X509Certificate<'_>) -> (Vec<String>, Vec<String>) {
    let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| a.as_str().unwrap().to_owned();
    (
        cert.subject().iter_common_name().map(text).collect(),
        cert.subject().iter_organization().map(text).collect(),
    )
}

#[tokio::test]
async fn a_joining_nodes_kubelet_client_request_is_approved_and_issued() {
    let c = cluster().await;
    let bootstrap = https_client(&c.server, Some(JOIN_SECRET), None);

    // The join secret reads the CA the agent pins, and is the bootstrapper.
    let review: SelfSubjectReview = Api::all(bootstrap.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({})).unwrap(),
        )
        .await
        .unwrap();
    let user = review.status.unwrap().user_info.unwrap();
    assert_eq!(user.username.as_deref(), Some("system:bootstrap:rkube"));
    assert_eq!(
        user.groups.unwrap(),
        [
            "system:bootstrappers",
            "system:bootstrappers:rkube",
            "system:authenticated"
        ]
    );

    let (key, pem) = request("system:node:worker-1", "system:nodes");
    let csrs: Api<CertificateSigningRequest> = Api::all(bootstrap);
    let created = csrs
        .create(
            &PostParams::default(),
            &csr(
                "node-csr-worker-1",
                &pem,
                KUBELET_CLIENT,
                &["digital signature", "client auth"],
                None,
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        created.spec.username.as_deref(),
        Some("system:bootstrap:rkube")
    );

    let done = issued(&csrs, "node-csr-worker-1").await;
    assert_eq!(
        conditions(&done),
        [(
            "Approved".to_owned(),
            "True".to_owned(),
            "AutoApproved".to_owned(),
            "Auto approving kubelet client certificate after SubjectAccessReview.".to_owned()
        )]
    );
    let cert = certificate_pem(&done);
    with_certificate(c.server.ca_cert(), &cert, |cert| {
        assert_eq!(
            names(cert),
            (
                vec!["system:node:worker-1".to_owned()],
                vec!["system:nodes".to_owned()]
            )
        );
        let usage = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(usage.client_auth && !usage.server_auth);
        assert!(!cert.is_ca());
    });

    // The certificate is the node's identity from now on.
    let node = https_client(&c.server, None, Some((&cert, &key.serialize_pem())));
    let review: SelfSubjectReview = Api::all(node)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({})).unwrap(),
        )
        .await
        .unwrap();
    let user = review.status.unwrap().user_info.unwrap();
    assert_eq!(user.username.as_deref(), Some("system:node:worker-1"));
    assert!(user.groups.unwrap().contains(&"system:nodes".to_owned()));
}

#[tokio::test]
async fn kubelet_client_requests_with_a_bad_subject_are_not_approved() {
    let c = cluster().await;
    let csrs: Api<CertificateSigningRequest> =
        Api::all(https_client(&c.server, Some(JOIN_SECRET), None));
    let usages = &["digital signature", "client auth"];
    for (name, cn, organization) in [
        ("masters", "system:node:worker-1", "system:masters"),
        ("not-a-node", "jane", "system:nodes"),
        // Last: the controllers take requests in order, so once this one is issued the
        // others have been looked at.
        ("good", "system:node:worker-2", "system:nodes"),
    ] {
        let (_, pem) = request(cn, organization);
        csrs.create(
            &PostParams::default(),
            &csr(name, &pem, KUBELET_CLIENT, usages, None),
        )
        .await
        .unwrap();
    }
    issued(&csrs, "good").await;
    for name in ["masters", "not-a-node"] {
        let csr = csrs.get(name).await.unwrap();
        assert_eq!(conditions(&csr), [], "{name}");
        assert!(csr.status.and_then(|s| s.certificate).is_none(), "{name}");
    }
}

/// What `kubectl certificate approve|deny` does: a condition added through `approval`.
async fn decide(api: &Api<CertificateSigningRequest>, name: &str, type_: &str, reason: &str) {
    let mut csr = api.get(name).await.unwrap();
    csr.status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(CertificateSigningRequestCondition {
            type_: type_.to_owned(),
            status: "True".to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(format!("This CSR was {type_} by kubectl certificate.")),
            last_update_time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
            last_transition_time: None,
        });
    api.replace_subresource("approval", name, &PostParams::default(), &csr)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_approved_apiserver_client_request_is_issued_and_a_denied_one_is_not() {
    let c = cluster().await;
    let csrs: Api<CertificateSigningRequest> = Api::all(c.server.client());
    let usages = &["digital signature", "client auth"];
    let signer = "kubernetes.io/kube-apiserver-client";
    let (_, jane) = request("jane", "dev");
    let (_, joe) = request("joe", "dev");
    csrs.create(
        &PostParams::default(),
        &csr("jane", &jane, signer, usages, Some(3600)),
    )
    .await
    .unwrap();
    csrs.create(
        &PostParams::default(),
        &csr("joe", &joe, signer, usages, None),
    )
    .await
    .unwrap();
    // Nobody approves these on their own.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in ["jane", "joe"] {
        assert_eq!(conditions(&csrs.get(name).await.unwrap()), [], "{name}");
    }

    decide(&csrs, "joe", "Denied", "KubectlDeny").await;
    decide(&csrs, "jane", "Approved", "KubectlApprove").await;
    let done = issued(&csrs, "jane").await;
    assert_eq!(conditions(&done)[0].2, "KubectlApprove");
    with_certificate(c.server.ca_cert(), &certificate_pem(&done), |cert| {
        assert_eq!(
            names(cert),
            (vec!["jane".to_owned()], vec!["dev".to_owned()])
        );
        assert!(
            cert.extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .client_auth
        );
        let lifetime =
            cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert!((3600..3700).contains(&lifetime), "{lifetime}");
    });
    let joe = csrs.get("joe").await.unwrap();
    assert!(joe.status.and_then(|s| s.certificate).is_none());
}
