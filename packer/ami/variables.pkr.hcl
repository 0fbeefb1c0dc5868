# User knobs of the AMI bake. Only profile and os are required choices; everything else has a
# safe default (empty network ids = Packer's default VPC and a temporary security group).

variable "os" {
  type        = string
  default     = "ubuntu-22.04"
  description = "Base OS: ubuntu-22.04, ubuntu-24.04 or al2023."
  validation {
    condition     = contains(["ubuntu-22.04", "ubuntu-24.04", "al2023"], var.os)
    error_message = "The os variable must be one of: ubuntu-22.04, ubuntu-24.04, al2023."
  }
}

variable "region" {
  type    = string
  default = "us-west-2"
}

variable "instance_type" {
  type        = string
  default     = ""
  description = "Build instance type; empty = the profile's default (see locals.pkr.hcl)."
}

variable "volume_size" {
  type        = number
  default     = 0
  description = "Root volume size in GiB; 0 = the profile's default."
}

# Packer 1.6.6 sends no defaults for gp3, so both are always set explicitly.
variable "volume_iops" {
  type    = number
  default = 3000
}

variable "volume_throughput" {
  type        = number
  default     = 250
  description = "gp3 throughput in MiB/s (125-1000)."
}

variable "encrypt_boot" {
  type    = bool
  default = true
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for the encrypted AMI; empty = the account's default EBS key."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the build instance; empty = a default-VPC subnet chosen by Packer."
}

variable "security_group_id" {
  type        = string
  default     = ""
  description = "Security group of the build instance; empty = a temporary one created by Packer."
}

# Packer 1.6.6 opens an empty list to 0.0.0.0/0, so empty and the whole internet are both refused;
# scripts/packer_build.sh passes the builder's own /32.
variable "ssh_source_cidrs" {
  type        = list(string)
  default     = []
  description = "CIDRs allowed to SSH into the temporary security group: the builder's address (scripts/packer_build.sh finds it)."
  validation {
    condition     = length(var.ssh_source_cidrs) > 0 && length([for c in var.ssh_source_cidrs : c if ! can(cidrhost(c, 0)) || c == "0.0.0.0/0"]) == 0
    error_message = "The ssh_source_cidrs variable must list the builder's address, e.g. -var 'ssh_source_cidrs=[\"203.0.113.7/32\"]' (scripts/packer_build.sh finds it), never 0.0.0.0/0."
  }
}

variable "ssh_interface" {
  type        = string
  default     = "public_ip"
  description = "How Packer reaches the instance: public_ip, private_ip, public_dns, private_dns or session_manager."
}

variable "ami_name_prefix" {
  type    = string
  default = "awsome-dt"
}

variable "ami_regions" {
  type        = list(string)
  default     = []
  description = "Regions the finished AMI is copied to."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Extra tags for the AMI and its snapshots."
}
