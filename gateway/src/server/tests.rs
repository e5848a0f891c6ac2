//! The serving loop on a real port with a stand-in router: readiness URL,
//! drain of in-flight requests, drain timeout, HTTPS, and the periodic task.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::routing::get;
use tokio::sync::oneshot;

use super::*;

/// `/` answers at once, `/slow` after 300 ms, `/hang` after a minute; both
/// say when a request reached them (`arrived`).
fn router(arrived: Arc<tokio::sync::Notify>) -> Router {
    let hung = arrived.clone();
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/slow",
            get(move || async move {
                arrived.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow ok"
            }),
        )
        .route(
            "/hang",
            get(move || async move {
                hung.notify_one();
                tokio::time::sleep(Duration::from_secs(60)).await;
                "never"
            }),
        )
}

struct Running {
    url: String,
    stop: oneshot::Sender<()>,
    done: JoinHandle<anyhow::Result<()>>,
    /// Notified when a request reaches `/slow` or `/hang`.
    arrived: Arc<tokio::sync::Notify>,
}

impl Running {
    /// Waits (at most 10 s) until a request has reached its handler.
    async fn request_arrived(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.arrived.notified())
            .await
            .expect("the request reaches its handler");
    }
}

async fn start(tls: Option<RustlsConfig>, drain_timeout: Duration) -> Running {
    let arrived = Arc::new(tokio::sync::Notify::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let done = tokio::spawn(serve(
        listener,
        router(arrived.clone()),
        tls,
        Limits {
            drain_timeout,
            clients: ClientTimeouts::default(),
        },
        move |url| ready_tx.send(url.to_string()).unwrap(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let url = tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .unwrap()
        .unwrap();
    Running {
        url,
        stop,
        done,
        arrived,
    }
}

#[tokio::test]
async fn ready_url_is_the_bound_address() {
    let node = start(None, Duration::from_secs(5)).await;
    assert!(node.url.starts_with("http://127.0.0.1:"), "{}", node.url);
    assert!(
        !node.url.ends_with(":0"),
        "the actual port, not 0: {}",
        node.url
    );
    let body = reqwest::get(format!("{}/", node.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");
    node.stop.send(()).unwrap();
    node.done.await.unwrap().unwrap();
}

#[tokio::test]
async fn in_flight_requests_finish_and_new_ones_are_refused() {
    let node = start(None, Duration::from_secs(10)).await;
    let slow = tokio::spawn(reqwest::get(format!("{}/slow", node.url)));
    // Drain only once the request is in its handler.
    node.request_arrived().await;
    node.stop.send(()).unwrap();
    let answer = slow
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(answer.text().await.unwrap(), "slow ok");
    node.done.await.unwrap().unwrap();
    let refused = reqwest::get(format!("{}/", node.url)).await;
    assert!(refused.is_err(), "no new connections after the drain");
}

#[tokio::test]
async fn drain_is_bounded_by_the_timeout() {
    let node = start(None, Duration::from_millis(200)).await;
    let hang = tokio::spawn(reqwest::get(format!("{}/hang", node.url)));
    node.request_arrived().await;
    let started = Instant::now();
    node.stop.send(()).unwrap();
    node.done.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        hang.await.unwrap().is_err(),
        "the hanging request was cut, not answered"
    );
}

/// A self-signed certificate for `localhost`, written as PEM files in `dir`.
fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = certified.cert.pem();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key, cert_pem)
}

#[tokio::test]
async fn serves_https_with_a_pem_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, cert_pem) = self_signed(dir.path());
    let node = start(Some(load_tls(&cert, &key).unwrap()), Duration::from_secs(5)).await;
    assert!(node.url.starts_with("https://127.0.0.1:"), "{}", node.url);
    let addr: SocketAddr = node.url.trim_start_matches("https://").parse().unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/", addr.port());
    assert_eq!(
        client.get(&url).send().await.unwrap().text().await.unwrap(),
        "ok"
    );
    // Plain HTTP to the HTTPS port gets no answer.
    assert!(reqwest::get(format!("http://{addr}/")).await.is_err());
    node.stop.send(()).unwrap();
    node.done.await.unwrap().unwrap();
}

#[test]
fn bad_tls_files_are_settings_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = self_signed(dir.path());
    let other = tempfile::tempdir().unwrap();
    let (_, other_key, _) = self_signed(other.path());
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.path().join("missing.pem");

    let error = |cert: &Path, key: &Path| {
        let Err(error) = load_tls(cert, key) else {
            panic!("should fail")
        };
        format!("{:#}", anyhow::Error::new(error))
    };
    assert!(
        error(&missing, &key).starts_with("TLS certificate "),
        "{}",
        error(&missing, &key)
    );
    assert!(
        error(&empty, &key).contains("no PEM CERTIFICATE"),
        "{}",
        error(&empty, &key)
    );
    assert!(
        error(&cert, &missing).starts_with("TLS private key "),
        "{}",
        error(&cert, &missing)
    );
    assert!(
        error(&cert, &cert).starts_with("TLS private key "),
        "a certificate is not a key: {}",
        error(&cert, &cert)
    );
    assert!(
        error(&cert, &other_key).contains("with key"),
        "mismatched key: {}",
        error(&cert, &other_key)
    );
}

#[tokio::test]
async fn periodic_ticks_until_stopped_and_survives_a_panicking_tick() {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let job = shale_broker::tasks::Job::new("test", Duration::from_millis(5), move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 1 {
                panic!("tick {n} fails on purpose");
            }
        }
    });
    let periodic = shale_broker::tasks::Background::spawn(vec![job]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while count.load(Ordering::SeqCst) < 4 {
        assert!(Instant::now() < deadline, "ticks stopped after a panic");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    periodic.stop().await;
    let after_stop = count.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        after_stop,
        "no tick after stop"
    );
}
