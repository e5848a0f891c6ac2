# The Application Load Balancer: TLS ends here (ACM certificate, TLS 1.2/1.3
# policy), HTTP is redirected, and requests go to any ready node (every node
# serves every request and forwards to a queue's owner itself).

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_91:Access logs are optional (variable access_logs_bucket) because they need a bucket whose policy lets the regional ELB account write, which is usually an organisation-wide log bucket this module should not create; the container logs in CloudWatch record every node's view.
  #checkov:skip=CKV2_AWS_28:A WAF web ACL is a per-organisation choice with its own cost and rule set (and Shale's API is JSON over HTTPS with no HTML to protect); associate one with the output alb_arn (aws_wafv2_web_acl_association) where a policy demands it.
  #checkov:skip=CKV2_AWS_76:Same as CKV2_AWS_28: no WAF is attached by this module; the Log4j rule set concerns Java back ends, Shale is written in Rust.
  name                       = var.name
  internal                   = var.internal
  load_balancer_type         = "application"
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.public_subnet_ids
  idle_timeout               = var.idle_timeout_seconds
  drop_invalid_header_fields = true
  desync_mitigation_mode     = "defensive"
  enable_deletion_protection = var.deletion_protection
  tags                       = local.tags

  dynamic "access_logs" {
    for_each = var.access_logs_bucket == null ? [] : [var.access_logs_bucket]

    content {
      bucket  = access_logs.value
      prefix  = var.access_logs_prefix
      enabled = true
    }
  }
}

resource "aws_lb_target_group" "this" {
  #checkov:skip=CKV_AWS_378:TLS ends at the load balancer; the hop to the task stays inside the VPC (private subnets, a security group that admits only the load balancer and the other nodes). Shale can serve HTTPS itself (SHALE_TLS_CERT) but tasks get new private IPs at each start, so a certificate per task would be needed; node-to-node authentication is the remaining part of issue 12.
  name        = "${var.name}-nodes"
  port        = local.container_port
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id
  # The ALB waits for requests in flight to a deregistered node, at most this
  # long (it ends sooner once the node has none); then ECS sends SIGTERM and
  # the node drains within the same time (docs/DEPLOY.md).
  deregistration_delay = var.drain_timeout_seconds
  tags                 = local.tags

  health_check {
    enabled             = true
    path                = "/readyz"
    protocol            = "HTTP"
    port                = "traffic-port"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn
  tags              = local.tags

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }
}

resource "aws_lb_listener" "http_redirect" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"
  tags              = local.tags

  default_action {
    type = "redirect"

    redirect {
      protocol    = "HTTPS"
      port        = "443"
      status_code = "HTTP_301"
    }
  }
}
