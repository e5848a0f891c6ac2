# Two roles, as ECS intends:
# - the task role is what Shale itself runs as: S3 on this bucket and prefix,
#   nothing else (it gets credentials from the ECS agent through
#   AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, which Shale's S3 client reads);
# - the execution role is what the ECS agent uses to start the task: pull the
#   image and write the container's logs.

locals {
  ecs_tasks_assume_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "EcsTasksOfThisAccount"
        Effect    = "Allow"
        Principal = { Service = "ecs-tasks.amazonaws.com" }
        Action    = "sts:AssumeRole"
        # Confused-deputy protection: only ECS acting for this account and region.
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
          ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:*" }
        }
      },
    ]
  })
}

# ---- task role -------------------------------------------------------------------

resource "aws_iam_role" "task" {
  name                 = "${var.name}-task"
  description          = "Shale nodes of ${var.name}: S3 on s3://${local.bucket_name}/${var.object_prefix}/ only"
  assume_role_policy   = local.ecs_tasks_assume_policy
  max_session_duration = 3600
  tags                 = local.tags
}

# Exactly the S3 calls Shale's object store client makes (docs/DEPLOY.md):
#   GET / HEAD / ranged GET (cold reads, leases, manifests)  s3:GetObject
#   PUT, conditional PUT (If-None-Match), multipart parts    s3:PutObject
#   DELETE (old lease and manifest versions, collected WAL)  s3:DeleteObject
#   COPY staging/ -> segments/                               s3:GetObject + s3:PutObject
#   LIST (leases, manifests, WAL chunks, segments)           s3:ListBucket
#   abort of a failed multipart upload                       s3:AbortMultipartUpload
#   parts and uploads in progress (cleanup, retries)         s3:ListMultipartUploadParts, s3:ListBucketMultipartUploads
# Statements are written out in each policy (no concat or dynamic blocks) so
# that checkov can read them; optional ones are separate policies with count.
resource "aws_iam_role_policy" "task" {
  name = "shale-object-store"
  role = aws_iam_role.task.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "ObjectsUnderThePrefix"
        Effect = "Allow"
        Action = [
          "s3:GetObject",
          "s3:PutObject",
          "s3:DeleteObject",
          "s3:AbortMultipartUpload",
          "s3:ListMultipartUploadParts",
        ]
        Resource = "${aws_s3_bucket.this.arn}/${var.object_prefix}/*"
      },
      # Listing is limited to the prefix. StringLikeIfExists rather than
      # StringLike: S3 also evaluates s3:ListBucket, without any s3:prefix,
      # to decide whether a GET or HEAD of a missing key answers 404 or 403,
      # and Shale relies on 404 (absent lease, manifest, segment). A listing
      # that names a prefix must name this one.
      {
        Sid       = "ListThePrefix"
        Effect    = "Allow"
        Action    = "s3:ListBucket"
        Resource  = aws_s3_bucket.this.arn
        Condition = { StringLikeIfExists = { "s3:prefix" = ["${var.object_prefix}/*", var.object_prefix] } }
      },
      {
        Sid      = "ListMultipartUploads"
        Effect   = "Allow"
        Action   = "s3:ListBucketMultipartUploads"
        Resource = aws_s3_bucket.this.arn
      },
    ]
  })
}

# SSE-KMS only: the bucket's key, through S3 only.
resource "aws_iam_role_policy" "task_kms" {
  count = var.kms_key_arn == null ? 0 : 1

  name = "shale-bucket-key"
  role = aws_iam_role.task.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "BucketKeyThroughS3Only"
        Effect    = "Allow"
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = var.kms_key_arn
        Condition = { StringEquals = { "kms:ViaService" = "s3.${local.region}.${local.dns_suffix}" } }
      },
    ]
  })
}

# ---- execution role ----------------------------------------------------------------

resource "aws_iam_role" "execution" {
  name                 = "${var.name}-execution"
  description          = "ECS agent for ${var.name}: pull the Shale image, write its logs"
  assume_role_policy   = local.ecs_tasks_assume_policy
  max_session_duration = 3600
  tags                 = local.tags
}

# Written out instead of the managed AmazonECSTaskExecutionRolePolicy, which
# allows every repository and every log group of the account.
resource "aws_iam_role_policy" "execution" {
  name = "shale-logs"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "WriteTheServiceLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = "${aws_cloudwatch_log_group.this.arn}:*"
      },
    ]
  })
}

# An ECR image only: pull from its repository (public images need nothing).
resource "aws_iam_role_policy" "execution_ecr" {
  count = local.ecr_repository_arn == null ? 0 : 1

  name = "shale-pull"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "PullTheImage"
        Effect   = "Allow"
        Action   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
        Resource = local.ecr_repository_arn
      },
      # GetAuthorizationToken has no resource-level permissions: "*" is the
      # only resource it accepts. The token alone reads nothing; the
      # statement above limits what it can pull.
      {
        Sid      = "EcrLogin"
        Effect   = "Allow"
        Action   = "ecr:GetAuthorizationToken"
        Resource = "*"
      },
    ]
  })
}
