//! Node settings: what they are, where they come from, and what is valid.
//!
//! Every setting is a key of [`NodeConfig`], read from four layers, each
//! overriding the one before:
//!
//! 1. the built-in defaults ([`NodeConfig::default`]);
//! 2. the config file given with `--config FILE` / `SHALE_CONFIG` (TOML, top-level keys);
//! 3. environment variables `SHALE_<KEY>` (`SHALE_SEGMENT_BYTES` for `segment_bytes`);
//! 4. command-line flags `--<key>` with `-` for `_` (`--segment-bytes`).
//!
//! [`load`] merges the layers, refuses unknown keys, fills the settings that
//! derive from others (the default object store lives in the data directory)
//! and runs [`NodeConfig::validate`], so a node never starts on a setting it
//! would misread. [`NodeConfig::prepare_local_state`] then creates the local
//! directories and fixes the node id (see [`node_id`]). Sizes and durations
//! accept units (`64MiB`, `10m`, see [`units`]).

pub mod node_id;
pub mod units;

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::{Deserialize, Serialize};

pub use shale_tiering::ObjectStoreUrl;

/// Prefix of the environment variables that set keys of [`NodeConfig`].
pub const ENV_PREFIX: &str = "SHALE_";

/// Every key of [`NodeConfig`] (also the `SHALE_*` variables read as settings).
pub const SETTING_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "object_store",
    "segment_bytes",
    "segment_ms",
    "hot_bytes",
    "node_id",
    "tls_cert",
    "tls_key",
    "auth_file",
    "cluster_secret_file",
    "flush_interval_ms",
    "drain_timeout_ms",
    "advertise_url",
    "cluster_heartbeat_ms",
    "cluster_lease_ms",
    "object_commit_interval_ms",
    "max_delay_ms",
    "transaction_max_checks",
    "request_header_timeout_ms",
    "request_body_timeout_ms",
    "skip_store_check",
    "sqs_listen",
    "sqs_region",
];

/// `SHALE_*` variables that are not settings but are read elsewhere.
pub const OTHER_ENV_VARS: &[&str] = &["SHALE_CONFIG", "SHALE_LOG", "SHALE_URL", "SHALE_TOKEN"];

/// The accepted range of `segment_bytes`, defined once by the hot tier so
/// that every size this check accepts also opens it (see `shale_hot`).
pub use shale_hot::{MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES};

// The messages below spell the range out; keep them true.
const _: () = assert!(MIN_SEGMENT_BYTES == 64 * 1024 && MAX_SEGMENT_BYTES == 1 << 30);

/// Bounds of `request_header_timeout_ms` and `request_body_timeout_ms`.
const MIN_CLIENT_TIMEOUT_MS: u64 = 100;
const MAX_CLIENT_TIMEOUT_MS: u64 = 3_600_000;

