//! The checks against the stores Shale runs on (memory, the local file
//! system, S3 through moto when scripts/test.sh started it), and against a
//! store that ignores create-only writes, which must fail.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, PutMultipartOptions,
};

use super::*;

fn outcomes(report: &Report) -> Vec<(&'static str, Outcome)> {
    report.checks.iter().map(|c| (c.name, c.outcome)).collect()
}

const ALL_PASS: [(&str, Outcome); 8] = [
    ("create", Outcome::Pass),
    ("read-after-write", Outcome::Pass),
    ("create-conflict", Outcome::Pass),
    ("cas-update", Outcome::Pass),
    ("cas-stale", Outcome::Pass),
    ("list", Outcome::Pass),
    ("ranged-get", Outcome::Pass),
    ("delete", Outcome::Pass),
];

#[tokio::test]
async fn the_in_memory_store_passes_every_check() {
    let store = InMemory::new();
    let report = check_store(&store, &Path::from("p")).await;
    assert_eq!(outcomes(&report), ALL_PASS, "{report}");
    assert!(report.passed());
    let left: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert!(left.is_empty(), "scratch objects left: {left:?}");
}

#[tokio::test]
async fn the_local_file_system_passes_and_skips_the_conditional_update() {
    let dir = tempfile::tempdir().unwrap();
    let url = ObjectStoreUrl::parse(&format!("file://{}", dir.path().display())).unwrap();
    let report = check_url(&url).await.unwrap();
    assert!(report.passed(), "{report}");
    let skipped: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Skip)
        .map(|c| c.name)
        .collect();
    assert_eq!(skipped, ["cas-update", "cas-stale"], "{report}");
    let files: Vec<_> = walk(dir.path());
    assert!(files.is_empty(), "scratch files left: {files:?}");
    let table = report.to_string();
    assert!(table.starts_with("check"), "{table}");
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("create-conflict ") && line.contains(" ok ")),
        "{table}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A store that turns every create-only put into an overwrite, as some
/// S3-compatible servers do with `If-None-Match`.
#[derive(Debug)]
struct IgnoresCreate(Arc<dyn ObjectStore>);

impl fmt::Display for IgnoresCreate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IgnoresCreate({})", self.0)
    }
}

#[async_trait]
impl ObjectStore for IgnoresCreate {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if opts.mode == PutMode::Create {
            opts.mode = PutMode::Overwrite;
        }
        self.0.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.0.get_opts(location, options).await
    }

    async fn get_range(&self, location: &Path, range: Range<u64>) -> object_store::Result<Bytes> {
        self.0.get_range(location, range).await
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.0.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.0.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.0.copy_if_not_exists(from, to).await
    }
}

#[tokio::test]
async fn a_store_that_ignores_create_only_writes_fails() {
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = IgnoresCreate(inner.clone());
    let report = check_store(&store, &Path::default()).await;
    assert!(!report.passed(), "{report}");
    let failed: Vec<_> = report.failures().map(|c| c.name).collect();
    assert_eq!(failed, ["create-conflict"], "{report}");
    let detail = &report.checks[2].detail;
    assert!(detail.contains("fencing"), "{detail}");
    let left: Vec<_> = inner.list(None).try_collect().await.unwrap();
    assert!(left.is_empty(), "cleaned up even after a failure: {left:?}");
}

/// The moto bucket of scripts/test.sh, or `None` (skip) without one.
fn moto_bucket() -> Option<String> {
    match std::env::var("SHALE_TEST_S3_BUCKET") {
        Ok(bucket) => Some(bucket),
        Err(_) => {
            assert!(
                std::env::var("SHALE_REQUIRE_S3").is_err(),
                "SHALE_REQUIRE_S3 is set but SHALE_TEST_S3_BUCKET is not"
            );
            eprintln!("SKIPPED: no S3 server (run scripts/test.sh, which starts moto)");
            None
        }
    }
}

#[tokio::test]
async fn s3_through_moto_passes_every_check() {
    let Some(bucket) = moto_bucket() else { return };
    let url = ObjectStoreUrl::parse(&format!("s3://{bucket}/doctor-test")).unwrap();
    let report = check_url(&url).await.unwrap();
    assert_eq!(outcomes(&report), ALL_PASS, "{report}");
}

#[tokio::test]
async fn create_bucket_makes_a_bucket_with_the_lifecycle_rule() {
    if moto_bucket().is_none() {
        return;
    }
    let bucket = format!("shale-doctor-{:08x}", rand::random::<u32>());
    let said = bucket::create(&bucket).await.unwrap();
    assert!(said.starts_with("created bucket"), "{said}");
    assert_eq!(
        bucket::lifecycle_rules(&bucket).await.unwrap(),
        [(
            bucket::LIFECYCLE_RULE_ID.to_string(),
            Some(bucket::ABORT_INCOMPLETE_AFTER_DAYS)
        )]
    );
    let said = bucket::create(&bucket).await.unwrap();
    assert!(said.contains("exists and is yours"), "{said}");
    let url = ObjectStoreUrl::parse(&format!("s3://{bucket}")).unwrap();
    assert!(check_url(&url).await.unwrap().passed());
}
