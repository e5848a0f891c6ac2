//! The retry rules of the crate docs against a scripted HTTP server on a
//! local port: which answers are sent again, how often, and that
//! `Retry-After` is honoured. The server answers each connection's requests
//! from a shared script and counts them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shale_client::{ClientBuilder, ProduceMessage, ProduceRequest, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `script[i]` (status, retry-after, body) to the i-th request, the
/// last entry to every later one; returns the base URL and the request count.
async fn scripted(script: Vec<(u16, Option<u32>, &'static str)>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let script = script.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request: headers then Content-Length bytes of body.
                    let Some(end) = find(&buffer, b"\r\n\r\n") else {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buffer.len() < end + 4 + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buffer.drain(..end + 4 + length);
                    let i = counter.fetch_add(1, Ordering::SeqCst);
                    let (status, retry_after, body) = script[i.min(script.len() - 1)];
                    let retry = retry_after
                        .map(|s| format!("retry-after: {s}\r\n"))
                        .unwrap_or_default();
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{retry}content-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (base, count)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

const UNAVAILABLE: &str = r#"{"error":{"code":"UNAVAILABLE","message":"queue moving"}}"#;
const THROTTLED: &str = r#"{"error":{"code":"THROTTLED","message":"slow down"}}"#;
const TOPICS: &str = r#"{"topics":[]}"#;
const PRODUCED: &str = r#"{"results":[{"message_id":"a","queue":0,"offset":0}]}"#;

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        max_elapsed: Duration::from_secs(20),
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    }
}

#[tokio::test]
async fn reads_are_retried_after_503_until_they_succeed() {
    let (base, count) = scripted(vec![
        (503, None, UNAVAILABLE),
        (503, None, UNAVAILABLE),
        (200, None, TOPICS),
    ])
    .await;
    let client = ClientBuilder::new(base)
        .retry(fast())
        .build()
        .expect("client");
    let topics = client.list_topics().await.expect("third attempt succeeds");
    assert!(topics.is_empty());
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn attempts_are_bounded_and_the_last_error_is_returned() {
    let (base, count) = scripted(vec![(503, None, UNAVAILABLE)]).await;
    let client = ClientBuilder::new(base)
        .retry(fast())
        .build()
        .expect("client");
    let error = client.list_topics().await.expect_err("always 503");
    assert_eq!(error.code(), Some("UNAVAILABLE"));
    assert_eq!(error.status(), Some(503));
    assert_eq!(count.load(Ordering::SeqCst), 4, "max_attempts");
}

#[tokio::test]
async fn a_produce_without_dedup_ids_is_not_retried_after_503() {
    let (base, count) = scripted(vec![(503, None, UNAVAILABLE), (200, None, PRODUCED)]).await;
    let client = ClientBuilder::new(base)
        .retry(fast())
        .build()
        .expect("client");
    let batch = ProduceRequest::new(vec![ProduceMessage::text("x")]);
    let error = client.produce("t", &batch).await.expect_err("503 returned");
    assert!(error.is_code("UNAVAILABLE"));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_produce_with_dedup_ids_is_retried_after_503() {
    let (base, count) = scripted(vec![(503, None, UNAVAILABLE), (200, None, PRODUCED)]).await;
    let client = ClientBuilder::new(base)
        .retry(fast())
        .build()
        .expect("client");
    let batch = ProduceRequest::new(vec![ProduceMessage::text("x").with_dedup_id("d1")]);
    let results = client.produce("t", &batch).await.expect("retried");
    assert_eq!(results[0].offset, Some(0));
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn any_produce_is_retried_after_429_honouring_retry_after() {
    let (base, count) = scripted(vec![(429, Some(1), THROTTLED), (200, None, PRODUCED)]).await;
    let client = ClientBuilder::new(base)
        .retry(fast())
        .build()
        .expect("client");
    let started = Instant::now();
    let batch = ProduceRequest::new(vec![ProduceMessage::text("x")]);
    client
        .produce("t", &batch)
        .await
        .expect("retried after 429");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 waited"
    );
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_max_elapsed_gives_up_at_once() {
    let (base, count) = scripted(vec![(503, Some(60), UNAVAILABLE), (200, None, TOPICS)]).await;
    let client = ClientBuilder::new(base)
        .retry(fast())
        .build()
        .expect("client");
    let started = Instant::now();
    let error = client.list_topics().await.expect_err("gave up");
    assert!(error.is_code("UNAVAILABLE"));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let body = r#"{"error":{"code":"TOPIC_NOT_FOUND","message":"no topic t"}}"#;
    let (base, count) = scripted(vec![(404, None, body)]).await;
    let client = ClientBuilder::new(format!("{base}/"))
        .retry(fast())
        .build()
        .expect("client");
    let error = client.get_topic("t").await.expect_err("404");
    assert_eq!(error.to_string(), "TOPIC_NOT_FOUND: no topic t");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported() {
    // A port that was free a moment ago: nothing listens on it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let client = ClientBuilder::new(format!("http://127.0.0.1:{port}"))
        .retry(fast())
        .build()
        .expect("client");
    let batch = ProduceRequest::new(vec![ProduceMessage::text("x")]);
    let error = client.produce("t", &batch).await.expect_err("refused");
    assert!(
        matches!(error, shale_client::Error::Transport { .. }),
        "{error:?}"
    );
}