/// Settings of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// HTTP(S) listen address, `HOST:PORT`; port 0 picks a free port (the node
    /// prints the bound address). `127.0.0.1` keeps the node private to this
    /// machine; `0.0.0.0` or `[::]` exposes it (then set TLS and, once it
    /// exists, auth).
    pub listen: String,
    /// Hot tier (`{data_dir}/hot`) and local state (topic metadata, node id).
    /// Put it on a local SSD: SYNC produce latency is this disk's fsync latency.
    pub data_dir: PathBuf,
    /// Object store URL: `file:///abs/path` or `file://./relative/path`,
    /// `s3://bucket/prefix`, `memory://` (tests: lost on exit). Default:
    /// `file://{data_dir}/objects`, which needs no other service but does not
    /// survive the loss of this machine.
    pub object_store: String,
    /// Seal the active segment at this size (bytes; `64MiB` style accepted,
    /// 64 KiB – 1 GiB). Larger segments mean fewer, bigger objects (fewer PUTs,
    /// longer uploads); smaller ones reach the object store sooner.
    #[serde(deserialize_with = "units::size")]
    pub segment_bytes: u64,
    /// Seal the active segment at this age (milliseconds; `10m` style
    /// accepted). Bounds how long a quiet queue's data stays only on local disk,
    /// at the cost of more, smaller objects for slow topics.
    #[serde(deserialize_with = "units::duration_ms")]
    pub segment_ms: u64,
    /// Local disk budget of the hot tier (bytes; unset = unbounded). Sealed
    /// segments already in the object store are evicted beyond it; reads of
    /// them then cost an object-store GET.
    #[serde(deserialize_with = "units::optional_size")]
    pub hot_bytes: Option<u64>,
    /// Stable node id (default: generated once and kept in `{data_dir}/node-id`).
    /// Leases and heartbeats carry it; two live nodes must never share one.
    pub node_id: Option<String>,
    /// PEM certificate chain: with `tls_key`, the node serves HTTPS only.
    /// TLS costs some CPU per request; without it, keep `listen` private.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Tokens (as SHA-256) and their rules (see `crate::auth::file`). Unset:
    /// no auth, every request is served (keep `listen` private then). Read
    /// and validated at start (a bad file is exit 2), re-read when it changes
    /// and on SIGHUP (a bad new file is logged and the old rules stay).
    pub auth_file: Option<PathBuf>,
    /// The secret this node presents on its own calls to other nodes
    /// (dead-letter copies), one line; its SHA-256 must be among the auth
    /// file's `cluster_secret_sha256`. Needs `auth_file`. Without it, a
    /// cluster with auth cannot copy dead letters to a `%DLQ%` queue another
    /// node serves (those copies are retried and logged).
    pub cluster_secret_file: Option<PathBuf>,
    /// Period of the background work (fsync of ASYNC data, sealing segments
    /// past `segment_ms`). Shorter bounds how much ASYNC data a machine crash
    /// can lose, at the cost of more fsyncs.
    #[serde(deserialize_with = "units::duration_ms")]
    pub flush_interval_ms: u64,
    /// How long SIGTERM waits for in-flight requests (long polls included)
    /// before closing them. Longer drains more gently; shorter restarts sooner.
    /// Nothing acknowledged is lost either way.
    #[serde(deserialize_with = "units::duration_ms")]
    pub drain_timeout_ms: u64,
    /// How the other nodes of the cluster reach this one (`http://10.0.0.5:8080`).
    /// Default: the bound listen address (`127.0.0.1` for a wildcard one,
    /// which only works for nodes on one machine).
    pub advertise_url: Option<String>,
    /// Period of the node's lease renewal and of its listing of the others.
    #[serde(deserialize_with = "units::duration_ms")]
    pub cluster_heartbeat_ms: u64,
    /// A node whose lease stays unchanged this long is declared dead and its
    /// queues move (takeover time is about this plus a heartbeat). The node
    /// itself stops writing 30% of it earlier.
    #[serde(deserialize_with = "units::duration_ms")]
    pub cluster_lease_ms: u64,
    /// Least time between the starts of two OBJECT group commits (one PUT
    /// each, holding every queue's waiting messages). Shorter answers OBJECT
    /// produces sooner; longer makes fewer PUTs under load (at most
    /// 1000 / this many a second per node). 1 ms to 1 s.
    #[serde(deserialize_with = "units::duration_ms")]
    pub object_commit_interval_ms: u64,
    /// Furthest ahead a delay message may be due (`delay_ms`,
    /// `deliver_at_ms`); further is 400. 1 ms to 365 days, default 40 days.
    #[serde(deserialize_with = "units::duration_ms")]
    pub max_delay_ms: u64,
    /// Checks offered for an undecided transaction before it is rolled
    /// back. 1 to 1000, default 15 (RocketMQ's).
    pub transaction_max_checks: u32,
    /// Longest a client may take to send a request's headers (from its first
    /// byte, or from the end of the previous request on a kept-alive
    /// connection); then the connection is closed. Bounds what a client that
    /// opens connections and sends nothing (or a byte now and then) costs.
    /// Longer tolerates slower links; idle kept-alive connections are closed
    /// after this too. 100 ms to 1 h, default 10 s.
    #[serde(deserialize_with = "units::duration_ms")]
    pub request_header_timeout_ms: u64,
    /// Longest a client may take to send a request's body, from the end of
    /// its headers; then it gets 408 `REQUEST_TIMEOUT` and the connection is
    /// closed. A 32 MiB produce needs about 1.1 MB/s at the default 30 s.
    /// Waits for an answer (long polls with `wait_ms`) are not body reads and
    /// are not cut by it. 100 ms to 1 h.
    #[serde(deserialize_with = "units::duration_ms")]
    pub request_body_timeout_ms: u64,
    /// Start even when an `s3://` object store fails the start-up check
    /// (`shale doctor`'s checks, run once before the node opens its storage:
    /// about ten small requests under `{prefix}/doctor/`). A store that
    /// accepts a second create-only write of one key would let two owners of
    /// a queue both write; skip only for a store known good.
    pub skip_store_check: bool,
    /// A second address that serves the SQS-compatible endpoint (and the
    /// rest of the API) besides `listen`; the main listener serves SQS too.
    /// Port 0 picks a free port (printed as `shale sqs listening on ...`).
    pub sqs_listen: Option<String>,
    /// The region SQS answers name in queue ARNs (`arn:aws:sqs:{region}:...`).
    /// Signatures are accepted for any region.
    pub sqs_region: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./shale-data"),
            object_store: "file://./shale-data/objects".into(),
            segment_bytes: 64 * 1024 * 1024,
            segment_ms: 10 * 60 * 1000,
            hot_bytes: None,
            node_id: None,
            tls_cert: None,
            tls_key: None,
            auth_file: None,
            cluster_secret_file: None,
            flush_interval_ms: 1000,
            drain_timeout_ms: 30_000,
            advertise_url: None,
            cluster_heartbeat_ms: 2000,
            cluster_lease_ms: 10_000,
            object_commit_interval_ms: 10,
            max_delay_ms: 40 * 24 * 3_600_000,
            transaction_max_checks: shale_broker::txn::DEFAULT_MAX_CHECKS,
            request_header_timeout_ms: 10_000,
            request_body_timeout_ms: 30_000,
            skip_store_check: false,
            sqs_listen: None,
            sqs_region: "us-east-1".into(),
        }
    }
}

