//! [`FaultStore`]: an `ObjectStore` wrapper that injects the failures the
//! tiering layer must survive — errors, an outage, latency, a failed copy
//! (a crash between a segment's commit and its publication), and the
//! nastiest one: a put that lands but reports failure — and counts calls, so tests can
//! assert how many object reads an operation needed, and how many ran at once
//! ([`Faults::max_in_flight`], to show that work overlaps without measuring
//! time). (`get_ranges` is left to the trait's default, which coalesces and
//! calls `get_range`, so each real request is counted once; a `list` stream is
//! in flight only until its first page is asked for.)

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    Error, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use parking_lot::Mutex;

/// Calls seen by a [`FaultStore`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub puts: u64,
    pub gets: u64,
    pub heads: u64,
    pub deletes: u64,
    pub lists: u64,
}

#[derive(Debug, Default)]
struct State {
    fail_next: u32,
    lose_next_put_acks: u32,
    fail_next_copies: u32,
    down: bool,
    latency: Duration,
    counts: OpCounts,
    in_flight: u64,
    max_in_flight: u64,
}

/// The control panel shared by a test and its [`FaultStore`].
#[derive(Debug, Default, Clone)]
pub struct Faults {
    state: Arc<Mutex<State>>,
}

impl Faults {
    /// The next `n` calls fail with a transient error and do nothing.
    pub fn fail_next(&self, n: u32) {
        self.state.lock().fail_next = n;
    }

    /// The next `n` puts are stored but answer with a transient error.
    pub fn lose_next_put_acks(&self, n: u32) {
        self.state.lock().lose_next_put_acks = n;
    }

    /// The next `n` copies fail with a transient error and copy nothing
    /// (other calls go through).
    pub fn fail_next_copies(&self, n: u32) {
        self.state.lock().fail_next_copies = n;
    }

    /// While down, every call fails with a transient error.
    pub fn set_down(&self, down: bool) {
        self.state.lock().down = down;
    }

    /// Added to every call.
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().latency = latency;
    }

    pub fn counts(&self) -> OpCounts {
        self.state.lock().counts
    }

    /// The most calls that were running at the same time since the last reset
    /// (with latency set, concurrent callers show as more than one).
    pub fn max_in_flight(&self) -> u64 {
        self.state.lock().max_in_flight
    }

    /// Resets the call counts and [`Self::max_in_flight`].
    pub fn reset_counts(&self) {
        let mut s = self.state.lock();
        s.counts = OpCounts::default();
        s.max_in_flight = s.in_flight;
    }

    /// Decides the fate of one call: `Err` to fail it before it runs. The
    /// call counts as in flight until the returned guard is dropped.
    async fn before(&self, count: impl FnOnce(&mut OpCounts)) -> Result<InFlight> {
        let (latency, fail) = {
            let mut s = self.state.lock();
            count(&mut s.counts);
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
            let fail = s.down || s.fail_next > 0;
            s.fail_next = s.fail_next.saturating_sub(1);
            (s.latency, fail)
        };
        let guard = InFlight {
            state: self.state.clone(),
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if fail {
            return Err(injected("injected failure"));
        }
        Ok(guard)
    }

    fn take_failed_copy(&self) -> bool {
        let mut s = self.state.lock();
        let fail = s.fail_next_copies > 0;
        s.fail_next_copies = s.fail_next_copies.saturating_sub(1);
        fail
    }

    fn take_lost_ack(&self) -> bool {
        let mut s = self.state.lock();
        let lose = s.lose_next_put_acks > 0;
        s.lose_next_put_acks = s.lose_next_put_acks.saturating_sub(1);
        lose
    }
}

/// One call in flight; dropping it (the call returned or was cancelled) ends it.
#[derive(Debug)]
struct InFlight {
    state: Arc<Mutex<State>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.state.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
    }
}

fn injected(what: &'static str) -> Error {
    Error::Generic {
        store: "FaultStore",
        source: what.into(),
    }
}

/// Injects the faults of a [`Faults`] into the wrapped store.
#[derive(Debug, Clone)]
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    faults: Faults,
}

impl FaultStore {
    pub fn new(inner: Arc<dyn ObjectStore>, faults: Faults) -> Self {
        Self { inner, faults }
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faults({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let _call = self.faults.before(|c| c.puts += 1).await?;
        let res = self.inner.put_opts(location, payload, opts).await?;
        if self.faults.take_lost_ack() {
            return Err(injected("put stored but its answer was lost"));
        }
        Ok(res)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let _call = self.faults.before(|c| c.puts += 1).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let _call = self.faults.before(|c| c.gets += 1).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_range(&self, location: &Path, range: Range<u64>) -> Result<Bytes> {
        let _call = self.faults.before(|c| c.gets += 1).await?;
        self.inner.get_range(location, range).await
    }

    async fn head(&self, location: &Path) -> Result<ObjectMeta> {
        let _call = self.faults.before(|c| c.heads += 1).await?;
        self.inner.head(location).await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        let _call = self.faults.before(|c| c.deletes += 1).await?;
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let faults = self.faults.clone();
        let inner = self.inner.list(prefix);
        futures::stream::once(async move {
            match faults.before(|c| c.lists += 1).await {
                Ok(_call) => inner,
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let _call = self.faults.before(|c| c.lists += 1).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        let _call = self.faults.before(|c| c.puts += 1).await?;
        if self.faults.take_failed_copy() {
            return Err(injected("injected copy failure"));
        }
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        let _call = self.faults.before(|c| c.puts += 1).await?;
        if self.faults.take_failed_copy() {
            return Err(injected("injected copy failure"));
        }
        self.inner.copy_if_not_exists(from, to).await
    }
}
