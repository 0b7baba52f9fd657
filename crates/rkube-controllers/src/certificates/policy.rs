//! The rules the approver and signer apply, as upstream writes them: what a kubelet client or
//! serving request must look like (`pkg/apis/certificates/helpers.go`), what each signer
//! accepts (`isRecognized`), how usages map to x509 (`keyUsagesFromStrings`) and how long a
//! certificate is valid (the permissive signing policy's `boundaries`).

use std::collections::BTreeSet;
use std::time::Duration;

use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
use time::OffsetDateTime;

use super::{KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING, Request};

/// The longest certificate issued when a request asks for no duration (upstream's
/// `--cluster-signing-duration`).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// The shortest certificate issued, whatever is asked (twice the backdating).
pub const MIN_DURATION: Duration = Duration::from_secs(600);
/// How far before now a certificate starts to be valid, for clocks that lag.
const BACKDATE: Duration = Duration::from_secs(300);
/// Certificates shorter than this are backdated proportionally less, and their end is not.
const SHORT: Duration = Duration::from_secs(8 * 3600);

/// Checks a kubelet client certificate request as upstream's `ValidateKubeletClientCSR`
/// does, with its messages: organization exactly `system:nodes`, no subject alternative
/// names, common name `system:node:…`, usages exactly digital signature and client auth
/// (with key encipherment for RSA keys).
pub fn validate_kubelet_client(request: &Request, usages: &[String]) -> Result<(), String> {
    if request.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".to_owned());
    }
    if !request.dns_names.is_empty() {
        return Err("DNS subjectAltNames are not allowed".to_owned());
    }
    if !request.email_addresses.is_empty() {
        return Err("Email subjectAltNames are not allowed".to_owned());
    }
    if !request.ip_addresses.is_empty() {
        return Err("IP subjectAltNames are not allowed".to_owned());
    }
    if !request.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".to_owned());
    }
    if !request.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".to_owned());
    }
    let usages: BTreeSet<&str> = usages.iter().map(String::as_str).collect();
    let with_rsa = BTreeSet::from(["digital signature", "key encipherment", "client auth"]);
    let without_rsa = BTreeSet::from(["digital signature", "client auth"]);
    if usages != with_rsa && usages != without_rsa {
        return Err(format!("usages did not match {:?}", Vec::from_iter(usages)));
    }
    Ok(())
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
/// Checks a kubelet serving request as upstream's signer does.
pub fn validate_kubelet_serving(request: &Request, usages: &[String]) -> Result<(), String> {
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
    let usages: BTreeSet<&str> = usages.iter().map(String::as_str).collect();
    let with_rsa = BTreeSet::from(["digital signature", "key encipherment", "server auth"]);
    let without_rsa = BTreeSet::from(["digital signature", "server auth"]);
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
/// backdated), and ending no later than the CA; `None` once the CA has expired.
pub fn validity(
    now: OffsetDateTime,
    duration: Duration,
    ca_not_after: OffsetDateTime,
) -> Option<(OffsetDateTime, OffsetDateTime)> {
    if now >= ca_not_after {
        return None;
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
    Some((not_before, not_after.min(ca_not_after)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::request_pem;
    use super::*;

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
        assert_eq!(validity(soon, Duration::from_secs(600), now), None);
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

    #[test]
    fn validation_messages_are_upstreams() {
        let request =
            Request::parse(request_pem("jane", &["system:nodes"], &[]).as_bytes()).unwrap();
        let usages: Vec<String> = ["digital signature", "client auth"]
            .iter()
            .map(|u| (*u).to_owned())
            .collect();
        assert_eq!(
            validate_kubelet_client(&request, &usages),
            Err("subject common name does not begin with system:node:".to_owned())
        );
        let request =
            Request::parse(request_pem("system:node:a", &["dev"], &[]).as_bytes()).unwrap();
        assert_eq!(
            validate_kubelet_client(&request, &usages),
            Err("subject organization is not system:nodes".to_owned())
        );
    }
}
