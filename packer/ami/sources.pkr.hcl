# One amazon-ebs source; the OS and profile variables pick the base AMI and build instance.
source "amazon-ebs" "node" {
  region        = var.region
  instance_type = local.instance_type
  ami_name      = local.ami_name
  ami_regions   = var.ami_regions
  encrypt_boot  = var.encrypt_boot
  kms_key_id    = var.kms_key_id

  source_ami_filter {
    filters = {
      name                = local.os.ami_name
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = local.os.owners
    most_recent = true
  }

  # Empty strings leave the choice to Packer: default VPC subnet, temporary security group.
  subnet_id                             = var.subnet_id
  security_group_id                     = var.security_group_id
  temporary_security_group_source_cidrs = var.ssh_source_cidrs
  ssh_username                          = local.os.ssh_username
  ssh_interface                         = var.ssh_interface

  # IMDSv2 only, on the build instance as on the nodes.
  # packer>=1.7:begin  (Packer 1.6.6 has neither setting; tests/lint/test_packer_validate.py)
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  imds_support = "v2.0" # instances launched from the AMI default to IMDSv2 too
  # packer>=1.7:end

  launch_block_device_mappings {
    device_name           = local.os.root_device
    volume_size           = local.volume_size
    volume_type           = "gp3"
    iops                  = var.volume_iops
    throughput            = var.volume_throughput
    delete_on_termination = true
  }

  tags          = local.ami_tags
  snapshot_tags = local.ami_tags
  run_tags      = { "Name" = "packer-${local.ami_name}", "awsome:profile" = var.profile }
}
