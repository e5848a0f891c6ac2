//! The `shale` command line.
//!
//! `shale serve [FLAGS]` runs a node; `shale [FLAGS]` with no subcommand does
//! the same. `shale bench` runs the load generator ([`crate::bench`]);
//! `shale token` makes a token for the auth file ([`crate::auth::token`]);
//! `shale doctor` checks an object store ([`crate::doctor`]). The user
//! subcommands (`topic`, `group`, `send`, `consume`, `replay`, `tail`,
//! `cluster`, `completions`) talk to a node over HTTP ([`crate::tools`]).
//!
//! Each serve flag is also an environment variable and a key of the config
//! file (see [`crate::config`]); flags win. [`ServeArgs`] serializes only the
//! flags actually given, which is what makes it the top layer of the settings.
//! Sizes and durations accept units here too (`--segment-bytes 64MiB`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::bench::BenchArgs;
use crate::config::units;

const SETTINGS_HELP: &str = "\
Every serve setting is, from lowest to highest precedence: a built-in default,
a key of the config file (--config), an environment variable SHALE_<KEY>, a flag.
Sizes accept units (65536, 64KiB, 64MiB, 1GiB); durations too (600000, 250ms, 30s, 10m).
Logs go to stderr, filtered by SHALE_LOG or RUST_LOG (default: info).
Exit status: 0 after a clean shutdown, 1 on a runtime failure, 2 on invalid settings.";

/// Shale: a message broker with RocketMQ 5 semantics over an HTTPS JSON API.
#[derive(Debug, Parser)]
#[command(name = "shale", version, after_help = SETTINGS_HELP, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `shale [FLAGS]` without a subcommand: the serve flags.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands of `shale`.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process")]
pub enum Command {
    /// Run a node (the default when no subcommand is given).
    #[command(after_help = SETTINGS_HELP)]
    Serve(ServeArgs),
    /// Load-test a running node.
    Bench(BenchArgs),
    /// Print a new random token and the auth-file lines (its SHA-256) that admit it.
    Token(crate::auth::token::TokenArgs),
    /// Check that an object store honours what Shale relies on (create-only and conditional writes, read-after-write, list, ranged GET, delete); exit 1 if not.
    Doctor(crate::doctor::DoctorArgs),
    /// The user subcommands (topic, group, send, consume, replay, tail, cluster, completions).
    #[command(flatten)]
    Tool(crate::tools::ToolCommand),
}