/// Why the settings cannot be used. The node exits with status 2 on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer could not be read or a value has the wrong type or an unknown key.
    #[error("{}", describe(.0))]
    Load(Box<figment::Error>),
    /// The config file named by `--config` / `SHALE_CONFIG` is missing.
    #[error("config file {}: not found (or not a regular file)", .0.display())]
    MissingFile(PathBuf),
    /// A value that parsed but is not acceptable.
    #[error("invalid {key}{}: {reason}", .origin.as_deref().map(|o| format!(" (from {o})")).unwrap_or_default())]
    Invalid {
        /// The setting's key.
        key: &'static str,
        /// Where the value came from (`--segment-bytes`, `SHALE_SEGMENT_BYTES`, a file).
        origin: Option<String>,
        /// What is wrong, and what would be right.
        reason: String,
    },
    /// Preparing local state (data directory, node id, TLS files) failed.
    #[error("{what}")]
    Local {
        /// What was being done, with the path.
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// One line per figment error: unknown keys listed with the known ones,
/// anything else as figment words it (joined when there are several).
fn describe(error: &figment::Error) -> String {
    if let figment::error::Kind::UnknownField(field, _) = &error.kind {
        let place = match error.metadata.as_ref().and_then(|md| md.source.as_ref()) {
            Some(source) => format!(" in {source}"),
            None => error
                .metadata
                .as_ref()
                .map(|md| format!(" in the {}", md.name))
                .unwrap_or_default(),
        };
        return format!(
            "unknown setting `{field}`{place} (known: {})",
            SETTING_KEYS.join(", ")
        );
    }
    error.to_string().replace('\n', "; ")
}

impl ConfigError {
    fn invalid(key: &'static str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key,
            origin: None,
            reason: reason.into(),
        }
    }

    fn local(what: impl Into<String>, source: std::io::Error) -> Self {
        ConfigError::Local {
            what: what.into(),
            source,
        }
    }
}

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        ConfigError::Load(Box::new(error))
    }
}

