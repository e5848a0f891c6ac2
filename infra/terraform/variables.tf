# ---- required ------------------------------------------------------------------

variable "name" {
  description = "Name of this deployment: prefix of every resource (cluster, service, load balancer, roles, log group) and, unless bucket_name is set, of the bucket. Lowercase letters, digits and hyphens, at most 20 characters."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.name))
    error_message = "name must be 2-20 characters of a-z, 0-9 and -, starting with a letter and not ending with -."
  }
}

variable "image" {
  description = "Container image of Shale built from the repository's Dockerfile, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/shale:0.1.0. An ECR image of this account is pulled with a policy limited to its repository."
  type        = string
}

variable "vpc_id" {
  description = "VPC the load balancer and the tasks run in (not created by this module)."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets of the load balancer, in at least two availability zones (public ones for an internet-facing load balancer)."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "An Application Load Balancer needs subnets in at least two availability zones."
  }
}

variable "private_subnet_ids" {
  description = "Subnets of the tasks (no public IP is assigned). They need a route to S3, ECR and CloudWatch Logs: a NAT gateway, or VPC endpoints (S3 gateway; ecr.api, ecr.dkr, logs interface)."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 1
    error_message = "At least one private subnet is needed."
  }
}

variable "certificate_arn" {
  description = "ARN of the ACM certificate of the HTTPS listener (a certificate for the DNS name clients will use)."
  type        = string
}

variable "allowed_cidr_blocks" {
  description = "IPv4 ranges allowed to reach the load balancer on 443 (and on 80, which only redirects to 443). Required on purpose: Shale has no client authentication yet (issue 12), so whoever reaches the load balancer can produce and consume. [\"0.0.0.0/0\"] opens it to the internet."
  type        = list(string)

  validation {
    condition     = length(var.allowed_cidr_blocks) > 0 && alltrue([for cidr in var.allowed_cidr_blocks : can(cidrhost(cidr, 0))])
    error_message = "allowed_cidr_blocks must list at least one IPv4 CIDR block."
  }
}

# ---- object store ------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the S3 bucket to create; null: NAME-ACCOUNT-REGION."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-63 characters of a-z, 0-9, . and -, starting and ending with a letter or digit."
  }
}

variable "object_prefix" {
  description = "Key prefix of the cluster in the bucket (SHALE_OBJECT_STORE=s3://BUCKET/PREFIX). Every node of one cluster uses the same; the task role may only touch keys under it."
  type        = string
  default     = "shale"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$", var.object_prefix))
    error_message = "object_prefix must be non-empty, without leading or trailing /, made of a-z 0-9 . _ - segments."
  }
}

variable "kms_key_arn" {
  description = "KMS key for the bucket's default encryption (SSE-KMS, with an S3 bucket key); null: SSE-S3 (AES-256, no key to manage). With a key, the task role may use it for S3 only."
  type        = string
  default     = null
}

