# The bake: wait for cloud-init, then run the one image playbook with the chosen profile.
build {
  sources = ["source.amazon-ebs.node"]

  provisioner "shell" {
    # cloud-init exits 2 for "done with recoverable errors"; the image is still usable.
    inline = ["sudo cloud-init status --wait || test $? -eq 2"]
  }

  provisioner "ansible" {
    playbook_file    = local.playbook
    user             = local.os.ssh_username
    ansible_env_vars = local.ansible_env
    # Spares `ansible-playbook --version` at every validate; a missing ansible still fails the build.
    skip_version_check = true
    extra_arguments = concat(
      ["-e", "image_profile=${var.profile}", "-e", "image_container=false",
      "-e", "ansible_python_interpreter=/usr/bin/python3"],
      local.ansible_mirror_args,
      var.ansible_extra_arguments,
    )
  }

  post-processor "manifest" {
    output     = "${local.repo}/.state/packer/ami-manifest.json"
    strip_path = true
    custom_data = {
      profile = var.profile
      os      = var.os
    }
  }
}
