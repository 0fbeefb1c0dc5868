# Shared by packer/ami and packer/container (symlinked into each, as Packer reads one directory).
# The stack versions come from the one manifest, stack/versions.yml, so the AMI tags and the
# container labels always name what the roles install.
locals {
  # file() resolves relative paths against the template directory in Packer 1.6.6.
  stack_manifest = yamldecode(file("../../stack/versions.yml"))
  # The versions of the components this profile carries (stack_profiles in the manifest).
  # Values are interpolated because Packer 1.6.6 has no tostring().
  stack_versions = {
    for k in local.stack_manifest.stack_profiles[var.profile] : k => "${local.stack_manifest.stack_versions[k]}"
  }
  repo     = abspath("${path.root}/../..")
  playbook = "${local.repo}/playbooks/image.yml"

  # Extra vars every bake hands to playbooks/image.yml (the mirror and its overlay are optional).
  ansible_mirror_args = concat(
    var.artifact_mirror == "" ? [] : ["-e", "artifact_mirror=${var.artifact_mirror}"],
    var.stack_overlay == "" ? [] : ["-e", "@${var.stack_overlay}"],
  )
  ansible_env = [
    "ANSIBLE_CONFIG=${local.repo}/ansible.cfg",
    # Packer's SSH proxy only offers an ssh-rsa host key, which OpenSSH 9 refuses by default.
    "ANSIBLE_SSH_ARGS=-o ControlMaster=no -o HostKeyAlgorithms=+ssh-rsa -o PubkeyAcceptedKeyTypes=+ssh-rsa -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
    # dd over the exec channel: needs neither an sftp-server nor the legacy scp protocol in the target.
    "ANSIBLE_SSH_TRANSFER_METHOD=piped",
    "ANSIBLE_FORCE_COLOR=0",
  ]
}

# The one declaration of the profile: every template links this file.
variable "profile" {
  type        = string
  default     = "gpu"
  description = "Image profile applied by playbooks/image.yml: gpu, neuron or cpu (nodes), training-cpu or training-cuda (container images only)."
  validation {
    condition     = contains(["gpu", "neuron", "cpu", "training-cpu", "training-cuda"], var.profile)
    error_message = "The profile variable must be one of: gpu, neuron, cpu, training-cpu, training-cuda."
  }
}

variable "artifact_mirror" {
  type        = string
  default     = ""
  description = "Base URL (http(s)://, s3://) or path of an artifact mirror; empty = upstream vendor URLs."
}

variable "stack_overlay" {
  type        = string
  default     = ""
  description = "Optional vars file passed to the playbook with -e @file (e.g. the test mirror's checksums)."
}

variable "ansible_extra_arguments" {
  type        = list(string)
  default     = []
  description = "Extra ansible-playbook arguments, appended last."
}
