variable "region" {
  description = "AWS region to deploy to."
  type        = string
}

variable "name" {
  description = "Name of the deployment (prefix of every resource)."
  type        = string
  default     = "shale"
}

variable "image" {
  description = "The Shale image, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/shale:0.1.0."
  type        = string
}

variable "vpc_id" {
  description = "Existing VPC."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets of the load balancer (two availability zones or more)."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Subnets of the tasks."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener."
  type        = string
}

variable "allowed_cidr_blocks" {
  description = "IPv4 ranges allowed to reach the load balancer (Shale has no client authentication yet)."
  type        = list(string)
}
