//! The authentication stage: who is calling, from what the connection and the request's
//! headers prove. Authenticators are tried in upstream's order: the request-header
//! authenticator (a front proxy vouching for the user), bearer tokens (static ones, then
//! service account tokens), then the client certificate.

use std::sync::Arc;

use http::header;

use crate::auth::{TokenAuthenticator, UserInfo};
use crate::objects::Objects;
use crate::requestheader::FrontProxy;
use crate::satokens::TokenIssuer;

/// How the caller proved who it is, before the token is looked at.
#[derive(Clone, Debug)]
pub enum Caller {
    /// A verified client certificate's identity, if one was presented.
    Tls(Option<UserInfo>),
    /// A client certificate the request-header CA signed, by its common name: a front proxy,
    /// which names the user in the request-header headers.
    FrontProxy(String),
    /// A component inside this process.
    Loopback,
}

/// Every authenticator the server accepts.
pub(crate) struct Authentication {
    front_proxy: Option<FrontProxy>,
    tokens: TokenAuthenticator,
    issuer: Arc<TokenIssuer>,
    /// Service account tokens hold only while their account exists with the uid they name.
    objects: Objects,
}

impl Authentication {
    pub(crate) fn new(
        front_proxy: Option<FrontProxy>,
        tokens: TokenAuthenticator,
        issuer: Arc<TokenIssuer>,
        objects: Objects,
    ) -> Self {
        Self {
            front_proxy,
            tokens,
            issuer,
            objects,
        }
    }

    /// The user the request is made by; none when nothing proves one (401).
    pub(crate) async fn authenticate(
        &self,
        caller: &Caller,
        headers: &http::HeaderMap,
    ) -> Option<UserInfo> {
        if let Caller::FrontProxy(name) = caller
            && let Some(proxy) = &self.front_proxy
            && proxy.allows(name)
            && let Some(user) = crate::requestheader::user_from_headers(headers)
        {
            return Some(user);
        }
        if let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            let token = token.trim();
            if let Some(user) = self.tokens.authenticate(token) {
                return Some(user);
            }
            return crate::satokens::service_account_user(&self.issuer, &self.objects, token).await;
        }
        match caller {
            Caller::Tls(user) => user.clone(),
            Caller::FrontProxy(_) => None,
            Caller::Loopback => Some(UserInfo::loopback()),
        }
    }
}
