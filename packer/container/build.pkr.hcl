# The bake: the one image playbook in container mode, a cleanup, then a local tag.
build {
  sources = ["source.docker.node"]

  provisioner "ansible" {
    playbook_file    = local.playbook
    ansible_env_vars = local.ansible_env
    # Spares `ansible-playbook --version` at every validate; a missing ansible still fails the build.
    skip_version_check = true
    extra_arguments = concat(
      # The build container runs as root: no sudo needed (minimal base images have none).
      ["-e", "image_profile=${var.profile}", "-e", "image_container=true", "-e", "ansible_become=false",
      "-e", "ansible_python_interpreter=/usr/bin/python3"],
      local.ansible_mirror_args,
      var.ansible_extra_arguments,
    )
  }

  provisioner "shell" {
    # What the bake leaves behind that the image does not need.
    inline = ["rm -rf /root/.ansible /var/lib/apt/lists/* /packer-files/*"]
  }

  post-processor "docker-tag" {
    repository = var.image_repository
    tags       = [local.image_tag]
  }
}
