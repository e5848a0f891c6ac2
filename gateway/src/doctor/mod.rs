//! `shale doctor`: does an object store keep the promises Shale's fencing
//! rests on?
//!
//! Queue manifests, leases, write-ahead chunks and timer runs are all written
//! create-only (`PutMode::Create`, S3 `If-None-Match: *`): of two racing
//! writers exactly one must win. A store that accepts the second create
//! anyway (some S3-compatible servers ignore the header) lets a stale owner
//! overwrite its successor's work without either noticing. [`check_store`]
//! finds that out with a few requests under a scratch prefix
//! (`{prefix}/doctor/{random}/`), which it deletes afterwards:
//!
//! | check | passes when |
//! | --- | --- |
//! | `create` | a create-only put of a new key succeeds |
//! | `read-after-write` | a GET right after the put returns its body |
//! | `create-conflict` | a second create-only put of that key is refused (`AlreadyExists`) and the object keeps the first body |
//! | `cas-update` | a put conditioned on the object's version (ETag) succeeds and is read back |
//! | `cas-stale` | a put conditioned on the previous version is refused (`Precondition`) |
//! | `list` | a listing of the scratch prefix shows the object |
//! | `ranged-get` | a GET of a byte range returns those bytes |
//! | `delete` | a delete succeeds and the object is gone (HEAD is NotFound) |
//!
//! `cas-update` and `cas-stale` are skipped where the store has no
//! conditional update at all (the local file system): Shale does not use it.
//! Everything else failing is a failure: the node refuses to start on a
//! shared store that fails (see `crate::server::run`), and `shale doctor`
//! exits 1.
//!
//! [`bucket`] creates a bucket for Shale (`shale doctor --create-bucket`).

pub mod bucket;

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, PutResult, UpdateVersion};
use shale_tiering::ObjectStoreUrl;

/// How long one store request of the checks may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    /// Not applicable to this store (and not needed by Shale).
    Skip,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "ok",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skipped",
        })
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    pub detail: String,
}

/// Every check run against one store, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// No check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome != Outcome::Fail)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Fail)
    }

    fn record(&mut self, name: &'static str, outcome: Outcome, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            outcome,
            detail: detail.into(),
        });
    }

    fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.record(name, Outcome::Pass, detail);
    }

    fn fail(&mut self, name: &'static str, detail: impl Into<String>) {
        self.record(name, Outcome::Fail, detail);
    }
}

impl fmt::Display for Report {
    /// A table: check, result, detail.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0)
            .max("check".len());
        writeln!(f, "{:<width$}  {:<7}  detail", "check", "result")?;
        for check in &self.checks {
            writeln!(
                f,
                "{:<width$}  {:<7}  {}",
                check.name,
                check.outcome.to_string(),
                check.detail
            )?;
        }
        Ok(())
    }
}

/// Runs one store request with [`REQUEST_TIMEOUT`].
async fn timed<T>(
    request: impl Future<Output = object_store::Result<T>>,
) -> object_store::Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result,
        Err(_) => Err(object_store::Error::Generic {
            store: "doctor",
            source: format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()).into(),
        }),
    }
}

fn create() -> PutOptions {
    PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    }
}

fn update(written: &PutResult) -> PutOptions {
    PutOptions {
        mode: PutMode::Update(UpdateVersion {
            e_tag: written.e_tag.clone(),
            version: written.version.clone(),
        }),
        ..PutOptions::default()
    }
}

/// A refused conditional write: S3 answers 412 (`AlreadyExists` for a
/// create, `Precondition` for an update) or 409 on a concurrent one.
fn is_conflict(error: &object_store::Error) -> bool {
    matches!(
        error,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }
    )
}

/// What a store error says, on one line.
fn describe(error: &object_store::Error) -> String {
    shale_broker::error_chain(error).replace('\n', " ")
}

/// Runs every check against `store` under `{prefix}/doctor/{random}/` and
/// deletes what it wrote.
pub async fn check_store(store: &dyn ObjectStore, prefix: &Path) -> Report {
    let scratch = prefix
        .child("doctor")
        .child(format!("{:016x}", rand::random::<u64>()));
    let mut report = Report::default();
    run_checks(store, &scratch, &mut report).await;
    clean_up(store, &scratch, &mut report).await;
    report
}

