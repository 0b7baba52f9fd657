//! CertificateSigningRequests, as upstream's `pkg/controller/certificates`: the approver
//! ([`approver`], `csrapproving`) approves the kubelet client certificates a joining node or
//! a node renewing its own certificate asks for, and the signer ([`signer`], `csrsigning`)
//! issues approved requests for the `kubernetes.io/*` signers with the cluster CA.
//!
//! Each is a controller over its own CSR informer; what it decides is a pure function of the
//! request (unit-tested; upstream's rules for requests, usages and lifetimes are in [`policy`]),
//! and the reconcile around it only writes the result through the API.

pub mod approver;
pub mod policy;
pub mod signer;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::informer::{AbortOnDrop, Change, Next, WorkQueue, feed, informer};

/// Client certificates for the API server (users, components).
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// Client certificates kubelets use to reach the API server.
pub const KUBE_APISERVER_CLIENT_KUBELET: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Serving certificates of kubelets.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// The signer of requests from before signer names existed; it imposes nothing.
pub const LEGACY_UNKNOWN: &str = "kubernetes.io/legacy-unknown";

/// The condition types of a request.
pub const APPROVED: &str = "Approved";
/// Denied: the request must not be signed.
pub const DENIED: &str = "Denied";
/// Failed: the signer could not or would not issue it.
pub const FAILED: &str = "Failed";

/// What the approver and the signer read in a PKCS#10 request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The subject's common name (the user the certificate names).
    pub common_name: String,
    /// The subject's organizations (the user's groups), in order.
    pub organizations: Vec<String>,
    /// How many attributes the subject has in all.
    pub subject_attributes: usize,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// Email subject alternative names.
    pub email_addresses: Vec<String>,
    /// URI subject alternative names.
    pub uris: Vec<String>,
    /// The request itself (DER), for signing.
    pub der: Vec<u8>,
}

/// Why a request could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// Not a PEM block of the right type.
    #[error("PEM block type must be CERTIFICATE REQUEST")]
    NotPem,
    /// The DER inside is not a certificate request.
    #[error("unable to parse certificate request: {0}")]
    Parse(String),
    /// The request is not signed by the key it carries.
    #[error("unable to verify certificate request signature")]
    Signature,
}

impl Request {
    /// Reads a `CERTIFICATE REQUEST` PEM block (`spec.request`) and checks its signature, as
    /// upstream's `ParseCSR` and `CheckSignature` do.
    pub fn parse(pem: &[u8]) -> Result<Self, RequestError> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| RequestError::NotPem)?;
        if block.label != "CERTIFICATE REQUEST" {
            return Err(RequestError::NotPem);
        }
        let (_, request) = X509CertificationRequest::from_der(&block.contents)
            .map_err(|e| RequestError::Parse(e.to_string()))?;
        request
            .verify_signature()
            .map_err(|_| RequestError::Signature)?;
        let subject = &request.certification_request_info.subject;
        let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| {
            a.as_str()
                .map(str::to_owned)
                .map_err(|e| RequestError::Parse(format!("a subject attribute is not text: {e}")))
        };
        // Go's x509 keeps the last common name; the organizations are all kept, in order.
        let common_name = match subject.iter_common_name().last() {
            Some(cn) => text(cn)?,
            None => String::new(),
        };
        let organizations = subject
            .iter_organization()
            .map(text)
            .collect::<Result<_, _>>()?;
        let mut parsed = Self {
            common_name,
            organizations,
            subject_attributes: subject.iter_attributes().count(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            email_addresses: Vec::new(),
            uris: Vec::new(),
            der: block.contents.clone(),
        };
        for extension in request.requested_extensions().into_iter().flatten() {
            let ParsedExtension::SubjectAlternativeName(san) = extension else {
                continue;
            };
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(n) => parsed.dns_names.push((*n).to_owned()),
                    GeneralName::RFC822Name(n) => parsed.email_addresses.push((*n).to_owned()),
                    GeneralName::URI(n) => parsed.uris.push((*n).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        parsed
                            .ip_addresses
                            .push(ip_from_bytes(bytes).ok_or_else(|| {
                                RequestError::Parse("an IP subjectAltName is malformed".to_owned())
                            })?)
                    }
                    _ => {}
                }
            }
        }
        Ok(parsed)
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn has_true_condition(csr: &CertificateSigningRequest, condition: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == condition && c.status == "True"))
}

/// Whether the request has been approved (`Approved`) or denied (`Denied`).
pub fn approval_state(csr: &CertificateSigningRequest) -> (bool, bool) {
    (
        has_true_condition(csr, APPROVED),
        has_true_condition(csr, DENIED),
    )
}

/// Whether the request has failed (`Failed`).
pub fn has_failed(csr: &CertificateSigningRequest) -> bool {
    has_true_condition(csr, FAILED)
}

/// Whether a certificate has been issued.
pub fn is_issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

