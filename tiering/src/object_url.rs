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

/// Where a node's objects go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectStoreUrl {
    /// A directory on a local file system (relative paths: to the working directory).
    File(PathBuf),
    /// An S3-compatible bucket; endpoint, region and credentials come from the `AWS_*` variables.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix without leading or trailing `/` (may be empty).
        prefix: String,
    },
    /// In process memory: gone when the process exits (tests only).
    Memory,
}

impl ObjectStoreUrl {
    /// Parses `file:///abs`, `file://./rel`, `s3://bucket[/prefix]`, `memory://`;
    /// the error is a sentence for the user.
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        let expected =
            "expected file:///abs/path, file://./relative/path, s3://bucket/prefix or memory://";
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("`{url}` is not a URL ({expected})"));
        };
        match scheme {
            "file" if rest.is_empty() => Err(format!("`{url}` has no path ({expected})")),
            "file" => Ok(ObjectStoreUrl::File(PathBuf::from(rest))),
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                check_bucket(bucket).map_err(|reason| format!("`{url}`: {reason}"))?;
                let prefix = prefix.trim_matches('/');
                if !prefix.is_empty()
                    && prefix
                        .split('/')
                        .any(|part| part.is_empty() || part == "." || part == "..")
                {
                    return Err(format!(
                        "`{url}`: the prefix has an empty, `.` or `..` part"
                    ));
                }
                Ok(ObjectStoreUrl::S3 {
                    bucket: bucket.into(),
                    prefix: prefix.into(),
                })
            }
            "memory" if rest.is_empty() || rest == "/" => Ok(ObjectStoreUrl::Memory),
            "memory" => Err(format!("`{url}`: write memory:// with nothing after it")),
            _ => Err(format!(
                "`{url}` has an unsupported scheme `{scheme}` ({expected})"
            )),
        }
    }
}

impl std::str::FromStr for ObjectStoreUrl {
    type Err = TieringError;

    fn from_str(s: &str) -> Result<Self> {
        ObjectStoreUrl::parse(s)
            .map_err(|why| TieringError::Config(format!("object store URL {why}")))
    }
}

impl std::fmt::Display for ObjectStoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectStoreUrl::File(path) => write!(f, "file://{}", path.display()),
            ObjectStoreUrl::S3 { bucket, prefix } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            ObjectStoreUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            ObjectStoreUrl::Memory => f.write_str("memory://"),
        }
    }
}

/// S3's bucket naming rules (the part that can be checked offline).
fn check_bucket(bucket: &str) -> std::result::Result<(), String> {
    let chars_ok = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&bucket.len())
        || !chars_ok
        || !ends_ok(bucket.chars().next())
        || !ends_ok(bucket.chars().last())
    {
        return Err(format!(
            "`{bucket}` is not a bucket name (3-63 characters of a-z 0-9 . -, starting and ending with a letter or digit)"
        ));
    }
    Ok(())
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
        use ObjectStoreUrl::*;
        let s3 = |bucket: &str, prefix: &str| S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
        };
        let cases = [
            ("file:///var/lib/objects", File("/var/lib/objects".into())),
            (
                "file://./shale-data/objects",
                File("./shale-data/objects".into()),
            ),
            ("s3://my-bucket", s3("my-bucket", "")),
            ("s3://my-bucket/", s3("my-bucket", "")),
            ("s3://my.bucket/a/b/", s3("my.bucket", "a/b")),
            ("memory://", Memory),
        ];
        for (url, expected) in cases {
            assert_eq!(ObjectStoreUrl::parse(url).as_ref(), Ok(&expected), "{url}");
            assert_eq!(url.parse::<ObjectStoreUrl>().ok(), Some(expected.clone()));
        }
        assert_eq!(s3("b12", "p/q").to_string(), "s3://b12/p/q");
        for url in [
            "",
            "file://",
            "s3://",
            "s3://UPPER",
            "s3://ab",
            "s3://bucket/a//b",
            "s3://bucket/../x",
            "memory://x",
            "gs://b",
            "http://x",
            "x",
        ] {
            assert!(
                ObjectStoreUrl::parse(url).is_err(),
                "{url} should be refused"
            );
        }
    }
}
