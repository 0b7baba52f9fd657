//! Who is asking (authentication) and whether they may (authorization).
//!
//! Identities come from x509 client certificates signed by the cluster CA (CN is the user,
//! each O a group) and from static bearer tokens (`--token-auth-file`, upstream's CSV format:
//! `token,user,uid,"group1,group2"`, and tokens the embedding program adds, such as the node
//! join secret kept in [`NodeTokenFile`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

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
    /// Further facts about the user, by key (upstream's `user.Info.GetExtra`).
    pub extra: BTreeMap<String, Vec<String>>,
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
            extra: BTreeMap::new(),
        }
    }

    /// The identity of components running inside the server process.
    pub fn loopback() -> Self {
        Self::new("system:apiserver", "", vec!["system:masters".to_owned()])
    }

    /// A bootstrap token's identity, named as upstream names them: user
    /// `system:bootstrap:<id>`, groups `system:bootstrappers` and `system:bootstrappers:<id>`.
    /// A node joining with a token is this until it holds its own certificate.
    pub fn bootstrapper(id: &str) -> Self {
        Self::new(
            format!("system:bootstrap:{id}"),
            "",
            vec![
                "system:bootstrappers".to_owned(),
                format!("system:bootstrappers:{id}"),
            ],
        )
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
#[derive(Clone, Default)]
pub struct TokenAuthenticator {
    tokens: HashMap<String, UserInfo>,
}

/// Shows whose tokens are known, never the tokens.
impl std::fmt::Debug for TokenAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&str> = self.tokens.values().map(|u| u.name.as_str()).collect();
        users.sort_unstable();
        f.debug_struct("TokenAuthenticator")
            .field("users", &users)
            .finish()
    }
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

    /// Adds every token of `other`; where both know a token, `other`'s user wins.
    pub fn extend(&mut self, other: TokenAuthenticator) {
        self.tokens.extend(other.tokens);
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

/// The secret nodes join with, kept in `<data-dir>/node-token` inside the join token an agent
/// is given (k3s's `K10<ca-hash>::node:<secret>`; the agent owns that form, so reading the
/// secret back out and writing the token are the caller's functions). Made once from the
/// operating system's random source and read back on every later start, so tokens handed out
/// keep working.
#[derive(Clone)]
pub struct NodeTokenFile {
    path: PathBuf,
    secret: String,
}

/// Shows where the token is kept, never the secret.
impl std::fmt::Debug for NodeTokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTokenFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl NodeTokenFile {
    /// Reads the secret out of the token at `path` with `secret_of`, or makes a new one (32
    /// random bytes, hex) when there is no file yet. A file whose secret cannot be read is an
    /// error rather than replaced: agents may hold its token.
    pub fn load(
        path: &Path,
        secret_of: impl FnOnce(&str) -> Option<String>,
    ) -> Result<Self, TokenFileError> {
        let fail = |message: String| TokenFileError {
            path: path.display().to_string(),
            message,
        };
        let secret = match std::fs::read_to_string(path) {
            Ok(text) => secret_of(&text)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| fail("not a join token".to_owned()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => new_secret().map_err(fail)?,
            Err(e) => return Err(fail(e.to_string())),
        };
        Ok(Self {
            path: path.to_owned(),
            secret,
        })
    }

    /// The secret, which authenticates as [`UserInfo::bootstrapper`].
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Writes `token` (made from [`Self::secret`]) to the file, readable by its owner only,
    /// unless the file holds it already; a token written before a new CA is rewritten with
    /// the same secret.
    pub fn store(&self, token: &str) -> Result<(), TokenFileError> {
        let fail = |e: std::io::Error| TokenFileError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        };
        let wanted = format!("{}\n", token.trim());
        match std::fs::read_to_string(&self.path) {
            Ok(current) if current == wanted => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e)),
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        // Created private, then renamed over the old file: the secret is never readable by
        // others, and a crash leaves the old token or the new one.
        let tmp = self.path.with_extension("tmp");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::remove_file(&tmp);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(fail)?;
            file.write_all(wanted.as_bytes()).map_err(fail)?;
            file.sync_all().map_err(fail)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(fail)
    }
}

/// 32 bytes from the operating system's random source, as hex.
fn new_secret() -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "no random bytes from the operating system".to_owned())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
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

    #[test]
    fn debug_output_names_users_but_not_tokens() {
        let mut auth = TokenAuthenticator::default();
        auth.insert("hunter2", UserInfo::bootstrapper("rkube"));
        let shown = format!("{auth:?}");
        assert!(shown.contains("system:bootstrap:rkube"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn a_bootstrapper_is_in_the_bootstrappers_groups() {
        let user = UserInfo::bootstrapper("rkube");
        assert_eq!(user.name, "system:bootstrap:rkube");
        assert_eq!(
            user.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:rkube",
                "system:authenticated"
            ]
        );
    }

    fn token_for(secret: &str) -> String {
        format!("K10{}::node:{secret}", "ab".repeat(32))
    }

    fn secret_in(token: &str) -> Option<String> {
        token.trim().rsplit_once(':').map(|(_, s)| s.to_owned())
    }

    #[test]
    fn the_node_token_is_made_once_and_its_secret_read_back() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-token");
        let first = NodeTokenFile::load(&path, secret_in).unwrap();
        assert_eq!(first.secret().len(), 64);
        assert!(first.secret().bytes().all(|b| b.is_ascii_hexdigit()));
        first.store(&token_for(first.secret())).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", token_for(first.secret()))
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let again = NodeTokenFile::load(&path, secret_in).unwrap();
        assert_eq!(again.secret(), first.secret());
        // A new CA changes the token's hash, not its secret.
        let rehashed = format!("K10{}::node:{}", "cd".repeat(32), again.secret());
        again.store(&rehashed).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            rehashed.as_str()
        );
        assert_eq!(
            NodeTokenFile::load(&path, secret_in).unwrap().secret(),
            first.secret()
        );

        let elsewhere = NodeTokenFile::load(&dir.path().join("other"), secret_in).unwrap();
        assert_ne!(elsewhere.secret(), first.secret());
    }

    #[test]
    fn a_node_token_without_a_secret_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-token");
        std::fs::write(&path, "not a token\n").unwrap();
        let err = NodeTokenFile::load(&path, |_| None).unwrap_err();
        assert!(err.to_string().contains("not a join token"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a token\n");
    }
}
