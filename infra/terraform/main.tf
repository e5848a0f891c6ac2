# Shale on AWS: N stateless nodes (ECS Fargate tasks) behind an Application
# Load Balancer, all on one S3 bucket and prefix, which makes them one cluster.
# docs/DEPLOY.md explains the choices; README.md in this directory, the use.
#
#   s3.tf       the bucket (the system of record)
#   iam.tf      the task role (S3 only, this bucket and prefix) and the execution role
#   network.tf  security groups of the load balancer and the tasks
#   alb.tf      load balancer, HTTPS listener, HTTP redirect, target group
#   ecs.tf      cluster, log group, task definition, service, autoscaling

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  dns_suffix = data.aws_partition.current.dns_suffix

  bucket_name      = coalesce(var.bucket_name, "${var.name}-${local.account_id}-${local.region}")
  object_store_url = "s3://${local.bucket_name}/${var.object_prefix}"

  container_name = "shale"
  container_port = 8080
  # Where the task's ephemeral storage is mounted: the image's VOLUME.
  data_dir = "/var/lib/shale"

  hot_bytes = coalesce(var.hot_bytes, "${floor((var.ephemeral_storage_gib - 1) * 0.6)}GiB")

  # An ECR image (ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/REPO[:TAG|@DIGEST]):
  # the execution role may pull from that repository only. null for other
  # registries (public images need no credentials).
  ecr_image = try(regex("^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com(?:\\.cn)?/([^:@]+)", var.image), null)
  ecr_repository_arn = (local.ecr_image == null ? null :
  "arn:${local.partition}:ecr:${local.ecr_image[1]}:${local.ecr_image[0]}:repository/${local.ecr_image[2]}")

  tags = merge(var.tags, { "shale:deployment" = var.name })
}
