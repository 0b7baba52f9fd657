//! Service account tokens: ES256 JWTs with upstream's claims, issued by the
//! `serviceaccounts/token` subresource (TokenRequest, `kubectl create token`) and accepted as
//! bearer tokens while they are unexpired, meant for the API server, and their service account
//! still exists with the same uid.

use std::path::Path;

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde_json::{Value, json};

use crate::certs::CertError;

/// The issuer (and default audience) of the tokens, as upstream's default.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Who a valid token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountClaims {
    /// The service account's namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// Signs and checks tokens with one key kept in the data directory.
pub struct TokenIssuer {
    key: EcdsaKeyPair,
    public: Vec<u8>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

impl TokenIssuer {
    /// Loads the signing key from `dir/service-account.key` (PKCS#8, base64), making it on
    /// first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, CertError> {
        let path = dir.join("service-account.key");
        let io = |source| CertError::Io {
            path: path.clone(),
            source,
        };
        let rng = SystemRandom::new();
        let pkcs8 = match std::fs::read_to_string(&path) {
            Ok(text) => base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| {
                        io(std::io::Error::other(
                            "cannot generate the service account key",
                        ))
                    })?;
                let bytes = doc.as_ref().to_vec();
                crate::certs::write_private(
                    &path,
                    &base64::engine::general_purpose::STANDARD.encode(&bytes),
                )?;
                bytes
            }
            Err(e) => return Err(io(e)),
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|_| {
                io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "not an ES256 key",
                ))
            })?;
        let public = key.public_key().as_ref().to_vec();
        Ok(Self { key, public })
    }

    /// A token for a service account, valid from `now` (seconds since the epoch) for
    /// `expiration_seconds`.
    pub fn issue(
        &self,
        account: &ServiceAccountClaims,
        audiences: &[String],
        now: i64,
        expiration_seconds: i64,
    ) -> Option<String> {
        let header = json!({"alg": "ES256", "kid": "rkube"});
        let claims = json!({
            "aud": audiences,
            "exp": now + expiration_seconds,
            "iat": now,
            "iss": ISSUER,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": {
                "namespace": account.namespace,
                "serviceaccount": {"name": account.name, "uid": account.uid},
            },
            "nbf": now,
            "sub": format!("system:serviceaccount:{}:{}", account.namespace, account.name),
        });
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self.key.sign(&SystemRandom::new(), input.as_bytes()).ok()?;
        Some(format!("{input}.{}", b64(signature.as_ref())))
    }

    /// The service account a token speaks for, if it is signed by this issuer, current, and
    /// meant for the API server.
    pub fn verify(&self, token: &str, now: i64) -> Option<ServiceAccountClaims> {
        let mut parts = token.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let input = format!("{header}.{claims}");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(input.as_bytes(), &unb64(signature)?)
            .ok()?;
        let claims: Value = serde_json::from_slice(&unb64(claims)?).ok()?;
        let current = claims["nbf"].as_i64()? <= now + 60 && now < claims["exp"].as_i64()?;
        let for_us = claims["aud"].as_array()?.iter().any(|a| a == ISSUER);
        if !current || !for_us || claims["iss"] != ISSUER {
            return None;
        }
        let k = &claims["kubernetes.io"];
        Some(ServiceAccountClaims {
            namespace: k["namespace"].as_str()?.to_owned(),
            name: k["serviceaccount"]["name"].as_str()?.to_owned(),
            uid: k["serviceaccount"]["uid"].as_str()?.to_owned(),
        })
    }
}

fn now_seconds() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The user a service account token speaks for, if its account still exists as issued.
pub(crate) async fn service_account_user(
    issuer: &TokenIssuer,
    objects: &crate::objects::Objects,
    token: &str,
) -> Option<crate::auth::UserInfo> {
    let claims = issuer.verify(token, now_seconds())?;
    let accounts = rkube_api::registry::all().by_kind("", "ServiceAccount")?;
    let account = objects
        .get(accounts, Some(&claims.namespace), &claims.name)
        .await
        .ok()?;
    if account["metadata"]["uid"].as_str() != Some(claims.uid.as_str()) {
        return None;
    }
    let ns = &claims.namespace;
    Some(crate::auth::UserInfo::new(
        format!("system:serviceaccount:{ns}:{}", claims.name),
        claims.uid.clone(),
        vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{ns}"),
        ],
    ))
}

impl crate::app::App {
    /// POST serviceaccounts/{name}/token: a TokenRequest answered with a signed token.
    pub(crate) async fn request_token(
        &self,
        rt: &rkube_api::registry::ResourceType,
        namespace: Option<&str>,
        name: &str,
        mut request: Value,
    ) -> Result<Value, rkube_api::ApiError> {
        let account = self.objects.get(rt, namespace, name).await?;
        let expiration = request["spec"]["expirationSeconds"]
            .as_i64()
            .unwrap_or(3600);
        if expiration < 600 {
            return Err(rkube_api::ApiError::Invalid {
                kind: "TokenRequest.authentication.k8s.io".into(),
                name: name.into(),
                causes: vec![rkube_api::FieldError::invalid(
                    "spec.expirationSeconds",
                    expiration,
                    "may not specify a duration less than 10 minutes",
                )],
            });
        }
        let audiences: Vec<String> = match request["spec"]["audiences"].as_array() {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => vec![ISSUER.to_owned()],
        };
        let claims = ServiceAccountClaims {
            namespace: namespace.unwrap_or("default").to_owned(),
            name: name.to_owned(),
            uid: account["metadata"]["uid"].as_str().unwrap_or("").to_owned(),
        };
        let now = now_seconds();
        let token = self
            .issuer
            .issue(&claims, &audiences, now, expiration)
            .ok_or_else(|| rkube_api::ApiError::Internal("signing the token failed".into()))?;
        let expires = jiff::Timestamp::from_second(now + expiration)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        request["apiVersion"] = json!("authentication.k8s.io/v1");
        request["kind"] = json!("TokenRequest");
        request["metadata"]["name"] = json!(name);
        request["metadata"]["namespace"] = json!(claims.namespace);
        request["metadata"]["creationTimestamp"] = json!(crate::rest::now_rfc3339());
        request["spec"]["audiences"] = json!(audiences);
        request["spec"]["expirationSeconds"] = json!(expiration);
        request["status"] = json!({"token": token, "expirationTimestamp": expires});
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_they_expire_and_only_for_the_api_audience() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = TokenIssuer::load_or_create(dir.path()).unwrap();
        let account = ServiceAccountClaims {
            namespace: "ns".into(),
            name: "bot".into(),
            uid: "u1".into(),
        };
        let token = issuer
            .issue(&account, &[ISSUER.to_owned()], 1000, 600)
            .unwrap();
        assert_eq!(issuer.verify(&token, 1100), Some(account.clone()));
        assert_eq!(issuer.verify(&token, 1600), None, "expired");
        let other = issuer
            .issue(&account, &["vault".to_owned()], 1000, 600)
            .unwrap();
        assert_eq!(
            issuer.verify(&other, 1100),
            None,
            "not meant for the API server"
        );
        let mut tampered = token.clone();
        tampered.replace_range(token.len() - 4.., "AAAA");
        assert_eq!(issuer.verify(&tampered, 1100), None);
        // The key survives a restart.
        let again = TokenIssuer::load_or_create(dir.path()).unwrap();
        assert_eq!(again.verify(&token, 1100), Some(account));
    }
}
