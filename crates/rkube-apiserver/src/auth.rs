//! Who is asking (authentication) and whether they may (authorization).
//!
//! Identities come from x509 client certificates signed by the cluster CA (CN is the user,
//! each O a group) and from static bearer tokens (`--token-auth-file`, upstream's CSV format:
//! `token,user,uid,"group1,group2"`).

use std::collections::HashMap;
use std::path::Path;

use crate::request::RequestInfo;

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name.
    pub name: String,
    /// A stable id, if the source gives one.
    pub uid: String,
    /// The groups, including `system:authenticated`.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user with these groups, plus `system:authenticated`.
    pub fn new(name: impl Into<String>, uid: impl Into<String>, mut groups: Vec<String>) -> Self {
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".to_owned());
        }
        Self {
            name: name.into(),
            uid: uid.into(),
            groups,
        }
    }

    /// The identity of components running inside the server process.
    pub fn loopback() -> Self {
        Self::new("system:apiserver", "", vec!["system:masters".to_owned()])
    }
}

/// Reads the identity in a client certificate (DER).
pub fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_owned)
        .collect();
    Some(UserInfo::new(name, "", groups))
}

/// Static bearer tokens.
#[derive(Clone, Debug, Default)]
pub struct TokenAuthenticator {
    tokens: HashMap<String, UserInfo>,
}

/// A bad token file.
#[derive(Debug, thiserror::Error)]
#[error("token file {path}: {message}")]
pub struct TokenFileError {
    path: String,
    message: String,
}

impl TokenAuthenticator {
    /// Reads upstream's token CSV: `token,user,uid[,"group1,group2"]` per line.
    pub fn from_file(path: &Path) -> Result<Self, TokenFileError> {
        let fail = |message: String| TokenFileError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        Self::parse(&text).map_err(fail)
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut tokens = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
                return Err(format!("line {}: want token,user,uid[,groups]", n + 1));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            tokens.insert(
                fields[0].clone(),
                UserInfo::new(fields[1].clone(), fields[2].clone(), groups),
            );
        }
        Ok(Self { tokens })
    }

    /// Adds a token.
    pub fn insert(&mut self, token: impl Into<String>, user: UserInfo) {
        self.tokens.insert(token.into(), user);
    }

    /// The user a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<UserInfo> {
        self.tokens.get(token).cloned()
    }
}

/// Splits one CSV line, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().map(|f| f.push(c)).unwrap_or(()),
        }
    }
    fields.into_iter().map(|f| f.trim().to_owned()).collect()
}

/// An authorization decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied, with the reason shown to the user.
    Deny(String),
}

/// Decides whether a user may make a request. RBAC implements it later; every request goes
/// through this one trait.
pub trait Authorizer: Send + Sync + 'static {
    /// The decision for `user` doing `request`.
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision;
}

/// Lets every authenticated user do everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAuthenticated;

impl Authorizer for AllowAuthenticated {
    fn authorize(&self, _user: &UserInfo, _request: &RequestInfo) -> Decision {
        Decision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_read_as_upstream_csv() {
        let auth = TokenAuthenticator::parse(
            "# comment\nsecret1,alice,1001,\"dev,ops\"\nsecret2,bob,1002\n",
        )
        .unwrap();
        let alice = auth.authenticate("secret1").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, ["dev", "ops", "system:authenticated"]);
        assert_eq!(
            auth.authenticate("secret2").unwrap().groups,
            ["system:authenticated"]
        );
        assert!(auth.authenticate("nope").is_none());
        assert!(TokenAuthenticator::parse("onlytoken\n").is_err());
    }
}