/// `HOST:PORT` where HOST is an IP (`[::1]` for IPv6) or a DNS name.
fn check_listen(listen: &str) -> Result<(), String> {
    if listen.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let expected =
        "expected HOST:PORT such as 127.0.0.1:8080, 0.0.0.0:8080, [::]:8080 or localhost:0";
    let Some((host, port)) = listen.rsplit_once(':') else {
        return Err(format!("`{listen}` has no port ({expected})"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "`{listen}` has an invalid port `{port}` ({expected})"
        ));
    }
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !host.starts_with(['-', '.']);
    if !host_ok {
        return Err(format!(
            "`{listen}` has an invalid host `{host}` ({expected})"
        ));
    }
    Ok(())
}

/// An advertise URL is `http://` or `https://`, a host, an optional port, no path.
fn check_advertise_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{url}` must start with http:// or https://"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ', '@']) {
        return Err(format!(
            "`{url}` must be scheme://host[:port] with no path, query or credentials"
        ));
    }
    Ok(())
}

impl NodeConfig {
    /// The membership timing (margin: 30% of the lease) and advertise URL
    /// (the listen address until the server knows the bound one).
    pub fn cluster_config(&self) -> shale_broker::cluster::ClusterConfig {
        let lease = std::time::Duration::from_millis(self.cluster_lease_ms);
        shale_broker::cluster::ClusterConfig {
            advertise_url: self
                .advertise_url
                .clone()
                .map(|u| u.trim_end_matches('/').to_string())
                .unwrap_or_else(|| format!("http://{}", self.listen)),
            heartbeat: std::time::Duration::from_millis(self.cluster_heartbeat_ms),
            lease,
            margin: lease * 3 / 10,
            lease_clock: None,
        }
    }

    /// Checks every setting, returning the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_listen(&self.listen).map_err(|r| ConfigError::invalid("listen", r))?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("data_dir", "is empty"));
        }
        self.object_store_url()
            .map_err(|r| ConfigError::invalid("object_store", r))?;
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(ConfigError::invalid(
                "segment_bytes",
                format!(
                    "{} is outside 64KiB..=1GiB ({MIN_SEGMENT_BYTES}..={MAX_SEGMENT_BYTES} bytes)",
                    self.segment_bytes
                ),
            ));
        }
        if self.segment_ms == 0 {
            return Err(ConfigError::invalid("segment_ms", "must be at least 1"));
        }
        if i64::try_from(self.segment_ms).is_err() {
            let reason = format!("{} is too large", self.segment_ms);
            return Err(ConfigError::invalid("segment_ms", reason));
        }
        if self.hot_bytes == Some(0) {
            return Err(ConfigError::invalid(
                "hot_bytes",
                "0 would evict everything; leave it unset for no limit",
            ));
        }
        if let Some(id) = &self.node_id {
            node_id::check_node_id(id).map_err(|r| ConfigError::invalid("node_id", r))?;
        }
        if let Some(url) = &self.advertise_url {
            check_advertise_url(url).map_err(|r| ConfigError::invalid("advertise_url", r))?;
        }
        let region_ok = !self.sqs_region.is_empty()
            && self.sqs_region.len() <= 32
            && self
                .sqs_region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(ConfigError::invalid(
                "sqs_region",
                "1-32 of [a-z0-9-], e.g. us-east-1",
            ));
        }
        if self.cluster_heartbeat_ms == 0 {
            return Err(ConfigError::invalid(
                "cluster_heartbeat_ms",
                "must be at least 1",
            ));
        }
        self.cluster_config()
            .validate()
            .map_err(|r| ConfigError::invalid("cluster_lease_ms", r))?;
        if !(1..=1000).contains(&self.object_commit_interval_ms) {
            return Err(ConfigError::invalid(
                "object_commit_interval_ms",
                format!("{} is outside 1..=1000 ms", self.object_commit_interval_ms),
            ));
        }
        let year = shale_broker::produce::plan::MAX_MAX_DELAY_MS as u64;
        if !(1..=year).contains(&self.max_delay_ms) {
            return Err(ConfigError::invalid(
                "max_delay_ms",
                format!(
                    "{} is outside 1 ms..=365 days ({year} ms)",
                    self.max_delay_ms
                ),
            ));
        }
        if !(1..=1000).contains(&self.transaction_max_checks) {
            return Err(ConfigError::invalid(
                "transaction_max_checks",
                format!("{} is outside 1..=1000", self.transaction_max_checks),
            ));
        }
        for (key, value) in [
            ("request_header_timeout_ms", self.request_header_timeout_ms),
            ("request_body_timeout_ms", self.request_body_timeout_ms),
        ] {
            if !(MIN_CLIENT_TIMEOUT_MS..=MAX_CLIENT_TIMEOUT_MS).contains(&value) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{value} is outside 100 ms..=1 h"),
                ));
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "tls_cert",
                    "is set without tls_key; set both or neither",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "tls_key",
                    "is set without tls_cert; set both or neither",
                ));
            }
            _ => {}
        }
        for (key, path) in [("tls_cert", &self.tls_cert), ("tls_key", &self.tls_key)] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(ConfigError::invalid(key, "is empty"));
            }
        }
        match (&self.auth_file, &self.cluster_secret_file) {
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "cluster_secret_file",
                    "is set without auth_file; the secret only matters when auth is on",
                ));
            }
            (Some(auth_file), secret_file) => {
                crate::auth::file::load(auth_file, secret_file.as_deref())
                    .map_err(|reason| ConfigError::invalid("auth_file", reason))?;
            }
            (None, None) => {}
        }
        if self.flush_interval_ms == 0 {
            return Err(ConfigError::invalid(
                "flush_interval_ms",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// [`NodeConfig::object_store`] parsed.
    pub fn object_store_url(&self) -> Result<ObjectStoreUrl, String> {
        ObjectStoreUrl::parse(&self.object_store)
    }

    /// How long clients may take to send a request (see [`crate::server::slow_clients`]).
    pub fn client_timeouts(&self) -> crate::server::slow_clients::ClientTimeouts {
        crate::server::slow_clients::ClientTimeouts {
            header: std::time::Duration::from_millis(self.request_header_timeout_ms),
            body: std::time::Duration::from_millis(self.request_body_timeout_ms),
        }
    }

    /// Whether the node serves HTTPS.
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    /// Creates the data directory and a `file://` object store's directory,
    /// and fixes the node id (given, kept in the data dir, or generated and
    /// kept): afterwards `node_id` is `Some`.
    pub fn prepare_local_state(&mut self) -> Result<(), ConfigError> {
        std::fs::create_dir_all(&self.data_dir).map_err(|e| {
            ConfigError::local(format!("creating data_dir {}", self.data_dir.display()), e)
        })?;
        if let Ok(ObjectStoreUrl::File(dir)) = self.object_store_url() {
            std::fs::create_dir_all(&dir).map_err(|e| {
                ConfigError::local(
                    format!("creating the object store directory {}", dir.display()),
                    e,
                )
            })?;
        }
        let id = node_id::resolve(&self.data_dir, self.node_id.as_deref()).map_err(|e| {
            ConfigError::local(format!("node id in {}", self.data_dir.display()), e)
        })?;
        self.node_id = Some(id);
        Ok(())
    }
}

