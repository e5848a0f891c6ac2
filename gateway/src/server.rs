//! Running a node: bind, serve HTTP or HTTPS, background maintenance, drain.
//!
//! [`run`] keeps this order, and each step is a promise to the user:
//! 1. TLS files are loaded first, then the data directory and node id are
//!    prepared, so a bad certificate or an unusable data directory is a
//!    settings error (exit 2) with nothing started. SIGTERM/SIGINT handlers
//!    are installed next: a signal that arrives during startup still drains
//!    instead of killing.
//! 2. The listener is bound (port 0 allowed) before the storage is opened, so
//!    a taken port fails fast; connections wait in the backlog meanwhile. The
//!    node then joins the cluster (its lease) and takes the queues placement
//!    gives it whose owner is gone.
//! 3. Once the server accepts, exactly one line `shale listening on
//!    http://ADDR` (`https://` with TLS) goes to stdout, with the bound address.
//!    Everything else (logs) goes to stderr.
//! 4. The background jobs of [`AppState::jobs`] run, each on its own period
//!    (`shale_broker::tasks`: flush-and-seal, upload, evict,
//!    checkpoint-groups, group-metrics; plus metrics-upkeep), the frequent
//!    ones every `flush_interval_ms`.
//! 5. On the first SIGTERM or SIGINT: [`AppState::set_draining`], stop
//!    accepting, let in-flight requests finish (at most `drain_timeout_ms`),
//!    stop the background jobs, leave the cluster (hand every held queue
//!    over: seal, upload, release; at most `drain_timeout_ms`; then the lease
//!    says LEFT), [`AppState::shutdown_flush`], return `Ok`.
//!    A second signal exits at once with status 130: every acknowledged write
//!    is already in the page cache (ASYNC) or on disk (SYNC), so only the
//!    final fsync of ASYNC data is skipped, as after a plain process crash.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum_server::Handle;
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinHandle;

use crate::config::{ConfigError, NodeConfig};
use hyper_util::rt::TokioTimer;
use shale_broker::tasks::Background;
use slow_clients::{ClientTimeouts, HeadDeadlineAcceptor};

use crate::state::AppState;

/// Runs a node with `config` (as [`crate::config::load`] returns it) until
/// SIGTERM or SIGINT, then drains. Errors that are the settings' fault are
/// [`ConfigError`]s (the binary exits 2 on those, 1 on the others).
pub async fn run(mut config: NodeConfig) -> anyhow::Result<()> {
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(load_tls(cert, key)?),
        _ => None,
    };
    config.prepare_local_state()?;
    let mut signals = Signals::install().context("installing the SIGTERM/SIGINT handlers")?;
    // SIGHUP reloads the auth file; installed now so that one sent during
    // startup does not end the process.
    let hangups = match &config.auth_file {
        Some(_) => Some(crate::auth::sighup().context("installing the SIGHUP handler")?),
        None => None,
    };
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    if config.advertise_url.is_none() {
        config.advertise_url = Some(default_advertise_url(&listener, tls.is_some())?);
    }
    let sqs_listener = match &config.sqs_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (sqs_listen)"))?,
        ),
        None => None,
    };

    check_store_at_start(&config).await?;

    tracing::info!(
        node_id = config.node_id.as_deref().unwrap_or("?"),
        data_dir = %config.data_dir.display(),
        object_store = %config.object_store,
        "opening storage"
    );
    let opened = Instant::now();
    let open_config = config.clone();
    let state = tokio::task::spawn_blocking(move || AppState::open(&open_config))
        .await
        .context("opening the node's storage panicked")??;
    let adopted = state
        .load_topics_from_store()
        .await
        .context("reading topic metadata from the object store")?;
    tracing::info!(
        elapsed_ms = opened.elapsed().as_millis() as u64,
        topics_from_object_store = adopted,
        "storage open"
    );
    // Join the cluster and take the queues placement gives this node whose
    // owner is gone (all of them for a lone node), before serving.
    state
        .broker
        .cluster
        .join()
        .await
        .context("joining the cluster (writing this node's lease to the object store)")?;
    state.broker.rebalance().await;
    // Pending delay messages, before the first produce can repeat a dedup id.
    state.broker.open_timers().await;
    announce_auth(&state, &config);
    if let (Some(auth), Some(hangups)) = (&state.auth, hangups) {
        crate::auth::reload_on_sighup(auth.clone(), hangups);
    }

    let background = Background::spawn(state.jobs(Duration::from_millis(config.flush_interval_ms)));

    let drain_state = state.clone();
    let shutdown = async move {
        let name = signals.next().await;
        tracing::info!(
            signal = name,
            "draining: no new connections, waiting for in-flight requests"
        );
        drain_state.set_draining();
        tokio::spawn(async move {
            let name = signals.next().await;
            tracing::error!(
                signal = name,
                "second signal: exiting now without the final flush"
            );
            std::process::exit(130);
        });
    };
    let drain_timeout = Duration::from_millis(config.drain_timeout_ms);
    let limits = Limits {
        drain_timeout,
        clients: config.client_timeouts(),
    };
    // The SQS listener serves the same router and stops when the node drains.
    let sqs_served = sqs_listener.map(|listener| {
        let mut draining = state.broker.drain_watch();
        let stopped = async move {
            let _ = draining.wait_for(|d| *d).await;
        };
        tokio::spawn(serve(
            listener,
            crate::app::app(state.clone()),
            tls.clone(),
            limits,
            announce_sqs,
            stopped,
        ))
    });
    let served = serve(
        listener,
        crate::app::app(state.clone()),
        tls,
        limits,
        announce,
        shutdown,
    )
    .await;
    let served = match sqs_served {
        Some(sqs) => match sqs.await {
            Ok(result) => served.and(result.context("the sqs_listen listener")),
            Err(e) => served.and(Err(anyhow::anyhow!(
                "the sqs_listen listener panicked: {e}"
            ))),
        },
        None => served,
    };

    background.stop().await;
    // Hand-over: seal and upload every held queue and release it, so another
    // node (or this one, restarted with an empty disk) serves every
    // acknowledged message; then the lease says LEFT. Data that does not make
    // it in time stays on local disk (flushed below) and is kept by this node
    // if it restarts before another takes the queue.
    if let Err(e) = state.broker.leave_cluster(drain_timeout).await {
        tracing::warn!(error = %format!("{e:#}"), "hand-over incomplete; the rest stays on local disk");
    }
    let flushed = state.shutdown_flush().await.context("final flush");
    match (&served, &flushed) {
        (Ok(()), Ok(())) => tracing::info!("stopped cleanly"),
        _ => tracing::error!("stopped with errors"),
    }
    served.and(flushed)
}

