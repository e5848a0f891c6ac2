# The module with the handful of values it needs. Copy this directory, fill in
# terraform.tfvars (see terraform.tfvars.example), then:
#
#   terraform init && terraform plan -out plan && terraform apply plan
#
# Infrastructure assumed to exist: a VPC with public and private subnets in two
# availability zones, a NAT gateway or VPC endpoints for the private ones, an
# ACM certificate, and the image in ECR (docs/DEPLOY.md shows the push).

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40.0, < 6.0.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project = "shale"
    }
  }
}

module "shale" {
  source = "../.."

  name               = var.name
  image              = var.image
  vpc_id             = var.vpc_id
  public_subnet_ids  = var.public_subnet_ids
  private_subnet_ids = var.private_subnet_ids
  certificate_arn    = var.certificate_arn
  # Who may reach the load balancer: Shale has no client authentication yet.
  allowed_cidr_blocks = var.allowed_cidr_blocks

  # Everything else has a default; a few worth knowing:
  desired_count         = 3
  min_count             = 3
  max_count             = 6
  ephemeral_storage_gib = 50
}
