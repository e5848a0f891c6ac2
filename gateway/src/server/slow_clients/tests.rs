//! Slow clients on a real port: raw TCP clients that stall in the headers or
//! the body are cut off within the bounds while other clients are served,
//! and a handler that waits after reading its body is not cut.

use std::time::Instant;

use axum::Router;
use axum::routing::post;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;
use crate::server::{Limits, serve};

const TIMEOUTS: ClientTimeouts = ClientTimeouts {
    header: Duration::from_millis(400),
    body: Duration::from_millis(600),
};

/// `POST /echo` answers the body's length; `POST /wait` reads its body,
/// then waits longer than the body timeout (as a long poll does).
fn router() -> Router {
    Router::new()
        .route(
            "/echo",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .route(
            "/wait",
            post(|body: Bytes| async move {
                tokio::time::sleep(TIMEOUTS.body * 2).await;
                format!("waited {}", body.len())
            }),
        )
}

struct Running {
    addr: String,
    stop: oneshot::Sender<()>,
    done: JoinHandle<anyhow::Result<()>>,
}

async fn start() -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let limits = Limits {
        drain_timeout: Duration::from_secs(5),
        clients: TIMEOUTS,
    };
    let done = tokio::spawn(serve(
        listener,
        router(),
        None,
        limits,
        |_| {},
        async move {
            let _ = stop_rx.await;
        },
    ));
    Running { addr, stop, done }
}

/// Reads until the server closes the connection (at most 10 s); returns
/// what it sent and when it closed.
async fn read_until_closed(stream: &mut TcpStream) -> (String, Instant) {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection");
    // A reset instead of a clean close is a close too.
    let _ = read;
    (
        String::from_utf8_lossy(&answer).into_owned(),
        Instant::now(),
    )
}

async fn echo(addr: &str, body: &str) -> String {
    let client = reqwest::Client::new();
    client
        .post(format!("http://{addr}/echo"))
        .body(body.to_string())
        .send()
        .await
        .expect("served")
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_client_stalling_in_the_headers_is_closed_and_others_are_served() {
    let node = start().await;
    let started = Instant::now();
    let mut stalled = TcpStream::connect(&node.addr).await.unwrap();
    stalled
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Le")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(&node.addr).await.unwrap();
    // Served while the two stall.
    assert_eq!(echo(&node.addr, "hello").await, "5");

    let (answer, closed) = read_until_closed(&mut stalled).await;
    assert!(
        !answer.contains("200 OK"),
        "no answer to a half request: {answer}"
    );
    let took = closed - started;
    assert!(
        took >= TIMEOUTS.header && took < TIMEOUTS.header * 4,
        "closed after {took:?}, bound {:?}",
        TIMEOUTS.header
    );
    let (answer, closed) = read_until_closed(&mut silent).await;
    assert_eq!(answer, "", "a connection that sends nothing gets nothing");
    assert!(closed - started < TIMEOUTS.header * 4);

    assert_eq!(echo(&node.addr, "again").await, "5");
    node.stop.send(()).unwrap();
    node.done.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_client_stalling_in_the_body_gets_408() {
    let node = start().await;
    let mut stalled = TcpStream::connect(&node.addr).await.unwrap();
    stalled
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(echo(&node.addr, "hello").await, "5");

    let (answer, closed) = read_until_closed(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"REQUEST_TIMEOUT""#), "{answer}");
    let took = closed - started;
    assert!(
        took < TIMEOUTS.body * 3,
        "answered after {took:?}, bound {:?}",
        TIMEOUTS.body
    );
    assert_eq!(echo(&node.addr, "again").await, "5");
    node.stop.send(()).unwrap();
    node.done.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_slow_body_that_arrives_in_time_is_served() {
    let node = start().await;
    let mut stream = TcpStream::connect(&node.addr).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n01234")
        .await
        .unwrap();
    tokio::time::sleep(TIMEOUTS.body / 3).await;
    stream.write_all(b"56789").await.unwrap();
    let (answer, _) = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("10"), "{answer}");
    node.stop.send(()).unwrap();
    node.done.await.unwrap().unwrap();
}

#[tokio::test]
async fn waiting_after_the_body_is_not_a_slow_body() {
    let node = start().await;
    let answer = reqwest::Client::new()
        .post(format!("http://{}/wait", node.addr))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "waited 3");
    node.stop.send(()).unwrap();
    node.done.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_protocol_is_known_at_the_first_byte_off_the_http2_preface() {
    let mut probe = HeadDeadline::new(tokio::io::empty(), Duration::from_secs(1));
    probe.observe(b"PRI * HTTP/2.0\r\n");
    assert!(probe.deadline.is_some(), "still the preface so far");
    probe.observe(b"\r\nSM\r\n\r\n");
    assert!(probe.deadline.is_none(), "the whole preface: HTTP/2");
    let mut probe = HeadDeadline::new(tokio::io::empty(), Duration::from_secs(1));
    probe.observe(b"PO");
    assert!(probe.deadline.is_none(), "HTTP/1");
}
