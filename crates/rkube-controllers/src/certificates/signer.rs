//! The CSR signer (`csrsigning`, upstream's `pkg/controller/certificates/signer`): a request
//! that is approved, not denied and not failed, for one of the signers the controller manager
//! serves (`kubernetes.io/kube-apiserver-client`, `…/kube-apiserver-client-kubelet`,
//! `…/kubelet-serving`, `…/legacy-unknown`), is issued a certificate by the cluster CA and
//! the certificate written to `status.certificate` through the status subresource.
//!
//! As upstream's permissive signing policy: the subject, subject alternative names and public
//! key come from the request; the usages from `spec.usages` (any extensions the request asks
//! for are dropped); never a CA; valid from five minutes ago (less for certificates shorter
//! than eight hours) for `spec.expirationSeconds` (at least 10 minutes, at most the cluster
//! signing duration, one year by default) and never past the CA. Requests a signer's rules
//! refuse get a `Failed` condition (`SignerValidationFailure`) instead.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use rcgen::{ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use time::OffsetDateTime;

use super::policy::{check_signer_rules, duration, usages, validity};
use super::{
    FAILED, KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING, LEGACY_UNKNOWN,
    Request, approval_state, condition, has_failed, is_issued, run_over_requests, with_condition,
};
use crate::informer::{Next, is_conflict, is_not_found};

/// The reason of a `Failed` condition for a request the signer's rules refuse.
pub const VALIDATION_FAILURE: &str = "SignerValidationFailure";

/// Why the signer could not start or sign.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The CA certificate or key could not be read.
    #[error("reading the cluster CA: {0}")]
    Ca(String),
    /// The CA is no longer valid.
    #[error("the signer has expired: NotAfter={0}")]
    Expired(OffsetDateTime),
    /// rcgen could not make the certificate.
    #[error("signing: {0}")]
    Sign(#[source] rcgen::Error),
}

/// What the signer does with a request.
pub enum Signing {
    /// Nothing: not approved, denied, failed, issued, or for another signer.
    Skip,
    /// Record a `Failed` condition with this reason and message.
    Fail(&'static str, String),
    /// Issue a certificate.
    Issue(Box<Issuance>),
}

/// A certificate to issue: the request's parameters and how long it is to be valid.
pub struct Issuance {
    params: rcgen::CertificateSigningRequestParams,
    key_usages: Vec<KeyUsagePurpose>,
    extended_key_usages: Vec<ExtendedKeyUsagePurpose>,
    duration: Duration,
}

/// Issues certificates with the cluster CA.
pub struct Signer {
    issuer: Issuer<'static, KeyPair>,
    ca_not_after: OffsetDateTime,
    max_duration: Duration,
}

impl Signer {
    /// A signer for the CA `ca_cert` with `ca_key` (PEM), issuing certificates of at most
    /// `max_duration`.
    pub fn new(ca_cert: &str, ca_key: &str, max_duration: Duration) -> Result<Self, SignerError> {
        let key = KeyPair::from_pem(ca_key).map_err(|e| SignerError::Ca(e.to_string()))?;
        let issuer =
            Issuer::from_ca_cert_pem(ca_cert, key).map_err(|e| SignerError::Ca(e.to_string()))?;
        let (_, block) = x509_parser::pem::parse_x509_pem(ca_cert.as_bytes())
            .map_err(|e| SignerError::Ca(e.to_string()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&block.contents)
            .map_err(|e| SignerError::Ca(e.to_string()))?;
        let ca_not_after =
            OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
                .map_err(|e| SignerError::Ca(e.to_string()))?;
        Ok(Self {
            issuer,
            ca_not_after,
            max_duration,
        })
    }

    /// What to do with `csr`.
    pub fn decide(&self, csr: &CertificateSigningRequest) -> Signing {
        let (approved, denied) = approval_state(csr);
        if !approved || denied || has_failed(csr) || is_issued(csr) {
            return Signing::Skip;
        }
        let signer = csr.spec.signer_name.as_str();
        if ![
            KUBE_APISERVER_CLIENT,
            KUBE_APISERVER_CLIENT_KUBELET,
            KUBELET_SERVING,
            LEGACY_UNKNOWN,
        ]
        .contains(&signer)
        {
            return Signing::Skip;
        }
        let fail = |message: String| Signing::Fail(VALIDATION_FAILURE, message);
        let request = match Request::parse(&csr.spec.request.0) {
            Ok(request) => request,
            Err(e) => return fail(format!("unable to parse csr: {e}")),
        };
        let requested_usages = csr.spec.usages.clone().unwrap_or_default();
        if let Err(message) = check_signer_rules(signer, &request, &requested_usages) {
            return fail(message);
        }
        let (key_usages, extended_key_usages) = match usages(&requested_usages) {
            Ok(u) => u,
            Err(message) => return fail(message),
        };
        // rcgen reads the extensions it knows (and refuses others), and keeps one value per
        // subject attribute type: a subject it would shorten is refused rather than issued
        // with fewer groups than asked for.
        let params = match rcgen::CertificateSigningRequestParams::from_der(
            &request.der.as_slice().into(),
        ) {
            Ok(params) => params,
            Err(e) => return fail(format!("the request cannot be issued by rkube: {e}")),
        };
        if params.params.distinguished_name.iter().count() != request.subject_attributes {
            return fail(
                "the subject repeats an attribute type (e.g. several organizations), which \
                 rkube's signer cannot issue"
                    .to_owned(),
            );
        }
        Signing::Issue(Box::new(Issuance {
            params,
            key_usages,
            extended_key_usages,
            duration: duration(csr.spec.expiration_seconds, self.max_duration),
        }))
    }

    /// The certificate (PEM) for `issuance`, issued at `now`.
    pub fn issue(&self, issuance: Issuance, now: Timestamp) -> Result<String, SignerError> {
        let Issuance {
            mut params,
            key_usages,
            extended_key_usages,
            duration,
        } = issuance;
        let now = OffsetDateTime::from_unix_timestamp(now.as_second())
            .map_err(|e| SignerError::Ca(e.to_string()))?;
        let (not_before, not_after) = validity(now, duration, self.ca_not_after)
            .ok_or(SignerError::Expired(self.ca_not_after))?;
        let cert = &mut params.params;
        cert.not_before = not_before;
        cert.not_after = not_after;
        cert.key_usages = key_usages;
        cert.extended_key_usages = extended_key_usages;
        cert.is_ca = IsCa::ExplicitNoCa;
        cert.name_constraints = None;
        cert.crl_distribution_points.clear();
        cert.custom_extensions.clear();
        cert.use_authority_key_identifier_extension = true;
        // A random 128-bit serial, as upstream: rcgen's default is derived from the public
        // key, which a renewal may reuse.
        let mut serial: [u8; 16] = rand::random();
        serial[0] &= 0x7f;
        cert.serial_number = Some(serial.to_vec().into());
        let issued = params.signed_by(&self.issuer).map_err(SignerError::Sign)?;
        Ok(issued.pem())
    }
}

/// Why a request could not be signed this time (it is tried again).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the result failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignerError),
}

/// Signs approved requests: see the module's documentation.
pub struct CsrSigningController {
    client: kube::Client,
    signer: Signer,
}

impl CsrSigningController {
    /// A controller acting through `client` and signing with `signer`.
    pub fn new(client: kube::Client, signer: Signer) -> Self {
        Self { client, signer }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let client = self.client.clone();
        let this = &self;
        run_over_requests(client, "csrsigning", |csr| async move {
            this.reconcile(&csr, Timestamp::now()).await
        })
        .await;
    }