impl Cli {
    /// The subcommand to run, `serve` when none was given.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

/// Flags of `shale serve`. Unset flags leave the lower layers' values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Serialize)]
pub struct ServeArgs {
    /// Read settings from this TOML file (keys as below, e.g. `segment_bytes = "64MiB"`).
    #[arg(
        long,
        value_name = "FILE",
        env = "SHALE_CONFIG",
        hide_env_values = true
    )]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Print the settings the node would run with (TOML) and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,

    /// HTTP(S) address, HOST:PORT; port 0 picks a free one [env: SHALE_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,

    /// Hot tier and local state [env: SHALE_DATA_DIR] [default: ./shale-data]
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,

    /// file:///abs/path, file://./rel/path, s3://bucket/prefix or memory:// [env: SHALE_OBJECT_STORE] [default: file://{data-dir}/objects]
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_store: Option<String>,

    /// Seal the active segment at this size [env: SHALE_SEGMENT_BYTES] [default: 64MiB]
    #[arg(long, value_name = "BYTES", value_parser = units::parse_size)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_bytes: Option<u64>,

    /// Seal the active segment at this age [env: SHALE_SEGMENT_MS] [default: 10m]
    #[arg(long, value_name = "MS", value_parser = units::parse_duration_ms)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_ms: Option<u64>,

    /// Local disk budget of the hot tier (unset: unbounded) [env: SHALE_HOT_BYTES]
    #[arg(long, value_name = "BYTES", value_parser = units::parse_size)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hot_bytes: Option<u64>,

    /// Stable node id [env: SHALE_NODE_ID] [default: generated once, kept in {data-dir}/node-id]
    #[arg(long, value_name = "ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,

    /// PEM certificate chain; with --tls-key the node serves HTTPS [env: SHALE_TLS_CERT]
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert [env: SHALE_TLS_KEY]
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,

    /// Tokens (as SHA-256) and their rules; every /v1 request then needs a token; re-read on change and SIGHUP [env: SHALE_AUTH_FILE]
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_file: Option<PathBuf>,

    /// The secret this node presents to other nodes (its SHA-256 in the auth file's cluster_secret_sha256) [env: SHALE_CLUSTER_SECRET_FILE]
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_secret_file: Option<PathBuf>,

    /// Period of the background fsync of ASYNC data and segment sealing [env: SHALE_FLUSH_INTERVAL_MS] [default: 1s]
    #[arg(long, value_name = "MS", value_parser = units::parse_duration_ms)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_interval_ms: Option<u64>,

    /// How the other nodes reach this one [env: SHALE_ADVERTISE_URL] [default: the bound listen address]
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_url: Option<String>,

    /// Period of the cluster lease renewal [env: SHALE_CLUSTER_HEARTBEAT_MS] [default: 2s]
    #[arg(long, value_name = "MS", value_parser = units::parse_duration_ms)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_heartbeat_ms: Option<u64>,

    /// A node silent this long is declared dead and its queues move [env: SHALE_CLUSTER_LEASE_MS] [default: 10s]
    #[arg(long, value_name = "MS", value_parser = units::parse_duration_ms)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_lease_ms: Option<u64>,

    /// Least time between two OBJECT group commits (PUTs) [env: SHALE_OBJECT_COMMIT_INTERVAL_MS] [default: 10ms]
    #[arg(long, value_name = "MS", value_parser = units::parse_duration_ms)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_commit_interval_ms: Option<u64>,

    /// Furthest ahead a delay message may be due, at most 365d [env: SHALE_MAX_DELAY_MS] [default: 40d]
    #[arg(long, value_name = "MS", value_parser = units::parse_duration_ms)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delay_ms: Option<u64>,

    /// Checks offered for an undecided transaction before it is rolled back, 1-1000 [env: SHALE_TRANSACTION_MAX_CHECKS] [default: 15]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_max_checks: Option<u32>,

    /// On SIGTERM, how long in-flight requests may take to finish [env: SHALE_DRAIN_TIMEOUT_MS] [default: 30s]
    #[arg(long, value_name = "MS", value_parser = units::parse_duration_ms)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout_ms: Option<u64>,

    /// Longest a client may take to send request headers; then the connection is closed [env: SHALE_REQUEST_HEADER_TIMEOUT_MS] [default: 10s]
    #[arg(long, value_name = "MS", value_parser = units::parse_duration_ms)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_header_timeout_ms: Option<u64>,

    /// Longest a client may take to send a request body; then 408 [env: SHALE_REQUEST_BODY_TIMEOUT_MS] [default: 30s]
    #[arg(long, value_name = "MS", value_parser = units::parse_duration_ms)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body_timeout_ms: Option<u64>,

    /// Start even if the s3:// object store fails the start-up check of `shale doctor` [env: SHALE_SKIP_STORE_CHECK]
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skip_store_check: bool,

    /// Also serve (the SQS-compatible endpoint and the API) on this address [env: SHALE_SQS_LISTEN] [default: only --listen]
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqs_listen: Option<String>,

    /// Region named in SQS queue ARNs [env: SHALE_SQS_REGION] [default: us-east-1]
    #[arg(long, value_name = "REGION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqs_region: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("shale").chain(args.iter().copied()))
            .map(Cli::into_command)
    }

    fn serve_args(args: &[&str]) -> ServeArgs {
        match parse(args) {
            Ok(Command::Serve(args)) => args,
            other => panic!("expected serve, got {other:?}"),
        }
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve() {
        // SHALE_CONFIG may be set by the environment; everything else must be unset.
        let args = serve_args(&[]);
        assert_eq!(
            ServeArgs {
                config: None,
                ..args
            },
            ServeArgs::default()
        );
        let args = serve_args(&["--listen", "127.0.0.1:0"]);
        assert_eq!(args.listen.as_deref(), Some("127.0.0.1:0"));
    }

    #[test]
    fn serve_flags() {
        let args = serve_args(&[
            "serve",
            "--listen=0.0.0.0:9000",
            "--data-dir",
            "/d",
            "--object-store",
            "s3://b-1/p",
            "--segment-bytes",
            "1MiB",
            "--segment-ms",
            "30s",
            "--hot-bytes",
            "10737418240",
            "--node-id",
            "n1",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--flush-interval-ms",
            "200",
            "--drain-timeout-ms",
            "5s",
        ]);
        assert_eq!(args.segment_bytes, Some(1 << 20));
        assert_eq!(args.segment_ms, Some(30_000));
        assert_eq!(args.hot_bytes, Some(10 << 30));
        assert_eq!(args.drain_timeout_ms, Some(5000));
        assert_eq!(args.tls_key, Some(PathBuf::from("k.pem")));
        assert_eq!(
            serde_json::to_value(&args).unwrap(),
            serde_json::json!({
                "listen": "0.0.0.0:9000", "data_dir": "/d", "object_store": "s3://b-1/p",
                "segment_bytes": 1048576, "segment_ms": 30000, "hot_bytes": 10737418240u64,
                "node_id": "n1", "tls_cert": "c.pem", "tls_key": "k.pem",
                "flush_interval_ms": 200, "drain_timeout_ms": 5000
            }),
            "only given flags are serialized, under the config keys"
        );
    }

    #[test]
    fn unset_flags_serialize_to_nothing() {
        let args = ServeArgs {
            config: Some("x.toml".into()),
            print_config: true,
            ..ServeArgs::default()
        };
        assert_eq!(serde_json::to_value(&args).unwrap(), serde_json::json!({}));
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for args in [
            &["--segment-bytes", "lots"][..],
            &["--segment-ms", "1.5s"],
            &["--no-such-flag"],
            &["serve", "--listen"],
            &["frobnicate"],
        ] {
            let error = parse(args).expect_err("should be refused");
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn serve_flags_and_a_subcommand_do_not_mix() {
        assert!(parse(&["--listen", "127.0.0.1:0", "bench"]).is_err());
    }

    #[test]
    fn doctor_is_a_subcommand() {
        match parse(&["doctor", "--object-store", "memory://", "--create-bucket"]) {
            Ok(Command::Doctor(args)) => {
                assert_eq!(args.object_store, "memory://");
                assert!(args.create_bucket);
            }
            other => panic!("expected doctor, got {other:?}"),
        }
        let args = serve_args(&["--skip-store-check"]);
        assert_eq!(
            serde_json::to_value(&args).unwrap()["skip_store_check"],
            true
        );
    }

    #[test]
    fn bench_is_a_subcommand() {
        assert!(Cli::command().find_subcommand("bench").is_some());
    }

    #[test]
    fn every_setting_has_a_flag() {
        let command = Cli::command();
        let serve = command.find_subcommand("serve").expect("serve");
        for key in crate::config::SETTING_KEYS {
            let long = key.replace('_', "-");
            assert!(
                serve
                    .get_arguments()
                    .any(|a| a.get_long() == Some(long.as_str())),
                "--{long} is missing"
            );
        }
    }
}
