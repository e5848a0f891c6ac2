//! What a token may do: principals, rules, name patterns, and the lookup of
//! a presented token.
//!
//! A [`Policy`] is the validated content of the auth file (see
//! [`super::file`]). It holds the SHA-256 of each token; a presented token is
//! hashed and compared with every stored hash in constant time ([`subtle`]),
//! without stopping at the first match, so the time of a lookup does not
//! depend on how many bytes of which hash matched. The only tokens it holds
//! in clear are the SigV4 secrets the file opts in to (`sigv4_secret`, one per
//! principal at most), each in a [`Secret`], whose `Debug` never shows it.
//!
//! Rules: a token's request is allowed when *one* of its rules lists one of
//! the actions the route accepts and matches every name the request carries
//! (its topic and its group). A rule without `topics` matches no topic (only
//! requests that name none, such as `GET /v1/cluster`), likewise `groups`.
//! Patterns are names where `*` matches any run of characters (`orders*`,
//! `*-eu`, `*`). Actions do not imply each other: `ADMIN` does not publish.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a request does, as the rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// Produce; recall a pending delay message.
    Publish,
    /// Read, query, receive, ack; a group's settings and offsets.
    Subscribe,
    /// Create, change and delete topics and groups; reset offsets; the cluster view.
    Admin,
}

impl Action {
    /// The action as written in the auth file.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "PUBLISH",
            Action::Subscribe => "SUBSCRIBE",
            Action::Admin => "ADMIN",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name pattern: `*` matches any run of characters (also none), every
/// other character itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// Characters a pattern may hold: those of topic and group names
    /// (`%` for system names such as `%DLQ%billing`) and `*`.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if text.is_empty() || text.len() > 256 {
            return Err(format!("pattern `{text}` must be 1-256 characters"));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '%' | '*')))
        {
            return Err(format!(
                "pattern `{text}` has `{bad}`: names are [A-Za-z0-9._-] (and `%` for system names), `*` matches any run of them"
            ));
        }
        Ok(Pattern(text.to_string()))
    }

    /// Whether `name` matches (glob with `*` only; linear, no backtracking blow-up).
    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

/// `*`-only glob match: greedy with one backtrack point, O(len(p) * len(n)) at worst.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if p < pattern.len() && pattern[p] == name[n] {
            p += 1;
            n += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// One rule of a token: actions over topic and group patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub actions: Vec<Action>,
    pub topics: Vec<Pattern>,
    pub groups: Vec<Pattern>,
}

impl Rule {
    fn allows(&self, actions: &[Action], topic: Option<&str>, group: Option<&str>) -> bool {
        self.actions.iter().any(|a| actions.contains(a))
            && topic.is_none_or(|t| self.topics.iter().any(|p| p.matches(t)))
            && group.is_none_or(|g| self.groups.iter().any(|p| p.matches(g)))
    }
}

/// What one token grants: its principal and rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub principal: String,
    pub rules: Vec<Rule>,
}

/// A per-principal request rate (governor's GCRA: `burst` requests at once,
/// refilled at `per_second`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Who is calling, as the auth layer established it (a request extension).
#[derive(Debug, Clone)]
pub enum Caller {
    /// Auth is off: everything is allowed, as before auth existed.
    Open,
    /// A client token.
    Client(Arc<Grant>),
    /// Another node of the cluster, with the cluster secret: it may only
    /// publish (dead-letter copies, to `%DLQ%` topics or a group's
    /// `dead_letter_topic`), with Shale's own `shale.*` properties.
    Node,
}

impl Caller {
    /// Whether the caller may do one of `actions` on `topic` and `group`
    /// (`None`: the request names none).
    pub fn may(&self, actions: &[Action], topic: Option<&str>, group: Option<&str>) -> bool {
        match self {
            Caller::Open => true,
            Caller::Client(grant) => grant.rules.iter().any(|r| r.allows(actions, topic, group)),
            Caller::Node => {
                actions.contains(&Action::Publish) && topic.is_some() && group.is_none()
            }
        }
    }

    /// Whether the caller may see `topic` in a listing (any action on it).
    pub fn sees_topic(&self, topic: &str) -> bool {
        self.may(
            &[Action::Publish, Action::Subscribe, Action::Admin],
            Some(topic),
            None,
        )
    }

    /// Whether the caller may see `group` in a listing (SUBSCRIBE or ADMIN on it).
    pub fn sees_group(&self, group: &str) -> bool {
        self.may(&[Action::Subscribe, Action::Admin], None, Some(group))
    }

    /// Whether a forwarded produce may carry Shale's own `shale.*`
    /// properties: only from another node (or with auth off, where the
    /// forwarded header is all there is).
    pub fn is_node_or_open(&self) -> bool {
        matches!(self, Caller::Open | Caller::Node)
    }

    /// The principal for logs (`-` for none).
    pub fn principal(&self) -> &str {
        match self {
            Caller::Open => "-",
            Caller::Client(grant) => &grant.principal,
            Caller::Node => super::NODE_PRINCIPAL,
        }
    }
}

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest32 {
    Sha256::digest(bytes).into()
}

/// A secret kept in clear (a token given as `sigv4_secret`): `Debug`
/// redacts it, so no derived `Debug` of a policy or a log line shows it.
/// (No `PartialEq`: a secret is compared only through a constant-time check.)
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, to sign or verify with (never to log).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The validated auth file.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Each token's hash and grant, in file order.
    pub(super) tokens: Vec<(Digest32, Arc<Grant>)>,
    /// Hashes of the accepted cluster secrets.
    pub(super) cluster: Vec<Digest32>,
    /// `/metrics` needs a token with ADMIN.
    pub metrics_require_auth: bool,
    /// Request-rate limits by principal.
    pub limits: BTreeMap<String, RateLimit>,
    /// SigV4 secret access keys by principal (the access key id).
    pub(super) sigv4: BTreeMap<String, Secret>,
}

impl Policy {
    /// Who presents `token`, if anyone: every stored hash is compared, in
    /// constant time each, whatever matched before.
    pub fn authenticate(&self, token: &str) -> Option<Caller> {
        let presented = sha256(token.as_bytes());
        let mut found: Option<Caller> = None;
        for (hash, grant) in &self.tokens {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(Caller::Client(grant.clone()));
            }
        }
        for hash in &self.cluster {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(Caller::Node);
            }
        }
        found
    }

    /// Whether a node presenting the secret with this hash is accepted.
    pub fn accepts_cluster_secret(&self, hash: &Digest32) -> bool {
        self.cluster.iter().any(|h| bool::from(h.ct_eq(hash)))
    }

    /// The SigV4 secret access key of `access_key` (a principal): the token
    /// of its entry with `sigv4_secret`, if it has one. Access key ids are
    /// not secret, so the lookup need not take constant time; the SigV4
    /// check then compares signatures in constant time.
    pub fn sigv4_secret(&self, access_key: &str) -> Option<&str> {
        self.sigv4.get(access_key).map(Secret::expose)
    }

    /// Number of tokens (for logs).
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }
}
