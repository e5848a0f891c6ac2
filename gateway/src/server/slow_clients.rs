//! Bounds on how long a client may take to send a request (slowloris and
//! slow-body attacks), so connections that trickle bytes cannot pin the
//! node's sockets and memory for ever.
//!
//! Three bounds, each applied where the bytes are read:
//! - **Protocol detection**: before hyper sees a connection, the server
//!   reads up to 24 bytes to tell HTTP/1 from the HTTP/2 preface, with no
//!   deadline of its own. [`HeadDeadline`] bounds that phase by the header
//!   timeout: a connection that sends nothing is closed.
//! - **HTTP/1 headers**: hyper's `header_read_timeout` (needs its timer):
//!   the head of every request, the first and each later one on a kept-alive
//!   connection, must arrive within the header timeout, else the connection
//!   is closed without an answer (an idle kept-alive connection is closed
//!   after the same time).
//! - **Bodies** (HTTP/1 and HTTP/2): [`bound_body`] gives each request body
//!   a deadline, the body timeout counted from the end of the headers. A read
//!   past it fails; the answer is then 408 `REQUEST_TIMEOUT` whatever the
//!   handler made of the failed read, and the connection is closed. Only
//!   reading the body is bounded: a handler that waits after reading it (a
//!   long poll with `wait_ms`) is not cut, and a body that already arrived is
//!   never refused.
//!
//! The TLS handshake has its own bound (the acceptor's handshake timeout,
//! set to the header timeout too).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::accept::Accept;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::error::{ApiError, Code};

/// How long a client may take to send a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// From the connection's first byte (or the end of the previous request)
    /// to the end of a request's headers.
    pub header: Duration,
    /// From the end of the headers to the end of the body.
    pub body: Duration,
}

impl Default for ClientTimeouts {
    /// The settings' defaults: 10 s for headers, 30 s for bodies.
    fn default() -> Self {
        ClientTimeouts {
            header: Duration::from_secs(10),
            body: Duration::from_secs(30),
        }
    }
}

/// The HTTP/2 connection preface: the server reads until these bytes are
/// seen or one differs (then the connection is HTTP/1).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An acceptor that wraps each connection of `inner` in a [`HeadDeadline`].
#[derive(Debug, Clone)]
pub struct HeadDeadlineAcceptor<A> {
    inner: A,
    timeout: Duration,
}

impl<A> HeadDeadlineAcceptor<A> {
    /// Connections of `inner` must show their protocol within `timeout`.
    pub fn new(inner: A, timeout: Duration) -> Self {
        HeadDeadlineAcceptor { inner, timeout }
    }
}

impl<I, S, A> Accept<I, S> for HeadDeadlineAcceptor<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
{
    type Stream = HeadDeadline<A::Stream>;
    type Service = A::Service;
    type Future =
        Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send + 'static>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepted = self.inner.accept(stream, service);
        let timeout = self.timeout;
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            Ok((HeadDeadline::new(stream, timeout), service))
        })
    }
}

/// A connection whose reads fail with `TimedOut` if its protocol (HTTP/2
/// preface or not) is not known by a deadline; transparent afterwards.
#[derive(Debug)]
pub struct HeadDeadline<S> {
    inner: S,
    /// `None` once the protocol is known.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Bytes read so far that match the HTTP/2 preface.
    preface_seen: usize,
}

impl<S> HeadDeadline<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        HeadDeadline {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            preface_seen: 0,
        }
    }

    /// Follows the bytes read: the protocol is known at the first byte that
    /// leaves the preface, or at its end.
    fn observe(&mut self, read: &[u8]) {
        for &byte in read {
            if H2_PREFACE.get(self.preface_seen) != Some(&byte) {
                self.deadline = None;
                return;
            }
            self.preface_seen += 1;
        }
        if self.preface_seen == H2_PREFACE.len() {
            self.deadline = None;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.deadline.is_some() {
                    this.observe(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if !expired {
                    return Poll::Pending;
                }
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent no request within the header timeout",
                )))
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Middleware: the request body must arrive within `timeout` (from now);
/// a request whose body read ran out of time is answered 408.
pub async fn bound_body(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = Body::new(DeadlineBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep_until(Instant::now() + timeout)),
        expired: expired.clone(),
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    if !expired.load(Ordering::Acquire) {
        return response;
    }
    tracing::debug!(
        timeout_ms = timeout.as_millis() as u64,
        "request body not received in time"
    );
    let mut response = ApiError::new(
        Code::RequestTimeout,
        format!(
            "the request body did not arrive within {} ms",
            timeout.as_millis()
        ),
    )
    .into_response();
    // The rest of the body may still be on its way: do not read it as the next request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that fails with [`BodyTimedOut`] when a read is still
/// waiting for data at the deadline.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

/// The error of a body read past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the body timeout")]
pub struct BodyTimedOut;

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        // Data that arrived is always taken, even late.
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(axum::BoxError::from)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
