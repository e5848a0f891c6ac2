//! The auth file (`--auth-file`, TOML) and the cluster secret file
//! (`--cluster-secret-file`): reading and validating them into a [`Policy`].
//!
//! ```toml
//! metrics_require_auth = false          # true: /metrics needs a token with ADMIN
//! cluster_secret_sha256 = ["<hex>"]     # SHA-256 of the secret(s) nodes present to each other
//!
//! [[tokens]]
//! principal = "billing"
//! sha256 = "<hex SHA-256 of the token>"
//! rules = [{actions = ["SUBSCRIBE"], topics = ["orders*"], groups = ["billing*"]}]
//! rate_per_second = 100                 # optional; burst defaults to rate_per_second
//! burst = 200
//! sigv4_secret = "<the token itself>"   # optional: SQS clients (SigV4) of this principal
//! ```
//!
//! `sigv4_secret` opts one token of a principal in to the SQS endpoint: SQS
//! clients sign requests with AWS Signature Version 4, which the node can
//! only check with the secret itself, not its hash. The access key id is the
//! principal, the secret access key is the token (so the same token still
//! works as `Authorization: Bearer`). A file with such an entry holds a
//! credential in clear and must be readable by the node's user only
//! (docs/SECURITY.md, "SQS clients (SigV4)").
//!
//! Everything is checked, and every problem is one line naming the entry
//! (`tokens[2] (principal billing): sha256 must be 64 hex digits`): unknown
//! keys, bad hashes, duplicated hashes, unknown actions, rules without
//! actions, patterns with characters no name has, tokens without rules, a
//! principal with two different rate limits, a file without tokens (most
//! likely a half-written one), a cluster secret the file does not accept, a
//! `sigv4_secret` that is not the entry's token or not visible ASCII, two
//! entries of one principal with a `sigv4_secret`. No error shows a secret.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::policy::{Action, Digest32, Grant, Pattern, Policy, RateLimit, Rule, Secret, sha256};

/// Fewest characters of a cluster secret (`shale token` makes 49).
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    metrics_require_auth: bool,
    #[serde(default)]
    cluster_secret_sha256: Hashes,
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

/// One hash or a list of them (a list lets secrets rotate without downtime).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Hashes {
    One(String),
    Many(Vec<String>),
}

impl Default for Hashes {
    fn default() -> Self {
        Hashes::Many(Vec::new())
    }
}

impl Hashes {
    fn list(&self) -> Vec<&str> {
        match self {
            Hashes::One(h) => vec![h.as_str()],
            Hashes::Many(hs) => hs.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    principal: String,
    sha256: String,
    rules: Vec<RuleEntry>,
    rate_per_second: Option<u32>,
    burst: Option<u32>,
    /// The token in clear, for SigV4 (SQS clients); its hash is `sha256`.
    sigv4_secret: Option<Secret>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    actions: Vec<Action>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// What [`load`] read: the policy and the digest of the files it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub policy: Policy,
    /// The secret this node presents to the others (trimmed), if configured.
    pub node_secret: Option<String>,
    /// SHA-256 over both files' bytes: a reload with the same digest changes nothing.
    pub digest: Digest32,
}

/// Reads and validates the auth file and the node's cluster secret file.
/// The error is one line naming the file and the problem.
pub fn load(auth_file: &Path, secret_file: Option<&Path>) -> Result<Loaded, String> {
    let text = read(auth_file)?;
    let secret_text = secret_file.map(read).transpose()?;
    let mut digest_input = sha256(text.as_bytes()).to_vec();
    if let Some(s) = &secret_text {
        digest_input.extend_from_slice(&sha256(s.as_bytes()));
    }
    let policy = parse(&text).map_err(|e| format!("{}: {e}", auth_file.display()))?;
    let node_secret = match (secret_file, secret_text) {
        (Some(path), Some(text)) => {
            Some(check_secret(&text, &policy).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        _ => None,
    };
    Ok(Loaded {
        policy,
        node_secret,
        digest: sha256(&digest_input),
    })
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The node's secret, trimmed, if the policy accepts it.
fn check_secret(text: &str, policy: &Policy) -> Result<String, String> {
    let secret = text.trim();
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "the cluster secret must be at least {MIN_SECRET_LEN} characters (make one with `shale token`)"
        ));
    }
    if let Some(bad) = secret.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "the cluster secret has {bad:?}: only visible ASCII characters go into an HTTP header"
        ));
    }
    if !policy.accepts_cluster_secret(&sha256(secret.as_bytes())) {
        return Err(
            "its SHA-256 is not among the auth file's cluster_secret_sha256: the other nodes would refuse this node's calls"
                .into(),
        );
    }
    Ok(secret.to_string())
}

