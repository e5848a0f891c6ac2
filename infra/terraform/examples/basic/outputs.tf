output "url" {
  description = "HTTPS URL of the cluster."
  value       = module.shale.url
}

output "bucket_name" {
  description = "The S3 bucket of the cluster."
  value       = module.shale.bucket_name
}

output "task_role_arn" {
  description = "Role of the Shale nodes."
  value       = module.shale.task_role_arn
}

output "execution_role_arn" {
  description = "Role ECS starts the tasks with."
  value       = module.shale.execution_role_arn
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.shale.cluster_name
}

output "service_name" {
  description = "ECS service."
  value       = module.shale.service_name
}