async fn run_checks(store: &dyn ObjectStore, scratch: &Path, report: &mut Report) {
    let key = scratch.child("object");
    let first = Bytes::from_static(b"shale doctor: first version");
    let written = match timed(store.put_opts(&key, PutPayload::from(first.clone()), create())).await
    {
        Ok(written) => {
            report.pass("create", format!("create-only put of {key}"));
            written
        }
        Err(error) => {
            report.fail(
                "create",
                format!("create-only put of {key}: {}", describe(&error)),
            );
            return;
        }
    };
    match timed(async { store.get(&key).await?.bytes().await }).await {
        Ok(body) if body == first => {
            report.pass("read-after-write", "GET returned the body just written")
        }
        Ok(body) => report.fail(
            "read-after-write",
            format!(
                "GET returned {} bytes, not the {} just written",
                body.len(),
                first.len()
            ),
        ),
        Err(error) => report.fail("read-after-write", format!("GET: {}", describe(&error))),
    }
    let (written, body) = check_create_conflict(store, &key, written, first, report).await;
    let body = check_compare_and_swap(store, &key, &written, body, report).await;
    check_list(store, scratch, &key, report).await;
    check_ranged_get(store, &key, &body, report).await;
    check_delete(store, &key, report).await;
}

/// `create-conflict`; returns the object's version and body afterwards (the
/// second body where the store let the second create overwrite the first,
/// so the later checks test what they are about, not this failure again).
async fn check_create_conflict(
    store: &dyn ObjectStore,
    key: &Path,
    written: PutResult,
    first: Bytes,
    report: &mut Report,
) -> (PutResult, Bytes) {
    let second = Bytes::from_static(b"shale doctor: a second create of the same key");
    match timed(store.put_opts(key, PutPayload::from(second.clone()), create())).await {
        Ok(overwritten) => {
            report.fail(
                "create-conflict",
                "a second create-only put of the same key succeeded: this store ignores \
                 If-None-Match, so two owners of a queue could both write (fencing would \
                 silently break)",
            );
            return (overwritten, second);
        }
        Err(error) if !is_conflict(&error) => {
            report.fail(
                "create-conflict",
                format!(
                    "the second create failed with an unexpected error: {}",
                    describe(&error)
                ),
            );
            return (written, first);
        }
        Err(_) => {}
    }
    match timed(async { store.get(key).await?.bytes().await }).await {
        Ok(body) if body == first => {
            report.pass("create-conflict", "a second create of the key was refused");
        }
        Ok(_) => report.fail(
            "create-conflict",
            "the second create was refused but the object changed",
        ),
        Err(error) => report.fail(
            "create-conflict",
            format!("GET after the refused create: {}", describe(&error)),
        ),
    }
    (written, first)
}

/// `cas-update` and `cas-stale`; returns the object's body afterwards.
async fn check_compare_and_swap(
    store: &dyn ObjectStore,
    key: &Path,
    written: &PutResult,
    first: Bytes,
    report: &mut Report,
) -> Bytes {
    let second = Bytes::from_static(b"shale doctor: second version, after a compare-and-swap");
    match timed(store.put_opts(key, PutPayload::from(second.clone()), update(written))).await {
        Ok(_) => {}
        Err(object_store::Error::NotImplemented) => {
            let why = "this store has no conditional update (Shale does not need it)";
            report.record("cas-update", Outcome::Skip, why);
            report.record("cas-stale", Outcome::Skip, why);
            return first;
        }
        Err(error) => {
            report.fail(
                "cas-update",
                format!(
                    "put conditioned on the current version: {}",
                    describe(&error)
                ),
            );
            return first;
        }
    }
    match timed(async { store.get(key).await?.bytes().await }).await {
        Ok(body) if body == second => report.pass(
            "cas-update",
            "put conditioned on the current version (ETag) succeeded",
        ),
        Ok(_) => report.fail(
            "cas-update",
            "the conditional put succeeded but GET returned other bytes",
        ),
        Err(error) => report.fail(
            "cas-update",
            format!("GET after the update: {}", describe(&error)),
        ),
    }
    let stale = PutPayload::from_static(b"stale update");
    match timed(store.put_opts(key, stale, update(written))).await {
        Err(error) if is_conflict(&error) => {
            report.pass(
                "cas-stale",
                "put conditioned on a replaced version was refused",
            );
        }
        Ok(_) => report.fail(
            "cas-stale",
            "a put conditioned on a replaced version succeeded: this store ignores If-Match",
        ),
        Err(error) => report.fail(
            "cas-stale",
            format!(
                "the stale update failed with an unexpected error: {}",
                describe(&error)
            ),
        ),
    }
    second
}

