# The bucket is Shale's system of record: sealed segments (Parquet), manifests,
# topic metadata, node leases and OBJECT write-ahead chunks, all under
# var.object_prefix. Private, encrypted, TLS only.

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Server access logs are not enabled by default: every node PUTs, LISTs and HEADs each heartbeat (about 200,000 requests per node per day), so a log line per request costs more than the data plane it audits; CloudTrail data events on the bucket are the targeted alternative. Add an aws_s3_bucket_logging next to this module to turn them on.
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery decision of the operator (a second region's bucket and role), not of this module. Replicated lease and manifest objects would not be fenced in the other region anyway: a standby cluster there would start from the replica, not share it.
  #checkov:skip=CKV_AWS_21:Versioning is off by default on purpose (variable versioning): Shale writes each key once (create-only conditional PUTs, If-None-Match) and fences concurrent writers that way, so versions add no safety; they would keep each deleted lease, write-ahead chunk and staging object (one PUT+DELETE per node every 2 s) and bill for them. Enabling it adds a noncurrent-version expiration rule.
  #checkov:skip=CKV2_AWS_62:No consumer of bucket event notifications exists; Shale learns of changes by listing and conditional reads, and notifications for one PUT per heartbeat would only cost.
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES-256) is the default so that a deployment needs no key to manage and pays no KMS requests; set kms_key_arn to use SSE-KMS with a customer managed key (the task role then gets kms:GenerateDataKey/Decrypt on that key only).
  bucket        = local.bucket_name
  force_destroy = var.force_destroy_bucket
  tags          = local.tags
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    # ACLs disabled: the bucket owner owns every object.
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # With KMS, one data key per bucket instead of one KMS call per object.
    bucket_key_enabled = var.kms_key_arn != null
  }
}

# Versioning: Disabled by default. Shale does not update objects in place:
# segments, write-ahead chunks, and each version of a lease, manifest or group
# checkpoint are written once under a new key with a create-only conditional
# PUT (If-None-Match: *), which is also how writers are fenced; superseded
# versions are then deleted (only two small change stamps are overwritten).
# Bucket versions would add no protection against a stale writer (the
# conditional writes do that) and would keep every deleted object: with the
# default 2 s heartbeat, 43,200 noncurrent lease versions per node per day.
# See docs/DEPLOY.md. "Disabled" only applies to a bucket that never had
# versioning; after "Enabled", use "Suspended".
resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = var.versioning
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  # Segments are uploaded in parts; an upload interrupted by a killed node
  # would otherwise keep its parts (and bill for them) forever.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  dynamic "rule" {
    for_each = var.versioning == "Disabled" ? [] : [var.noncurrent_version_expiration_days]

    content {
      id     = "expire-noncurrent-versions"
      status = "Enabled"

      filter {}

      noncurrent_version_expiration {
        noncurrent_days = rule.value
      }

      expiration {
        expired_object_delete_marker = true
      }
    }
  }

  # The lifecycle rules must see the versioning state they apply to.
  depends_on = [aws_s3_bucket_versioning.this]
}

locals {
  bucket_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "DenyTlsOlderThan12"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
        Condition = { NumericLessThan = { "s3:TlsVersion" = "1.2" } }
      },
    ]
  })
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = local.bucket_policy

  # A bucket policy written before the public access block can be refused.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
