//! Object-store URLs: `file:///abs/path` (also `file://./relative`),
//! `s3://bucket/prefix`, `memory://`.
//!
//! For `s3://` everything else comes from the usual AWS variables
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`), so MinIO, moto and any
//! S3-compatible server work. Conditional writes use `If-None-Match` for
//! creates and `If-Match` on the ETag for updates, which the manifest relies on.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;

use crate::error::{Result, TieringError};

/// A parsed object-store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectStoreUrl {
    /// A directory of the local file system.
    File(PathBuf),
    /// A bucket and a key prefix (possibly empty).
    S3 { bucket: String, prefix: String },
    /// A process-local store, for tests.
    Memory,
}

impl std::str::FromStr for ObjectStoreUrl {
    type Err = TieringError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| TieringError::Config(format!("object store URL {s:?}: {why}"));
        if let Some(rest) = s.strip_prefix("file://") {
            if rest.is_empty() {
                return Err(bad(
                    "file:// needs a path, e.g. file:///var/lib/shale/objects",
                ));
            }
            return Ok(ObjectStoreUrl::File(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("s3:// needs a bucket, e.g. s3://my-bucket/shale"));
            }
            return Ok(ObjectStoreUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if s == "memory://" || s == "memory:///" {
            return Ok(ObjectStoreUrl::Memory);
        }
        Err(bad(
            "expected file:///path, s3://bucket/prefix or memory://",
        ))
    }
}

/// Opens the store a URL names; returns it with the key prefix to use inside it.
/// A `file://` directory is created if missing.
pub fn open_object_store(url: &ObjectStoreUrl) -> Result<(Arc<dyn ObjectStore>, Path)> {
    match url {
        ObjectStoreUrl::File(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| {
                TieringError::Config(format!("cannot create {}: {e}", dir.display()))
            })?;
            let store = LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| TieringError::store(format!("opening {}", dir.display()), e))?
                .with_automatic_cleanup(true);
            Ok((Arc::new(store), Path::default()))
        }
        ObjectStoreUrl::S3 { bucket, prefix } => {
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| TieringError::store(format!("configuring s3://{bucket}"), e))?;
            Ok((Arc::new(store), Path::from(prefix.as_str())))
        }
        ObjectStoreUrl::Memory => Ok((Arc::new(InMemory::new()), Path::default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_schemes() {
        assert_eq!(
            "file:///a/b".parse::<ObjectStoreUrl>().unwrap(),
            ObjectStoreUrl::File("/a/b".into())
        );
        assert_eq!(
            "file://./shale-data/objects"
                .parse::<ObjectStoreUrl>()
                .unwrap(),
            ObjectStoreUrl::File("./shale-data/objects".into())
        );
        assert_eq!(
            "s3://bkt/some/prefix/".parse::<ObjectStoreUrl>().unwrap(),
            ObjectStoreUrl::S3 {
                bucket: "bkt".into(),
                prefix: "some/prefix".into()
            }
        );
        assert_eq!(
            "s3://bkt".parse::<ObjectStoreUrl>().unwrap(),
            ObjectStoreUrl::S3 {
                bucket: "bkt".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            "memory://".parse::<ObjectStoreUrl>().unwrap(),
            ObjectStoreUrl::Memory
        );
        for bad in ["", "file://", "s3://", "s3:///x", "gs://b", "http://x"] {
            assert!(bad.parse::<ObjectStoreUrl>().is_err(), "{bad}");
        }
    }
}