/// A condition set now, with `status: True`.
fn condition(
    type_: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> CertificateSigningRequestCondition {
    CertificateSigningRequestCondition {
        type_: type_.to_owned(),
        status: "True".to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// `csr` with `condition` added to its status.
fn with_condition(
    csr: &CertificateSigningRequest,
    condition: CertificateSigningRequestCondition,
) -> CertificateSigningRequest {
    let mut updated = csr.clone();
    updated
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
    updated
}

/// Runs `reconcile` for every request that changes and has no certificate yet (once issued,
/// neither controller has anything left to do with it), one at a time, until dropped.
async fn run_over_requests<F, Fut, E>(client: kube::Client, name: &'static str, reconcile: F)
where
    F: Fn(Arc<CertificateSigningRequest>) -> Fut,
    Fut: Future<Output = Result<Next, E>>,
    E: std::fmt::Display,
{
    let queue = WorkQueue::new();
    let (requests, events) = informer(
        Api::<CertificateSigningRequest>::all(client),
        watcher::Config::default(),
    );
    let _feed = AbortOnDrop(tokio::spawn(feed(
        queue.clone(),
        events,
        |change: &Change<CertificateSigningRequest>| match change {
            Change::Added(csr) | Change::Updated { new: csr, .. } => {
                csr.metadata.name.clone().into_iter().collect()
            }
            Change::Deleted(_) => Vec::new(),
        },
    )));
    if requests.wait_until_ready().await.is_err() {
        return;
    }
    let (requests, reconcile) = (&requests, &reconcile);
    queue
        .run(name, |key: String| async move {
            match requests.get(&ObjectRef::new(&key)) {
                Some(csr) if !is_issued(&csr) => reconcile(csr).await,
                _ => Ok(Next::Wait),
            }
        })
        .await;
}

#[cfg(test)]
pub(crate) mod testing {
    //! Requests and CSR objects for the approver's and signer's tests.

    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    /// A PEM request for `cn` with up to two `organizations` and subject alternative names,
    /// from a fresh key. (rcgen keeps one value per attribute type; the second organization
    /// goes in under its OID spelled as a custom type, which encodes the same.)
    pub fn request_pem(cn: &str, organizations: &[&str], dns_names: &[&str]) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(
            dns_names
                .iter()
                .map(|n| (*n).to_owned())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        assert!(organizations.len() <= 2, "at most two organizations");
        let types = [
            rcgen::DnType::OrganizationName,
            rcgen::DnType::CustomDnType(vec![2, 5, 4, 10]),
        ];
        for (o, ty) in organizations.iter().zip(types) {
            params.distinguished_name.push(ty, *o);
        }
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    /// A CSR object for `request`, from `username` in `groups`.
    pub fn csr(
        request: &str,
        signer: &str,
        usages: &[&str],
        username: &str,
        groups: &[&str],
    ) -> CertificateSigningRequest {
        CertificateSigningRequest {
            metadata: ObjectMeta {
                name: Some("csr".to_owned()),
                ..Default::default()
            },
            spec: CertificateSigningRequestSpec {
                request: k8s_openapi::ByteString(request.as_bytes().to_vec()),
                signer_name: signer.to_owned(),
                usages: Some(usages.iter().map(|u| (*u).to_owned()).collect()),
                username: Some(username.to_owned()),
                groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
                ..Default::default()
            },
            status: None,
        }
    }

    /// `csr` with a `type_: True` condition.
    pub fn with(csr: CertificateSigningRequest, type_: &str) -> CertificateSigningRequest {
        with_condition(&csr, condition(type_, "Test", "", Timestamp::UNIX_EPOCH))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn a_request_reads_as_its_subject_and_names() {
        let pem = request_pem(
            "system:node:a",
            &["system:nodes"],
            &["a.example", "10.0.0.1"],
        );
        let request = Request::parse(pem.as_bytes()).unwrap();
        assert_eq!(request.common_name, "system:node:a");
        assert_eq!(request.organizations, ["system:nodes"]);
        assert_eq!(request.subject_attributes, 2);
        assert_eq!(request.dns_names, ["a.example"]);
        assert_eq!(request.ip_addresses, [IpAddr::from([10, 0, 0, 1])]);
        let two = request_pem("jane", &["dev", "ops"], &[]);
        let request = Request::parse(two.as_bytes()).unwrap();
        assert_eq!(request.organizations, ["dev", "ops"]);
    }

    #[test]
    fn what_is_not_a_signed_request_is_refused() {
        assert_eq!(Request::parse(b"nonsense"), Err(RequestError::NotPem));
        let cert = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        assert_eq!(Request::parse(cert.as_bytes()), Err(RequestError::NotPem));
        // Flipping a byte of the signature (the request's last bytes) breaks it.
        let pem = request_pem("jane", &[], &[]);
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let mut der = block.contents.clone();
        if let Some(last) = der.last_mut() {
            *last ^= 1;
        }
        let tampered = pem_block("CERTIFICATE REQUEST", &der);
        assert!(matches!(
            Request::parse(tampered.as_bytes()),
            Err(RequestError::Signature | RequestError::Parse(_))
        ));
    }

    fn pem_block(label: &str, der: &[u8]) -> String {
        use k8s_openapi::ByteString;
        // ByteString serializes as base64: the PEM body.
        let body = serde_json::to_value(ByteString(der.to_vec())).unwrap();
        let body = body.as_str().unwrap();
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn conditions_count_only_when_true() {
        let pem = request_pem("jane", &[], &[]);
        let csr = csr(&pem, KUBE_APISERVER_CLIENT, &[], "admin", &[]);
        assert_eq!(approval_state(&csr), (false, false));
        let approved = with(csr.clone(), APPROVED);
        assert_eq!(approval_state(&approved), (true, false));
        assert_eq!(approval_state(&with(approved, DENIED)), (true, true));
        let mut not_really = with(csr, FAILED);
        not_really
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()[0]
            .status = "False".to_owned();
        assert!(!has_failed(&not_really));
    }
}