/// The default object store of a node whose data lives in `data_dir`.
pub fn default_object_store(data_dir: &Path) -> String {
    format!("file://{}", data_dir.join("objects").display())
}

/// Merges the defaults, `config_file`, the `SHALE_*` environment and `flags`
/// (a struct serializing only the flags given), then validates.
pub fn load(config_file: Option<&Path>, flags: &impl Serialize) -> Result<NodeConfig, ConfigError> {
    let overrides = overrides(config_file, flags)?;
    let defaults = Layer::new(
        Serialized::defaults(NodeConfig::default()),
        "built-in default",
        |_| "default".into(),
    );
    let merged = Figment::from(defaults).merge(overrides.clone());
    let mut config: NodeConfig = merged.extract()?;
    if !overrides.contains("object_store") {
        config.object_store = default_object_store(&config.data_dir);
    }
    config.validate().map_err(|error| match error {
        ConfigError::Invalid {
            key,
            origin: None,
            reason,
        } => ConfigError::Invalid {
            key,
            origin: origin_of(&merged, key),
            reason,
        },
        other => other,
    })?;
    Ok(config)
}

/// The layers above the defaults: file < environment < flags.
fn overrides(config_file: Option<&Path>, flags: &impl Serialize) -> Result<Figment, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = config_file {
        if !path.is_file() {
            return Err(ConfigError::MissingFile(path.to_path_buf()));
        }
        let file = Layer::new(Toml::file_exact(path), "config file", str::to_string);
        figment = figment.merge(file.with_file_source(path));
    }
    let env = Layer::new(
        Env::prefixed(ENV_PREFIX).only(SETTING_KEYS),
        "environment",
        |key| format!("{ENV_PREFIX}{}", key.to_ascii_uppercase()),
    );
    let flags = Layer::new(Serialized::defaults(flags), "command-line flag", |key| {
        format!("--{}", key.replace('_', "-"))
    });
    Ok(figment.merge(env).merge(flags))
}

