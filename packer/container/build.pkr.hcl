# The bake: the one image playbook in container mode, a cleanup, then a local tag (and, for a
# training image, its torch label and Enroot squashfs).
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
      local.training_ansible_args,
      var.ansible_extra_arguments,
    )
  }

  provisioner "shell" {
    # What the bake leaves behind that the image does not need.
    inline = ["rm -rf /root/.ansible /var/lib/apt/lists/* /packer-files/*"]
  }

  post-processors {
    post-processor "docker-tag" {
      repository = local.image_repository
      tags       = [local.image_tag]
    }
    # Packer 1.6.6 has no conditional post-processor: node profiles run `true`.
    post-processor "shell-local" {
      environment_vars = ["IMAGE=${local.image}", "SQSH=${local.sqsh}"]
      inline           = local.training ? ["${local.repo}/scripts/training_image_finish.sh"] : ["true"]
    }
  }
}
