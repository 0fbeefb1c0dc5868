# OS and profile data: the only place that knows AMI owners, name patterns and instance types.
locals {
  os_data = {
    "ubuntu-22.04" = {
      ami_name     = "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"
      owners       = ["099720109477"] # Canonical
      ssh_username = "ubuntu"
      root_device  = "/dev/sda1"
    }
    "ubuntu-24.04" = {
      ami_name     = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
      owners       = ["099720109477"] # Canonical
      ssh_username = "ubuntu"
      root_device  = "/dev/sda1"
    }
    "al2023" = {
      ami_name     = "al2023-ami-2023.*-kernel-6.1-x86_64"
      owners       = ["137112412989"] # Amazon
      ssh_username = "ec2-user"
      root_device  = "/dev/xvda"
    }
  }

  # The build instance only needs the accelerator for the bake-time health checks;
  # any type of the same family produces an AMI that runs on the larger ones.
  profile_data = {
    gpu    = { instance_type = "g5.2xlarge", volume_size = 200 }
    neuron = { instance_type = "trn1.2xlarge", volume_size = 150 }
    cpu    = { instance_type = "c6i.2xlarge", volume_size = 60 }
  }

  os            = local.os_data[var.os]
  instance_type = var.instance_type != "" ? var.instance_type : local.profile_data[var.profile].instance_type
  volume_size   = var.volume_size > 0 ? var.volume_size : local.profile_data[var.profile].volume_size
  build_stamp   = formatdate("YYYYMMDD-hhmmss", timestamp())
  ami_name      = "${var.ami_name_prefix}-${var.profile}-${var.os}-${local.build_stamp}"

  # AMI tags: what the image holds (profile, OS, every stack version) plus the user's own tags.
  ami_tags = merge(
    { for k, v in local.stack_versions : "awsome:stack:${k}" => v },
    {
      "Name"           = local.ami_name
      "awsome:profile" = var.profile
      "awsome:os"      = var.os
      "awsome:built"   = local.build_stamp
    },
    var.tags,
  )
}