    /// Issues `csr`'s certificate, or records why not, if [`Signer::decide`] says so.
    pub async fn reconcile(
        &self,
        csr: &Arc<CertificateSigningRequest>,
        now: Timestamp,
    ) -> Result<Next, Error> {
        let name = csr.metadata.name.clone().unwrap_or_default();
        let updated = match self.signer.decide(csr) {
            Signing::Skip => return Ok(Next::Wait),
            Signing::Fail(reason, message) => {
                tracing::info!(csr = name, reason, message, "not signing");
                with_condition(csr, condition(FAILED, reason, &message, now))
            }
            Signing::Issue(issuance) => {
                let pem = self.signer.issue(*issuance, now)?;
                let mut issued = CertificateSigningRequest::clone(csr);
                issued
                    .status
                    .get_or_insert_with(Default::default)
                    .certificate = Some(k8s_openapi::ByteString(pem.into_bytes()));
                issued
            }
        };
        let api: Api<CertificateSigningRequest> = Api::all(self.client.clone());
        // Pinned to the version read: a request changed meanwhile (denied, say) is judged
        // again from the informer.
        match api
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(Next::Wait),
            Err(e) if is_conflict(&e) || is_not_found(&e) => Ok(Next::Wait),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use x509_parser::prelude::X509Certificate;

    use super::super::policy::DEFAULT_DURATION;
    use super::super::testing::*;
    use super::super::{APPROVED, DENIED};
    use super::*;

    fn ca() -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test-ca");
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = OffsetDateTime::now_utc() + time::Duration::days(3650);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn signer() -> Signer {
        let (cert, key) = ca();
        Signer::new(&cert, &key, DEFAULT_DURATION).unwrap()
    }

    fn approved(pem: &str, signer: &str, usages: &[&str]) -> CertificateSigningRequest {
        with(
            csr(pem, signer, usages, "admin", &["system:masters"]),
            APPROVED,
        )
    }

    fn issue(signer: &Signer, csr: &CertificateSigningRequest) -> String {
        match signer.decide(csr) {
            Signing::Issue(issuance) => signer.issue(*issuance, Timestamp::now()).unwrap(),
            Signing::Skip => panic!("skipped"),
            Signing::Fail(_, message) => panic!("failed: {message}"),
        }
    }

    fn parsed(pem: &str, check: impl FnOnce(&X509Certificate<'_>)) {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&block.contents).unwrap();
        check(&cert);
    }

    fn failure(signer: &Signer, csr: &CertificateSigningRequest) -> String {
        match signer.decide(csr) {
            Signing::Fail(reason, message) => {
                assert_eq!(reason, VALIDATION_FAILURE);
                message
            }
            _ => panic!("expected a failure"),
        }
    }

    #[test]
    fn an_approved_kubelet_client_request_is_issued_as_asked() {
        let signer = signer();
        let pem = request_pem("system:node:a", &["system:nodes"], &[]);
        let csr = approved(
            &pem,
            KUBE_APISERVER_CLIENT_KUBELET,
            &["digital signature", "client auth"],
        );
        parsed(&issue(&signer, &csr), |cert| {
            let subject = cert.subject();
            let cn: Vec<_> = subject
                .iter_common_name()
                .map(|a| a.as_str().unwrap())
                .collect();
            let o: Vec<_> = subject
                .iter_organization()
                .map(|a| a.as_str().unwrap())
                .collect();
            assert_eq!((cn, o), (vec!["system:node:a"], vec!["system:nodes"]));
            let issuer: Vec<_> = cert
                .issuer()
                .iter_common_name()
                .map(|a| a.as_str().unwrap())
                .collect();
            assert_eq!(issuer, ["test-ca"]);
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.client_auth && !eku.server_auth);
            let ku = cert.key_usage().unwrap().unwrap().value;
            assert!(ku.digital_signature() && !ku.key_cert_sign());
            assert!(!cert.is_ca());
            let lifetime =
                cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
            assert_eq!(lifetime, DEFAULT_DURATION.as_secs() as i64);
        });
    }

    #[test]
    fn a_subject_rcgen_would_shorten_is_refused_rather_than_issued() {
        let signer = signer();
        let pem = request_pem("jane", &["dev", "ops"], &[]);
        let csr = approved(&pem, KUBE_APISERVER_CLIENT, &["client auth"]);
        let failed = failure(&signer, &csr);
        assert!(failed.contains("repeats an attribute"), "{failed}");
    }

    #[test]
    fn a_user_certificate_keeps_its_names_and_asked_duration() {
        let signer = signer();
        let pem = request_pem("jane", &["dev"], &["jane.example"]);
        let mut csr = approved(&pem, KUBE_APISERVER_CLIENT, &["client auth"]);
        csr.spec.expiration_seconds = Some(3600);
        parsed(&issue(&signer, &csr), |cert| {
            let lifetime =
                cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
            // Short certificates are backdated by 3600/28800 of five minutes.
            assert!((3600..=3600 + 40).contains(&lifetime), "{lifetime}");
            let san = cert.subject_alternative_name().unwrap().unwrap().value;
            assert_eq!(san.general_names.len(), 1);
        });
    }

    #[test]
    fn requests_not_approved_or_for_other_signers_are_skipped() {
        let signer = signer();
        let pem = request_pem("jane", &["dev"], &[]);
        let fresh = csr(&pem, KUBE_APISERVER_CLIENT, &["client auth"], "admin", &[]);
        assert!(matches!(signer.decide(&fresh), Signing::Skip));
        let denied = with(with(fresh.clone(), APPROVED), DENIED);
        assert!(matches!(signer.decide(&denied), Signing::Skip));
        let failed = with(with(fresh.clone(), APPROVED), FAILED);
        assert!(matches!(signer.decide(&failed), Signing::Skip));
        let elsewhere = approved(&pem, "example.com/signer", &["client auth"]);
        assert!(matches!(signer.decide(&elsewhere), Signing::Skip));
    }

    #[test]
    fn each_signers_rules_fail_requests_they_refuse() {
        let signer = signer();
        let jane = request_pem("jane", &["dev"], &[]);
        assert_eq!(
            failure(
                &signer,
                &approved(
                    &jane,
                    KUBE_APISERVER_CLIENT,
                    &["client auth", "server auth"]
                )
            ),
            "invalid usage for client certificate: server auth"
        );
        assert_eq!(
            failure(
                &signer,
                &approved(&jane, KUBE_APISERVER_CLIENT, &["digital signature"])
            ),
            "missing required usage for client certificate: client auth"
        );
        assert_eq!(
            failure(
                &signer,
                &approved(&jane, KUBE_APISERVER_CLIENT_KUBELET, &["client auth"])
            ),
            "subject organization is not system:nodes"
        );
        let node = request_pem("system:node:a", &["system:nodes"], &[]);
        assert_eq!(
            failure(
                &signer,
                &approved(
                    &node,
                    KUBELET_SERVING,
                    &["digital signature", "server auth"]
                )
            ),
            "DNS or IP subjectAltName is required"
        );
        assert_eq!(
            failure(&signer, &approved(&jane, LEGACY_UNKNOWN, &["flying"])),
            "unrecognized usage values: [\"flying\"]"
        );
        let serving = request_pem("system:node:a", &["system:nodes"], &["a", "10.0.0.1"]);
        let issued = issue(
            &signer,
            &approved(
                &serving,
                KUBELET_SERVING,
                &["digital signature", "server auth"],
            ),
        );
        parsed(&issued, |cert| {
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.server_auth && !eku.client_auth);
        });
    }
}