/// Names where `key`'s value came from, for error messages.
fn origin_of(figment: &Figment, key: &str) -> Option<String> {
    let metadata = figment.find_metadata(key)?;
    match &metadata.source {
        Some(Source::File(path)) => Some(format!("`{key}` in {}", path.display())),
        _ => Some(metadata.interpolate(&Profile::Default, &[key])),
    }
}

/// `SHALE_*` variables set in the environment that are neither settings nor
/// [`OTHER_ENV_VARS`]: most likely typos, which would otherwise be ignored.
pub fn unknown_env_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with(ENV_PREFIX))
        .filter(|name| !OTHER_ENV_VARS.contains(&name.as_str()))
        .filter(|name| {
            !SETTING_KEYS
                .iter()
                .any(|key| name[ENV_PREFIX.len()..].eq_ignore_ascii_case(key))
        })
        .collect()
}

/// A provider that names keys as the user wrote them in error messages
/// (`--segment-bytes`, `SHALE_SEGMENT_BYTES`, `` `segment_bytes` in shale.toml``)
/// instead of figment's profile-qualified `default.segment_bytes`.
struct Layer<P> {
    inner: P,
    name: &'static str,
    source: Option<Source>,
    key_name: fn(&str) -> String,
}

impl<P> Layer<P> {
    fn new(inner: P, name: &'static str, key_name: fn(&str) -> String) -> Self {
        Layer {
            inner,
            name,
            source: None,
            key_name,
        }
    }

    fn with_file_source(self, path: &Path) -> Self {
        Layer {
            source: Some(Source::File(path.to_path_buf())),
            ..self
        }
    }
}

impl<P: Provider> Provider for Layer<P> {
    fn metadata(&self) -> Metadata {
        let key_name = self.key_name;
        let metadata = match &self.source {
            Some(source) => Metadata::from(self.name, source.clone()),
            None => Metadata::named(self.name),
        };
        metadata.interpolater(move |_profile, keys| key_name(&keys.join(".")))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.inner.data()
    }
}

#[cfg(test)]
mod tests;