/// Runs `shale doctor`'s checks on a store other nodes may share (`s3://`)
/// and logs them; a failure stops the start unless `skip_store_check`.
async fn check_store_at_start(config: &NodeConfig) -> anyhow::Result<()> {
    let url = config
        .object_store_url()
        .map_err(|why| anyhow::anyhow!("object store: {why}"))?;
    if !crate::doctor::checked_at_start(&url) {
        return Ok(());
    }
    let started = Instant::now();
    let report = crate::doctor::check_url(&url)
        .await
        .context("opening the object store for its start-up check")?;
    for check in &report.checks {
        tracing::info!(check = check.name, result = %check.outcome, detail = %check.detail, "object store check");
    }
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if report.passed() {
        tracing::info!(elapsed_ms, "object store checks passed");
        return Ok(());
    }
    let failed: Vec<&str> = report.failures().map(|c| c.name).collect();
    if config.skip_store_check {
        tracing::warn!(failed = %failed.join(", "), "object store checks failed; starting anyway (skip_store_check)");
        return Ok(());
    }
    anyhow::bail!(
        "the object store {url} failed its start-up check ({}); see `shale doctor --object-store {url}`, or start with --skip-store-check if you know it is safe",
        failed.join(", ")
    )
}

/// Logs whether auth is on, and what a cluster with it would miss.
fn announce_auth(state: &AppState, config: &NodeConfig) {
    let Some(auth) = &state.auth else {
        if !config.listen.starts_with("127.")
            && !config.listen.starts_with("localhost:")
            && !config.listen.starts_with("[::1]")
        {
            tracing::warn!(listen = %config.listen, "auth is off (no --auth-file): anyone who reaches this address may use the whole API");
        }
        return;
    };
    let policy = auth.policy();
    tracing::info!(
        tokens = policy.token_count(),
        metrics_require_auth = policy.metrics_require_auth,
        "auth on: /v1 requests need a token"
    );
    if auth.node_authorization().is_none() {
        tracing::warn!(
            "auth is on without --cluster-secret-file: in a cluster, dead-letter copies to a %DLQ% queue another node serves will be refused (and retried)"
        );
    }
}