async fn check_list(store: &dyn ObjectStore, scratch: &Path, key: &Path, report: &mut Report) {
    match timed(store.list(Some(scratch)).try_collect::<Vec<_>>()).await {
        Ok(listed) if listed.iter().any(|meta| &meta.location == key) => {
            report.pass(
                "list",
                format!("{} object(s) under {scratch}/", listed.len()),
            );
        }
        Ok(listed) => report.fail(
            "list",
            format!(
                "the object is missing from a listing of {scratch}/ ({} other object(s))",
                listed.len()
            ),
        ),
        Err(error) => report.fail("list", format!("listing {scratch}/: {}", describe(&error))),
    }
}

async fn check_ranged_get(store: &dyn ObjectStore, key: &Path, body: &Bytes, report: &mut Report) {
    let range = 6u64..12;
    let expected = body.slice(6..12);
    match timed(store.get_range(key, range.clone())).await {
        Ok(bytes) if bytes == expected => {
            report.pass(
                "ranged-get",
                format!("bytes {}..{} as written", range.start, range.end),
            );
        }
        Ok(bytes) => report.fail(
            "ranged-get",
            format!(
                "bytes {}..{}: got {:?}, wrote {:?}",
                range.start, range.end, bytes, expected
            ),
        ),
        Err(error) => report.fail(
            "ranged-get",
            format!("GET with a range: {}", describe(&error)),
        ),
    }
}

async fn check_delete(store: &dyn ObjectStore, key: &Path, report: &mut Report) {
    if let Err(error) = timed(store.delete(key)).await {
        report.fail("delete", format!("DELETE: {}", describe(&error)));
        return;
    }
    match timed(store.head(key)).await {
        Err(object_store::Error::NotFound { .. }) => {
            report.pass("delete", "deleted, and HEAD says not found");
        }
        Ok(_) => report.fail("delete", "DELETE succeeded but the object is still there"),
        Err(error) => report.fail("delete", format!("HEAD after DELETE: {}", describe(&error))),
    }
}

/// Deletes whatever the checks left (a failed run may leave its object).
async fn clean_up(store: &dyn ObjectStore, scratch: &Path, report: &mut Report) {
    let left = match timed(store.list(Some(scratch)).try_collect::<Vec<_>>()).await {
        Ok(left) => left,
        Err(error) => {
            report.fail(
                "clean-up",
                format!("listing {scratch}/: {}", describe(&error)),
            );
            return;
        }
    };
    for meta in &left {
        match timed(store.delete(&meta.location)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => {
                report.fail(
                    "clean-up",
                    format!("deleting {}: {}", meta.location, describe(&error)),
                );
                return;
            }
        }
    }
}

/// Whether the node checks this store at start: stores other nodes can
/// share (`s3://`); a local directory or memory is this node's alone.
pub fn checked_at_start(url: &ObjectStoreUrl) -> bool {
    matches!(url, ObjectStoreUrl::S3 { .. })
}

/// Opens the store `url` names as the node does and checks it.
pub async fn check_url(url: &ObjectStoreUrl) -> anyhow::Result<Report> {
    let (store, prefix) = shale_tiering::open_object_store(url)?;
    Ok(check_store(store.as_ref(), &prefix).await)
}

/// Arguments of `shale doctor`.
#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// The store to check: s3://bucket/prefix, file:///abs/path or memory:// (AWS_* variables as for serve)
    #[arg(long, value_name = "URL", env = "SHALE_OBJECT_STORE")]
    pub object_store: String,
    /// Create the bucket of an s3:// URL first (with a rule aborting incomplete multipart uploads after a day); an existing bucket of yours is kept as it is
    #[arg(long)]
    pub create_bucket: bool,
}

/// Why `shale doctor` did not pass.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// The URL or the flags are wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The store could not be opened or a check failed (exit 1).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// `shale doctor`: prints the report table to stdout.
pub async fn run(args: &DoctorArgs) -> Result<(), DoctorError> {
    let url = ObjectStoreUrl::parse(&args.object_store)
        .map_err(|why| DoctorError::Usage(format!("invalid --object-store: {why}")))?;
    if args.create_bucket {
        let ObjectStoreUrl::S3 { bucket, .. } = &url else {
            return Err(DoctorError::Usage(
                "--create-bucket needs an s3:// URL".into(),
            ));
        };
        let created = bucket::create(bucket).await?;
        println!("{created}");
    }
    let report = check_url(&url).await?;
    print!("{report}");
    if !report.passed() {
        let failed: Vec<&str> = report.failures().map(|c| c.name).collect();
        return Err(DoctorError::Failed(anyhow::anyhow!(
            "{url} failed {}: Shale cannot rely on it",
            failed.join(", ")
        )));
    }
    println!("{url}: every check passed");
    Ok(())
}

#[cfg(test)]
mod tests;
