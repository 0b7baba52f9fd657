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

use super::approver::validate_kubelet_client;
use super::{
    FAILED, KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING, LEGACY_UNKNOWN,
    Request, approval_state, condition, has_failed, is_issued, run_over_requests, with_condition,
};
use crate::workqueue::{Next, is_conflict, is_not_found};

/// The longest certificate issued when a request asks for no duration (upstream's
/// `--cluster-signing-duration`).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// The shortest certificate issued, whatever is asked (twice the backdating).
pub const MIN_DURATION: Duration = Duration::from_secs(600);
/// How far before now a certificate starts to be valid, for clocks that lag.
const BACKDATE: Duration = Duration::from_secs(300);
/// Certificates shorter than this are backdated proportionally less, and their end is not.
const SHORT: Duration = Duration::from_secs(8 * 3600);

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

/// The key usages and extended key usages of `spec.usages`, as upstream's
/// `keyUsagesFromStrings` maps them; unknown ones are an error naming them.
pub fn usages(
    usages: &[String],
) -> Result<(Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>), String> {
    use ExtendedKeyUsagePurpose as Ext;
    use KeyUsagePurpose as Key;
    let mut key = Vec::new();
    let mut extended = Vec::new();
    let mut unrecognized = Vec::new();
    for usage in usages {
        let known_key = match usage.as_str() {
            "signing" | "digital signature" => Some(Key::DigitalSignature),
            "content commitment" => Some(Key::ContentCommitment),
            "key encipherment" => Some(Key::KeyEncipherment),
            "key agreement" => Some(Key::KeyAgreement),
            "data encipherment" => Some(Key::DataEncipherment),
            "cert sign" => Some(Key::KeyCertSign),
            "crl sign" => Some(Key::CrlSign),
            "encipher only" => Some(Key::EncipherOnly),
            "decipher only" => Some(Key::DecipherOnly),
            _ => None,
        };
        let known_extended = match usage.as_str() {
            "any" => Some(Ext::Any),
            "server auth" => Some(Ext::ServerAuth),
            "client auth" => Some(Ext::ClientAuth),
            "code signing" => Some(Ext::CodeSigning),
            "email protection" | "s/mime" => Some(Ext::EmailProtection),
            "ipsec end system" => Some(Ext::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 5])),
            "ipsec tunnel" => Some(Ext::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 6])),
            "ipsec user" => Some(Ext::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 7])),
            "timestamping" => Some(Ext::TimeStamping),
            "ocsp signing" => Some(Ext::OcspSigning),
            "microsoft sgc" => Some(Ext::Other(vec![1, 3, 6, 1, 4, 1, 311, 10, 3, 3])),
            "netscape sgc" => Some(Ext::Other(vec![2, 16, 840, 1, 113_730, 4, 1])),
            _ => None,
        };
        match (known_key, known_extended) {
            (Some(k), _) if !key.contains(&k) => key.push(k),
            (_, Some(e)) if !extended.contains(&e) => extended.push(e),
            (None, None) => unrecognized.push(usage.as_str()),
            _ => {}
        }
    }
    if !unrecognized.is_empty() {
        return Err(format!("unrecognized usage values: {unrecognized:?}"));
    }
    Ok((key, extended))
}

/// The rules of each signer (upstream's `isRecognized` functions): `Ok` if `request` may be
/// issued with `usages`, else the reason it may not.
pub fn check_signer_rules(
    signer: &str,
    request: &Request,
    usages: &[String],
) -> Result<(), String> {
    match signer {
        KUBE_APISERVER_CLIENT_KUBELET => validate_kubelet_client(request, usages),
        KUBELET_SERVING => validate_kubelet_serving(request, usages),
        KUBE_APISERVER_CLIENT => {
            for usage in usages {
                if !matches!(
                    usage.as_str(),
                    "digital signature" | "key encipherment" | "client auth"
                ) {
                    return Err(format!("invalid usage for client certificate: {usage}"));
                }
            }
            if !usages.iter().any(|u| u == "client auth") {
                return Err("missing required usage for client certificate: client auth".to_owned());
            }
            Ok(())
        }
        // No rules beyond what the request itself says.
        _ => Ok(()),
    }
}