/// The URL other nodes reach this one at when none is configured: the bound
/// address, with `127.0.0.1` for a wildcard host (same-machine clusters only).
fn default_advertise_url(listener: &TcpListener, tls: bool) -> anyhow::Result<String> {
    let mut addr = listener.local_addr().context("reading the bound address")?;
    if addr.ip().is_unspecified() {
        tracing::warn!(%addr, "listening on a wildcard address without --advertise-url: other nodes are told 127.0.0.1, which only works on this machine");
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://{addr}"))
}

/// Prints the one line that tells users and scripts the node is ready.
fn announce(url: &str) {
    say_listening("shale listening on", url);
}

fn announce_sqs(url: &str) {
    say_listening("shale sqs listening on", url);
}

fn say_listening(what: &str, url: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout must not stop the node: the line is a courtesy, logs say the same.
    let _ = writeln!(stdout, "{what} {url}").and_then(|()| stdout.flush());
    tracing::info!(%url, "{what}");
}

/// The time bounds of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// On shutdown, how long open requests may take before their
    /// connections are closed.
    pub drain_timeout: Duration,
    /// How long clients may take to send requests ([`slow_clients`]).
    pub clients: ClientTimeouts,
}

/// Serves `router` on `listener` (HTTPS with `tls`) until `shutdown`
/// completes, then stops accepting and waits up to `limits.drain_timeout`
/// for open requests before closing their connections. Clients that send
/// requests too slowly are cut off ([`slow_clients`]). `on_ready` gets the
/// URL (`http://127.0.0.1:PORT`) once connections are being accepted.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<RustlsConfig>,
    limits: Limits,
    on_ready: impl FnOnce(&str),
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let Limits {
        drain_timeout,
        clients,
    } = limits;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let handle: Handle<SocketAddr> = Handle::new();
    let mut server = axum_server::Server::from_listener(listener).handle(handle.clone());
    server
        .http_builder()
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(clients.header);
    let router = router.layer(axum::middleware::from_fn_with_state(
        clients.body,
        slow_clients::bound_body,
    ));
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let mut serving: JoinHandle<std::io::Result<()>> = match tls {
        None => tokio::spawn(
            server
                .acceptor(HeadDeadlineAcceptor::new(NoDelayAcceptor, clients.header))
                .serve(service),
        ),
        Some(tls) => {
            let tls = RustlsAcceptor::new(tls)
                .handshake_timeout(clients.header)
                .acceptor(NoDelayAcceptor);
            tokio::spawn(
                server
                    .acceptor(HeadDeadlineAcceptor::new(tls, clients.header))
                    .serve(service),
            )
        }
    };

    match handle.listening().await {
        Some(addr) => on_ready(&format!("{scheme}://{addr}")),
        None => return Err(server_ended(serving.await)),
    }

    tokio::select! {
        () = shutdown => {}
        ended = &mut serving => return Err(server_ended(ended)),
    }
    let started = Instant::now();
    handle.graceful_shutdown(Some(drain_timeout));
    let open = handle.connection_count();
    let ended = serving.await;
    let left = handle.connection_count();
    if left > 0 {
        tracing::warn!(
            connections = left,
            timeout_ms = drain_timeout.as_millis() as u64,
            "drain timed out; closed the rest"
        );
    }
    tracing::info!(
        connections = open,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "drained"
    );
    match ended {
        Ok(Ok(())) => Ok(()),
        other => Err(server_ended(other)),
    }
}

/// The error for a server task that ended without being asked to.
fn server_ended(ended: Result<std::io::Result<()>, tokio::task::JoinError>) -> anyhow::Error {
    match ended {
        Ok(Ok(())) => anyhow::anyhow!("the HTTP server stopped unexpectedly"),
        Ok(Err(error)) => anyhow::Error::new(error).context("the HTTP server failed"),
        Err(error) => anyhow::Error::new(error).context("the HTTP server panicked"),
    }
}

/// Loads a PEM certificate chain and private key into a rustls server config
/// (ring provider; TLS 1.2 and 1.3; ALPN `h2`, `http/1.1`).
pub fn load_tls(cert: &Path, key: &Path) -> Result<RustlsConfig, ConfigError> {
    let tls_error = |what: String, error: &dyn std::fmt::Display| ConfigError::Local {
        what,
        source: std::io::Error::other(error.to_string()),
    };
    let cert_what = || format!("TLS certificate {}", cert.display());
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error(cert_what(), &e))?;
    if certs.is_empty() {
        return Err(tls_error(
            cert_what(),
            &"no PEM CERTIFICATE block in the file",
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_error(format!("TLS private key {}", key.display()), &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(certs, key_der)
        })
        .map_err(|e| {
            tls_error(
                format!(
                    "TLS certificate {} with key {}",
                    cert.display(),
                    key.display()
                ),
                &e,
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

/// SIGTERM and SIGINT, installed once: while installed, they no longer kill the process.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next signal and names it.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

pub mod slow_clients;

#[cfg(test)]
mod tests;
