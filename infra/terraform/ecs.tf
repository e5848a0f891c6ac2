# N stateless Shale nodes as ECS Fargate tasks (docs/DEPLOY.md says why
# Fargate). A node keeps nothing that is not in S3 or recoverable from it:
# its hot tier lives on the task's ephemeral storage, and on SIGTERM it hands
# its queues over to the other nodes before exiting.

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:A customer managed KMS key is optional (variable log_kms_key_arn): it needs a key policy for the regional logs service that this module cannot write for a key it does not own. Without it CloudWatch Logs still encrypts the data at rest with its own keys. The logs hold no message bodies, only operational events.
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days, default 30 days): these are operational logs of stateless nodes, not an audit trail; deployments with a retention rule set 365 or more.
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = local.tags
}

resource "aws_ecs_cluster" "this" {
  name = var.name
  tags = local.tags

  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }
}

locals {
  # Settings the module owns come last and win; SHALE_HOT_BYTES and SHALE_LOG
  # can be replaced through var.environment.
  environment = merge(
    {
      SHALE_HOT_BYTES = local.hot_bytes
      SHALE_LOG       = var.log_level
    },
    var.environment,
    {
      SHALE_LISTEN           = "0.0.0.0:${local.container_port}"
      SHALE_DATA_DIR         = local.data_dir
      SHALE_OBJECT_STORE     = local.object_store_url
      SHALE_DRAIN_TIMEOUT_MS = "${var.drain_timeout_seconds}s"
      AWS_REGION             = local.region
      # The task's private IP is known only at run time: the image's entrypoint
      # reads it from the task metadata endpoint and sets
      # SHALE_ADVERTISE_URL=http://IP:8080 (deploy/entrypoint.sh).
      SHALE_ADVERTISE_FROM_ECS = "1"
    },
  )
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn
  tags                     = local.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # The data directory (hot tier, node id) and /tmp are on the task's
  # ephemeral storage; the root file system is read-only.
  ephemeral_storage {
    size_in_gib = var.ephemeral_storage_gib
  }

  volume {
    name = "data"
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = local.container_name
      image                  = var.image
      essential              = true
      user                   = "10001:10001"
      readonlyRootFilesystem = true
      environment            = [for key, value in local.environment : { name = key, value = value }]

      portMappings = [
        {
          name          = "http"
          containerPort = local.container_port
          protocol      = "tcp"
          appProtocol   = "http"
        },
      ]

      mountPoints = [
        { sourceVolume = "data", containerPath = local.data_dir, readOnly = false },
        { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
      ]

      # SIGTERM starts the drain (queues handed over, lease marked LEFT);
      # SIGKILL follows after stopTimeout, 120 s being Fargate's maximum.
      stopTimeout = 120

      # Liveness: /healthz. Readiness (/readyz, 503 while draining) is the
      # load balancer's check.
      healthCheck = {
        command     = ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:${local.container_port}/healthz"]
        interval    = 10
        timeout     = 5
        retries     = 3
        startPeriod = 30
      }

      linuxParameters = {
        capabilities = { drop = ["ALL"] }
      }

      ulimits = [
        { name = "nofile", softLimit = 65536, hardLimit = 65536 },
      ]

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "shale"
          # A slow log pipeline must not block the broker.
          mode            = "non-blocking"
          max-buffer-size = "25m"
        }
      }
    },
  ])
}

resource "aws_ecs_service" "this" {
  name                              = var.name
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.this.arn
  desired_count                     = var.desired_count
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  propagate_tags                    = "SERVICE"
  enable_ecs_managed_tags           = true
  health_check_grace_period_seconds = var.health_check_grace_period_seconds
  # A deployment starts the new nodes before stopping old ones: capacity
  # never drops, and each old node hands its queues over as it leaves.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  tags                               = local.tags

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = local.container_name
    container_port   = local.container_port
  }

  lifecycle {
    # The autoscaler owns the count after creation.
    ignore_changes = [desired_count]
  }

  # The listener must exist before targets register, and the role its policy
  # before a node first reaches S3.
  depends_on = [
    aws_lb_listener.https,
    aws_iam_role_policy.task,
    aws_iam_role_policy.task_kms,
    aws_iam_role_policy.execution,
    aws_iam_role_policy.execution_ecr,
  ]
}

# ---- autoscaling on CPU ----------------------------------------------------------

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
  tags               = local.tags

  lifecycle {
    precondition {
      condition     = var.min_count <= var.desired_count && var.desired_count <= var.max_count
      error_message = "Need min_count <= desired_count <= max_count."
    }
  }
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = var.scale_in_cooldown_seconds
    scale_out_cooldown = var.scale_out_cooldown_seconds

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