/// Upstream's `ValidateKubeletServingCSR`, with its messages.
fn validate_kubelet_serving(request: &Request, usages: &[String]) -> Result<(), String> {
    if request.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".to_owned());
    }
    if request.dns_names.is_empty() && request.ip_addresses.is_empty() {
        return Err("DNS or IP subjectAltName is required".to_owned());
    }
    if !request.email_addresses.is_empty() {
        return Err("Email subjectAltNames are not allowed".to_owned());
    }
    if !request.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".to_owned());
    }
    let usages: std::collections::BTreeSet<&str> = usages.iter().map(String::as_str).collect();
    let with_rsa =
        std::collections::BTreeSet::from(["digital signature", "key encipherment", "server auth"]);
    let without_rsa = std::collections::BTreeSet::from(["digital signature", "server auth"]);
    if usages != with_rsa && usages != without_rsa {
        return Err(format!("usages did not match {:?}", Vec::from_iter(usages)));
    }
    if !request.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".to_owned());
    }
    Ok(())
}

/// How long a certificate for a request asking for `expiration_seconds` is valid.
pub fn duration(expiration_seconds: Option<i32>, max: Duration) -> Duration {
    match expiration_seconds {
        None => max,
        Some(seconds) => Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
            .clamp(MIN_DURATION, max.max(MIN_DURATION)),
    }
}

/// When a certificate issued at `now` for `duration` is valid (upstream's `boundaries`):
/// backdated by five minutes (proportionally less below eight hours, where the end is not
/// backdated), and ending no later than the CA.
pub fn validity(
    now: OffsetDateTime,
    duration: Duration,
    ca_not_after: OffsetDateTime,
) -> Result<(OffsetDateTime, OffsetDateTime), SignerError> {
    if now >= ca_not_after {
        return Err(SignerError::Expired(ca_not_after));
    }
    let backdate = if duration < SHORT {
        BACKDATE.mul_f64(duration.as_secs_f64() / SHORT.as_secs_f64())
    } else {
        BACKDATE
    };
    let not_before = now - backdate;
    let not_after = if duration < SHORT {
        now + duration
    } else {
        now + duration - backdate
    };
    Ok((not_before, not_after.min(ca_not_after)))
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
        let (not_before, not_after) = validity(now, duration, self.ca_not_after)?;
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

    #[test]
    fn durations_are_clamped_between_ten_minutes_and_the_maximum() {
        let max = DEFAULT_DURATION;
        assert_eq!(duration(None, max), max);
        assert_eq!(duration(Some(60), max), MIN_DURATION);
        assert_eq!(duration(Some(-5), max), MIN_DURATION);
        assert_eq!(duration(Some(7200), max), Duration::from_secs(7200));
        assert_eq!(duration(Some(i32::MAX), max), max);
    }

    #[test]
    fn validity_is_backdated_and_ends_with_the_ca() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000_000).unwrap();
        let far = now + time::Duration::days(10 * 365);
        let (from, to) = validity(now, Duration::from_secs(24 * 3600), far).unwrap();
        assert_eq!(now - from, time::Duration::minutes(5));
        assert_eq!(
            to - now,
            time::Duration::hours(24) - time::Duration::minutes(5)
        );
        let (from, to) = validity(now, Duration::from_secs(4 * 3600), far).unwrap();
        assert_eq!(now - from, time::Duration::seconds(150));
        assert_eq!(to - now, time::Duration::hours(4));
        let soon = now + time::Duration::hours(1);
        let (_, to) = validity(now, Duration::from_secs(24 * 3600), soon).unwrap();
        assert_eq!(to, soon);
        assert!(matches!(
            validity(soon, Duration::from_secs(600), now),
            Err(SignerError::Expired(_))
        ));
    }

    #[test]
    fn usages_map_to_key_and_extended_key_usages() {
        let all: Vec<String> = ["signing", "digital signature", "client auth", "s/mime"]
            .iter()
            .map(|u| (*u).to_owned())
            .collect();
        let (key, extended) = usages(&all).unwrap();
        assert_eq!(key, [KeyUsagePurpose::DigitalSignature]);
        assert_eq!(
            extended,
            [
                ExtendedKeyUsagePurpose::ClientAuth,
                ExtendedKeyUsagePurpose::EmailProtection
            ]
        );
    }
}