variable "versioning" {
  description = "S3 versioning of the bucket: Disabled (default; Shale writes immutable keys and fences with conditional writes, so versions would only keep every deleted lease and write-ahead object), Enabled, or Suspended (to stop after Enabled: S3 cannot go back to Disabled). Noncurrent versions then expire after noncurrent_version_expiration_days."
  type        = string
  default     = "Disabled"

  validation {
    condition     = contains(["Disabled", "Enabled", "Suspended"], var.versioning)
    error_message = "versioning must be Disabled, Enabled or Suspended."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "With versioning Enabled or Suspended: days after which a noncurrent version is deleted."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "force_destroy_bucket" {
  description = "Let terraform destroy delete the bucket with its objects. The bucket is the system of record: keep false outside of tests."
  type        = bool
  default     = false
}

# ---- service -------------------------------------------------------------------

variable "desired_count" {
  description = "Nodes at creation; afterwards the autoscaler moves the count between min_count and max_count (terraform leaves it alone)."
  type        = number
  default     = 3
}

variable "min_count" {
  description = "Fewest nodes the autoscaler keeps."
  type        = number
  default     = 3

  validation {
    condition     = var.min_count >= 1
    error_message = "min_count must be at least 1."
  }
}

variable "max_count" {
  description = "Most nodes the autoscaler starts."
  type        = number
  default     = 6
}

variable "cpu_target_percent" {
  description = "Average CPU utilization of the service the autoscaler keeps (target tracking)."
  type        = number
  default     = 60

  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be between 10 and 90."
  }
}

variable "scale_in_cooldown_seconds" {
  description = "Least time between two scale-ins. Each one makes a node hand its queues over, so not too often."
  type        = number
  default     = 300
}

variable "scale_out_cooldown_seconds" {
  description = "Least time between two scale-outs."
  type        = number
  default     = 60
}

variable "cpu" {
  description = "CPU units of a task (1024 = 1 vCPU); a Fargate size together with memory."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Memory of a task in MiB; a Fargate size together with cpu."
  type        = number
  default     = 2048
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64: the architecture the image was built for."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "ephemeral_storage_gib" {
  description = "Task ephemeral storage in GiB (21-200): the image plus SHALE_DATA_DIR, i.e. the hot tier. It goes with the task: everything acknowledged is in S3 after a drain (OBJECT durability: at once)."
  type        = number
  default     = 50

  validation {
    condition     = var.ephemeral_storage_gib >= 21 && var.ephemeral_storage_gib <= 200 && floor(var.ephemeral_storage_gib) == var.ephemeral_storage_gib
    error_message = "ephemeral_storage_gib must be a whole number from 21 to 200."
  }
}

variable "hot_bytes" {
  description = "SHALE_HOT_BYTES, the hot tier's disk budget (e.g. \"20GiB\"); null: 60% of the ephemeral storage less 1 GiB, so the hot tier (which may pass its budget by a quarter) stays within the disk."
  type        = string
  default     = null
}

variable "drain_timeout_seconds" {
  description = "SHALE_DRAIN_TIMEOUT_MS in seconds, and the load balancer's deregistration delay. Fargate kills a task 120 s (its longest stopTimeout) after SIGTERM, so at most 110 leaves the node time to write LEFT and exit."
  type        = number
  default     = 100

  validation {
    condition     = var.drain_timeout_seconds >= 5 && var.drain_timeout_seconds <= 110
    error_message = "drain_timeout_seconds must be between 5 and 110."
  }
}

variable "log_level" {
  description = "SHALE_LOG: log filter of the nodes (error, warn, info, debug, or a tracing filter)."
  type        = string
  default     = "info"
}

variable "environment" {
  description = "More environment variables of the container (e.g. SHALE_SEGMENT_MS, SHALE_CLUSTER_LEASE_MS). The ones this module sets (listen address, object store, data dir, drain, advertise) win over these."
  type        = map(string)
  default     = {}
}

variable "health_check_grace_period_seconds" {
  description = "Time after a task starts during which failed load balancer health checks do not stop it (a new node first takes its queues)."
  type        = number
  default     = 60
}

variable "container_insights" {
  description = "CloudWatch Container Insights on the ECS cluster (per-task CPU, memory, network and storage metrics; billed as custom metrics)."
  type        = bool
  default     = true
}

# ---- load balancer -------------------------------------------------------------

variable "internal" {
  description = "An internal load balancer (reachable from the VPC only) instead of an internet-facing one."
  type        = bool
  default     = false
}


variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener (TLS 1.3 and 1.2 with modern ciphers by default)."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "idle_timeout_seconds" {
  description = "Load balancer idle timeout. Long polls wait up to 30 s (wait_ms), plus 10 s when forwarded to another node."
  type        = number
  default     = 60
}

variable "deletion_protection" {
  description = "Deletion protection of the load balancer (set false before terraform destroy)."
  type        = bool
  default     = true
}

variable "access_logs_bucket" {
  description = "S3 bucket for the load balancer's access logs (its policy must let ELB write); null: no access logs."
  type        = string
  default     = null
}

variable "access_logs_prefix" {
  description = "Key prefix of the access logs in access_logs_bucket."
  type        = string
  default     = "shale-alb"
}

# ---- logs and tags ---------------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of the container logs in CloudWatch Logs, in days (one of the values CloudWatch accepts)."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ... 3653)."
  }
}

variable "log_kms_key_arn" {
  description = "KMS key encrypting the log group; null: CloudWatch Logs' own encryption. The key policy must allow the logs service of this region."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
