//! `shale token`: a new random token and the auth-file lines that admit it.
//!
//! The token is `shale_` and 32 bytes from the operating system's random
//! source in URL-safe base64 (49 characters; the prefix lets secret
//! scanners spot leaked ones). Standard output gets only the `[[tokens]]`
//! lines, with the token's SHA-256, so `shale token ... >> auth.toml` never
//! writes the token into the file; the token itself goes to standard error,
//! or to a new file (`--token-file`, mode 0600). The same command makes a
//! cluster secret: use the token as the secret file's content and its
//! `sha256` in `cluster_secret_sha256`.

use std::io::Write;
use std::path::PathBuf;

use base64::Engine as _;
use clap::Args;

use super::file;
use super::policy::sha256;

/// Flags of `shale token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Who the token is for (logs and 403 messages name it).
    #[arg(long, value_name = "NAME", default_value = "client")]
    pub principal: String,
    /// Actions of the token's rule: PUBLISH, SUBSCRIBE, ADMIN (comma-separated). Without it the rule is left for you to write.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub actions: Vec<String>,
    /// Topic name patterns of the rule (`*` matches any run of characters), comma-separated.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Group name patterns of the rule, comma-separated.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Write the token to this new file (mode 0600) instead of standard error.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// A new random token.
pub fn new_token() -> Result<String, String> {
    use rand::TryRngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| format!("the operating system's random source failed: {e}"))?;
    Ok(format!(
        "shale_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The `[[tokens]]` lines for `token` (checked by the auth file's own parser
/// when the rule is given).
pub fn toml_lines(token: &str, args: &TokenArgs) -> Result<String, String> {
    let quoted = |list: &[String]| {
        let items: Vec<String> = list.iter().map(|s| format!("{:?}", s.trim())).collect();
        format!("[{}]", items.join(", "))
    };
    let hash = hex::encode(sha256(token.as_bytes()));
    let mut text = format!(
        "[[tokens]]\nprincipal = {:?}\nsha256 = \"{hash}\"\n",
        args.principal
    );
    if args.actions.is_empty() {
        text.push_str(
            "# write this token's rules, e.g.:\n# rules = [{actions = [\"SUBSCRIBE\"], topics = [\"orders*\"], groups = [\"billing*\"]}]\n",
        );
        return Ok(text);
    }
    let actions: Vec<String> = args
        .actions
        .iter()
        .map(|a| a.trim().to_ascii_uppercase())
        .collect();
    let mut rule = format!("actions = {}", quoted(&actions));
    if !args.topics.is_empty() {
        rule.push_str(&format!(", topics = {}", quoted(&args.topics)));
    }
    if !args.groups.is_empty() {
        rule.push_str(&format!(", groups = {}", quoted(&args.groups)));
    }
    text.push_str(&format!("rules = [{{{rule}}}]\n"));
    file::parse(&text)?;
    Ok(text)
}

/// Runs `shale token`.
pub fn run(args: &TokenArgs) -> Result<(), String> {
    let token = new_token()?;
    let lines = toml_lines(&token, args)?;
    match &args.token_file {
        Some(path) => write_new_private(path, &token)
            .map_err(|e| format!("cannot write the token to {}: {e}", path.display()))?,
        None => eprintln!("token (give it to the client; it is not kept anywhere): {token}"),
    }
    print!("{lines}");
    std::io::stdout()
        .flush()
        .map_err(|e| format!("cannot write to standard output: {e}"))
}

/// Creates `path` (refusing an existing file) readable by its owner only.
fn write_new_private(path: &std::path::Path, token: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{token}")?;
    file.sync_all()
}
