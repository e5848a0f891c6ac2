# Offline plans of the module against a mocked AWS provider (`terraform test`,
# no credentials, no AWS account): checks what the module asks AWS for.

mock_provider "aws" {
  override_data {
    target = data.aws_caller_identity.current
    values = { account_id = "111122223333" }
  }

  override_data {
    target = data.aws_region.current
    values = { name = "eu-west-1" }
  }

  override_data {
    target = data.aws_partition.current
    values = { partition = "aws", dns_suffix = "amazonaws.com" }
  }

  # ARNs that the policies are made of, known at plan time.
  override_resource {
    target          = aws_s3_bucket.this
    override_during = plan
    values = {
      id  = "shale-test-111122223333-eu-west-1"
      arn = "arn:aws:s3:::shale-test-111122223333-eu-west-1"
    }
  }

  override_resource {
    target          = aws_cloudwatch_log_group.this
    override_during = plan
    values          = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/ecs/shale-test" }
  }
}

variables {
  name                = "shale-test"
  image               = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/shale:0.1.0"
  vpc_id              = "vpc-0123456789abcdef0"
  public_subnet_ids   = ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
  private_subnet_ids  = ["subnet-0cccccccccccccccc", "subnet-0dddddddddddddddd"]
  allowed_cidr_blocks = ["203.0.113.0/24"]
  certificate_arn     = "arn:aws:acm:eu-west-1:111122223333:certificate/00000000-0000-0000-0000-000000000000"
}

run "defaults" {
  command = plan

  assert {
    condition     = aws_s3_bucket.this.bucket == "shale-test-111122223333-eu-west-1"
    error_message = "bucket name is NAME-ACCOUNT-REGION by default"
  }

  assert {
    condition     = output.object_store_url == "s3://shale-test-111122223333-eu-west-1/shale"
    error_message = "object store URL"
  }

  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Disabled"
    error_message = "versioning is disabled by default"
  }

  assert {
    condition = (length(aws_s3_bucket_lifecycle_configuration.this.rule) == 1
    && aws_s3_bucket_lifecycle_configuration.this.rule[0].abort_incomplete_multipart_upload[0].days_after_initiation == 1)
    error_message = "one lifecycle rule: abort incomplete multipart uploads after 1 day"
  }

  assert {
    condition = (one(one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"
    && one(aws_s3_bucket_server_side_encryption_configuration.this.rule).bucket_key_enabled == false)
    error_message = "SSE-S3 by default"
  }

  assert {
    condition = (aws_s3_bucket_public_access_block.this.block_public_acls && aws_s3_bucket_public_access_block.this.block_public_policy
    && aws_s3_bucket_public_access_block.this.ignore_public_acls && aws_s3_bucket_public_access_block.this.restrict_public_buckets)
    error_message = "public access is blocked"
  }

  assert {
    condition     = one(aws_s3_bucket_ownership_controls.this.rule).object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs are disabled"
  }

  assert {
    condition     = local.ecr_repository_arn == "arn:aws:ecr:eu-west-1:111122223333:repository/team/shale"
    error_message = "the execution role may pull from the image's ECR repository: ${coalesce(local.ecr_repository_arn, "null")}"
  }

  assert {
    condition = (
      toset(flatten([for st in jsondecode(aws_iam_role_policy.task.policy).Statement : st.Action])) == toset([
        "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts", "s3:ListBucket", "s3:ListBucketMultipartUploads",
      ])
    )
    error_message = "the task role has exactly the S3 actions Shale uses: ${aws_iam_role_policy.task.policy}"
  }

  assert {
    condition = (
      toset(flatten([for st in jsondecode(aws_iam_role_policy.task.policy).Statement : st.Resource])) == toset([
        "arn:aws:s3:::shale-test-111122223333-eu-west-1/shale/*",
        "arn:aws:s3:::shale-test-111122223333-eu-west-1",
      ])
    )
    error_message = "the task role reaches this bucket and prefix only"
  }

  assert {
    condition = (
      [for st in jsondecode(aws_iam_role_policy.task.policy).Statement : st.Condition if st.Sid == "ListThePrefix"][0]
      == { StringLikeIfExists = { "s3:prefix" = ["shale/*", "shale"] } }
    )
    error_message = "listing is limited to the prefix"
  }

  assert {
    condition = (
      [for st in jsondecode(aws_s3_bucket_policy.this.policy).Statement : st.Condition if st.Sid == "DenyInsecureTransport"][0]
      == { Bool = { "aws:SecureTransport" = "false" } }
    )
    error_message = "the bucket refuses requests without TLS"
  }

  assert {
    condition = (
      [for st in jsondecode(aws_iam_role_policy.execution_ecr[0].policy).Statement : st.Resource if st.Sid == "PullTheImage"]
      == ["arn:aws:ecr:eu-west-1:111122223333:repository/team/shale"]
    )
    error_message = "the execution role pulls from the image's repository only: ${aws_iam_role_policy.execution_ecr[0].policy}"
  }

  assert {
    condition     = length(aws_iam_role_policy.task_kms) == 0
    error_message = "no KMS permission without a key"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].stopTimeout == 120
    error_message = "stopTimeout 120"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].readonlyRootFilesystem
    error_message = "read-only root file system"
  }

  assert {
    condition = (
      { for e in jsondecode(aws_ecs_task_definition.this.container_definitions)[0].environment : e.name => e.value } == {
        AWS_REGION               = "eu-west-1"
        SHALE_ADVERTISE_FROM_ECS = "1"
        SHALE_DATA_DIR           = "/var/lib/shale"
        SHALE_DRAIN_TIMEOUT_MS   = "100s"
        SHALE_HOT_BYTES          = "29GiB"
        SHALE_LISTEN             = "0.0.0.0:8080"
        SHALE_LOG                = "info"
        SHALE_OBJECT_STORE       = "s3://shale-test-111122223333-eu-west-1/shale"
      }
    )
    error_message = "container environment: ${aws_ecs_task_definition.this.container_definitions}"
  }

  assert {
    condition     = one(aws_ecs_task_definition.this.ephemeral_storage).size_in_gib == 50
    error_message = "ephemeral storage"
  }

  assert {
    condition     = aws_lb_target_group.this.deregistration_delay == "100" && aws_lb_target_group.this.target_type == "ip"
    error_message = "deregistration delay matches the drain; ip targets"
  }

  assert {
    condition     = one(aws_lb_target_group.this.health_check).path == "/readyz"
    error_message = "the load balancer checks /readyz"
  }

  assert {
    condition     = aws_lb.this.drop_invalid_header_fields && aws_lb_listener.https.ssl_policy == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    error_message = "invalid headers dropped, modern TLS policy"
  }

  assert {
    condition     = one(one(aws_lb_listener.http_redirect.default_action).redirect).protocol == "HTTPS"
    error_message = "HTTP redirects to HTTPS"
  }

  assert {
    condition     = aws_appautoscaling_target.this.min_capacity == 3 && aws_appautoscaling_target.this.max_capacity == 6
    error_message = "autoscaling between 3 and 6"
  }

  assert {
    condition     = one(aws_ecs_service.this.network_configuration).assign_public_ip == false
    error_message = "tasks get no public IP"
  }
}

