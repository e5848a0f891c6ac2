output "url" {
  description = "HTTPS URL of the cluster through the load balancer (point a DNS name of the certificate at alb_dns_name and use that name instead)."
  value       = "https://${aws_lb.this.dns_name}"
}

output "alb_dns_name" {
  description = "DNS name of the load balancer (target of a CNAME or alias record)."
  value       = aws_lb.this.dns_name
}

output "alb_zone_id" {
  description = "Hosted zone id of the load balancer, for a Route 53 alias record."
  value       = aws_lb.this.zone_id
}

output "alb_arn" {
  description = "ARN of the load balancer (e.g. for a WAF web ACL association)."
  value       = aws_lb.this.arn
}

output "bucket_name" {
  description = "The S3 bucket holding the cluster's data."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = aws_s3_bucket.this.arn
}

output "object_store_url" {
  description = "SHALE_OBJECT_STORE of the nodes: another node (or a replay job reading segments/) on the same URL sees the same cluster."
  value       = local.object_store_url
}

output "task_role_arn" {
  description = "Role the Shale nodes run as (S3 on the bucket and prefix only)."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "Role ECS uses to pull the image and write the logs."
  value       = aws_iam_role.execution.arn
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "ECS service name (aws ecs update-service --cluster CLUSTER --service SERVICE --force-new-deployment rolls the nodes)."
  value       = aws_ecs_service.this.name
}

output "log_group_name" {
  description = "CloudWatch log group of the nodes."
  value       = aws_cloudwatch_log_group.this.name
}

output "tasks_security_group_id" {
  description = "Security group of the tasks (add rules to it for, e.g., a Prometheus scraper of /metrics)."
  value       = aws_security_group.tasks.id
}
