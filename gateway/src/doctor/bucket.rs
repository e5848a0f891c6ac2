//! `shale doctor --create-bucket`: creates an S3 bucket for Shale with
//! aws-sdk-s3 (object_store has no bucket calls).
//!
//! A new bucket gets one lifecycle rule, `shale-abort-incomplete-multipart`:
//! multipart uploads not completed a day after they started are aborted, so
//! the parts of an upload cut by a crash do not stay billed for ever. A
//! bucket that already exists and is ours is left exactly as it is (putting
//! a lifecycle configuration would replace its rules).
//!
//! Settings come from the same variables as the node's store:
//! `AWS_ENDPOINT_URL` (then path-style requests, as MinIO and moto want),
//! `AWS_REGION` (or `AWS_DEFAULT_REGION`, default `us-east-1`),
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`. Only
//! static keys are read: on a machine with an instance role, create the
//! bucket with Terraform (`infra/terraform/`) instead.

use anyhow::Context;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    CreateBucketConfiguration, ExpirationStatus, LifecycleRule, LifecycleRuleFilter,
};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// The id of the lifecycle rule a new bucket gets.
pub const LIFECYCLE_RULE_ID: &str = "shale-abort-incomplete-multipart";
/// Days after which an incomplete multipart upload is aborted.
pub const ABORT_INCOMPLETE_AFTER_DAYS: i32 = 1;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// An S3 client configured from the `AWS_*` variables.
fn client() -> anyhow::Result<aws_sdk_s3::Client> {
    let key = env("AWS_ACCESS_KEY_ID").context(
        "--create-bucket needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
    )?;
    let secret = env("AWS_SECRET_ACCESS_KEY")
        .context("--create-bucket needs AWS_SECRET_ACCESS_KEY in the environment")?;
    let region = region();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(Credentials::new(
            key,
            secret,
            env("AWS_SESSION_TOKEN"),
            None,
            "environment",
        ))
        .http_client(http);
    if let Some(endpoint) = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")) {
        config = config.endpoint_url(endpoint).force_path_style(true);
    }
    Ok(aws_sdk_s3::Client::from_conf(config.build()))
}

/// An SDK error with its whole chain in the message (its `Display` alone
/// says little more than "service error").
fn sdk_error(error: impl std::error::Error) -> anyhow::Error {
    anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(error))
}

fn region() -> String {
    env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into())
}

/// Creates `bucket` with its lifecycle rule; says what it did.
pub async fn create(bucket: &str) -> anyhow::Result<String> {
    let client = client()?;
    let region = region();
    // Asked first: in us-east-1, S3 answers a create of a bucket one already
    // owns with 200, and the lifecycle rule below would then replace its rules.
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => {
            return Ok(format!(
                "bucket {bucket} exists and is yours: left as it is (its lifecycle rules unchanged)"
            ));
        }
        Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => {}
        Err(error) => {
            return Err(sdk_error(error)).with_context(|| format!("looking up bucket {bucket}"));
        }
    }
    let mut request = client.create_bucket().bucket(bucket);
    // us-east-1 is the one region S3 wants no location constraint for.
    if region != "us-east-1" {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    match request.send().await {
        Ok(_) => {}
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_bucket_already_owned_by_you()) =>
        {
            return Ok(format!(
                "bucket {bucket} exists and is yours: left as it is (its lifecycle rules unchanged)"
            ));
        }
        Err(error) => {
            return Err(sdk_error(error)).with_context(|| format!("creating bucket {bucket}"));
        }
    }
    let rule = LifecycleRule::builder()
        .id(LIFECYCLE_RULE_ID)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(ABORT_INCOMPLETE_AFTER_DAYS)
                .build(),
        )
        .build()
        .context("building the lifecycle rule")?;
    let lifecycle = BucketLifecycleConfiguration::builder()
        .rules(rule)
        .build()
        .context("building the lifecycle configuration")?;
    client
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(lifecycle)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("setting the lifecycle rule of the new bucket {bucket}"))?;
    Ok(format!(
        "created bucket {bucket} in {region} with lifecycle rule {LIFECYCLE_RULE_ID} \
         (incomplete multipart uploads aborted after {ABORT_INCOMPLETE_AFTER_DAYS} day)"
    ))
}

/// The bucket's lifecycle rules as (id, days after which incomplete
/// multipart uploads are aborted), for tests and operators.
pub async fn lifecycle_rules(bucket: &str) -> anyhow::Result<Vec<(String, Option<i32>)>> {
    let answer = client()?
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("reading the lifecycle rules of {bucket}"))?;
    Ok(answer
        .rules()
        .iter()
        .map(|rule| {
            (
                rule.id().unwrap_or_default().to_string(),
                rule.abort_incomplete_multipart_upload()
                    .and_then(|a| a.days_after_initiation()),
            )
        })
        .collect())
}