run "versioning_enabled_expires_noncurrent_versions" {
  command = plan

  variables {
    versioning = "Enabled"
  }

  assert {
    condition = (length(aws_s3_bucket_lifecycle_configuration.this.rule) == 2
    && one(aws_s3_bucket_lifecycle_configuration.this.rule[1].noncurrent_version_expiration).noncurrent_days == 7)
    error_message = "enabling versioning adds the noncurrent-version expiration rule"
  }
}

run "kms_key" {
  command = plan

  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"
  }

  assert {
    condition = (one(one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"
    && one(aws_s3_bucket_server_side_encryption_configuration.this.rule).bucket_key_enabled)
    error_message = "SSE-KMS with a bucket key"
  }

  assert {
    condition = (
      [for st in jsondecode(aws_iam_role_policy.task_kms[0].policy).Statement : st.Resource if st.Sid == "BucketKeyThroughS3Only"]
      == ["arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"]
    )
    error_message = "the task role may use the bucket's key"
  }
}

run "image_outside_ecr" {
  command = plan

  variables {
    image = "ghcr.io/example/shale:0.1.0"
  }

  assert {
    condition     = length(aws_iam_role_policy.execution_ecr) == 0
    error_message = "no ECR statement for an image outside ECR"
  }
}

run "ephemeral_storage_below_fargate_minimum" {
  command = plan

  variables {
    ephemeral_storage_gib = 20
  }

  expect_failures = [var.ephemeral_storage_gib]
}

run "drain_longer_than_stop_timeout" {
  command = plan

  variables {
    drain_timeout_seconds = 120
  }

  expect_failures = [var.drain_timeout_seconds]
}

run "desired_count_outside_min_max" {
  command = plan

  variables {
    desired_count = 2
    min_count     = 3
  }

  expect_failures = [aws_appautoscaling_target.this]
}