/// Parses and validates the auth file's text.
pub fn parse(text: &str) -> Result<Policy, String> {
    let file: AuthFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    let mut seen: BTreeMap<Digest32, String> = BTreeMap::new();
    let mut cluster = Vec::new();
    for (i, hex) in file.cluster_secret_sha256.list().into_iter().enumerate() {
        let what = format!("cluster_secret_sha256[{i}]");
        let hash = parse_hash(hex).map_err(|e| format!("{what}: {e}"))?;
        if let Some(first) = seen.insert(hash, what.clone()) {
            return Err(format!("{what}: the same hash as {first}"));
        }
        cluster.push(hash);
    }
    if file.tokens.is_empty() {
        return Err(
            "no [[tokens]]: nobody could call the API (a half-written file?); add a token made with `shale token`"
                .into(),
        );
    }
    let mut tokens = Vec::with_capacity(file.tokens.len());
    let mut limits: BTreeMap<String, RateLimit> = BTreeMap::new();
    // The entry of each principal with a sigv4_secret: the secret and its index.
    let mut sigv4: BTreeMap<String, (Secret, usize)> = BTreeMap::new();
    for (i, entry) in file.tokens.into_iter().enumerate() {
        let what = format!("tokens[{i}] (principal `{}`)", entry.principal);
        check_principal(&entry.principal).map_err(|e| format!("tokens[{i}]: {e}"))?;
        let hash = parse_hash(&entry.sha256).map_err(|e| format!("{what}: sha256 {e}"))?;
        if let Some(first) = seen.insert(hash, what.clone()) {
            return Err(format!("{what}: the same sha256 as {first}"));
        }
        if entry.rules.is_empty() {
            return Err(format!(
                "{what}: no rules; a token needs at least one (e.g. rules = [{{actions = [\"PUBLISH\"], topics = [\"orders*\"]}}])"
            ));
        }
        let rules = entry
            .rules
            .iter()
            .enumerate()
            .map(|(r, rule)| parse_rule(rule).map_err(|e| format!("{what}: rules[{r}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(limit) =
            parse_limit(entry.rate_per_second, entry.burst).map_err(|e| format!("{what}: {e}"))?
        {
            match limits.get(&entry.principal) {
                Some(other) if *other != limit => {
                    return Err(format!(
                        "{what}: another token of this principal has a different rate_per_second/burst; the limit is per principal"
                    ));
                }
                _ => {
                    limits.insert(entry.principal.clone(), limit);
                }
            }
        }
        if let Some(secret) = entry.sigv4_secret {
            check_sigv4_secret(&secret, &hash).map_err(|e| format!("{what}: {e}"))?;
            if let Some((_, first)) = sigv4.get(&entry.principal) {
                return Err(format!(
                    "{what}: tokens[{first}] of this principal already has a sigv4_secret; the principal is the SQS access key id, so only one of its tokens may have one"
                ));
            }
            sigv4.insert(entry.principal.clone(), (secret, i));
        }
        let grant = Grant {
            principal: entry.principal,
            rules,
        };
        tokens.push((hash, Arc::new(grant)));
    }
    Ok(Policy {
        tokens,
        cluster,
        metrics_require_auth: file.metrics_require_auth,
        limits,
        sigv4: sigv4
            .into_iter()
            .map(|(principal, (secret, _))| (principal, secret))
            .collect(),
    })
}

/// A `sigv4_secret` is the entry's token: visible ASCII (it is also sent as
/// `Authorization: Bearer`) with the entry's `sha256`. The errors never show it.
fn check_sigv4_secret(secret: &Secret, hash: &Digest32) -> Result<(), String> {
    if secret.expose().is_empty() || !secret.expose().bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "sigv4_secret must be visible ASCII characters only (the token, which also travels as a Bearer header)"
                .into(),
        );
    }
    if sha256(secret.expose().as_bytes()) != *hash {
        return Err(
            "the SHA-256 of sigv4_secret is not this entry's sha256: the SigV4 secret access key is the token itself, so put the token whose hash is sha256 there"
                .into(),
        );
    }
    Ok(())
}

/// One line for a TOML error: the line number and figment-free message.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let line = error
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    let message = error.message().replace('\n', " ");
    match line {
        Some(line) => format!("line {line}: {message}"),
        None => message,
    }
}

/// 64 hex digits (either case).
fn parse_hash(hex_text: &str) -> Result<Digest32, String> {
    let mut hash = [0u8; 32];
    if hex_text.len() != 64 {
        return Err(format!(
            "must be 64 hex digits (the SHA-256 of the token, as `shale token` prints it), got {} characters",
            hex_text.len()
        ));
    }
    hex::decode_to_slice(hex_text, &mut hash).map_err(|e| format!("must be 64 hex digits: {e}"))?;
    Ok(hash)
}

/// 1-128 characters of `[A-Za-z0-9._@:/-]`; `%` names are the node's own.
fn check_principal(principal: &str) -> Result<(), String> {
    let ok = !principal.is_empty()
        && principal.len() <= 128
        && principal
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | ':' | '/'));
    if !ok {
        return Err(format!(
            "principal `{principal}` must be 1-128 characters of [A-Za-z0-9._@:/-]"
        ));
    }
    Ok(())
}

fn parse_rule(rule: &RuleEntry) -> Result<Rule, String> {
    if rule.actions.is_empty() {
        return Err("no actions (PUBLISH, SUBSCRIBE, ADMIN)".into());
    }
    let patterns = |list: &[String]| {
        list.iter()
            .map(|p| Pattern::parse(p))
            .collect::<Result<Vec<_>, _>>()
    };
    let mut actions = rule.actions.clone();
    actions.sort();
    actions.dedup();
    Ok(Rule {
        actions,
        topics: patterns(&rule.topics)?,
        groups: patterns(&rule.groups)?,
    })
}

const MAX_RATE: u32 = 1_000_000;

fn parse_limit(rate: Option<u32>, burst: Option<u32>) -> Result<Option<RateLimit>, String> {
    let per_second = match (rate, burst) {
        (None, None) => return Ok(None),
        (None, Some(_)) => return Err("burst without rate_per_second".into()),
        (Some(rate), _) => rate,
    };
    if !(1..=MAX_RATE).contains(&per_second) {
        return Err(format!(
            "rate_per_second {per_second} is outside 1..={MAX_RATE}"
        ));
    }
    let burst = burst.unwrap_or(per_second);
    if !(1..=MAX_RATE).contains(&burst) {
        return Err(format!("burst {burst} is outside 1..={MAX_RATE}"));
    }
    Ok(Some(RateLimit { per_second, burst }))
}
