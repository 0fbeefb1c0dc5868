# The build container. Packer 1.6.6 drives the docker CLI; scripts/packer_build.sh puts a
# docker -> podman shim first on PATH where only podman exists.
locals {
  # What each training profile sets (every attribute can be overridden by its variable); node
  # profiles get the last, default entry.
  profile_images = {
    training-cpu = {
      repository = "localhost/awsome-training", tag = "cpu", flavour = "cpu", pull = false, systemd = true,
      base_image = "localhost/debian-systemd:bookworm",
    }
    # devel, not runtime: nccl-tests and NCCL's headers need nvcc. It cannot be pulled on the test
    # machine; `packer validate` checks the recipe there.
    training-cuda = {
      repository = "localhost/awsome-training", tag = "cuda", flavour = "cuda", pull = true, systemd = false,
      base_image = "docker.io/nvidia/cuda:${local.stack_manifest.stack_versions.cuda}-cudnn-devel-ubuntu22.04",
    }
  }
  profile_image = lookup(local.profile_images, var.profile, {
    repository = "localhost/awsome-node", tag = var.profile, flavour = "", pull = false, systemd = true,
    base_image = "localhost/debian-systemd:bookworm",
  })
  training = local.profile_image.flavour != ""

  image_repository = var.image_repository != "" ? var.image_repository : local.profile_image.repository
  image_tag        = var.image_tag != "" ? var.image_tag : local.profile_image.tag
  image            = "${local.image_repository}:${local.image_tag}"
  base_image       = var.base_image != "" ? var.base_image : local.profile_image.base_image
  container_init   = var.container_init && local.profile_image.systemd
  network          = var.container_network != "" ? ["--network=${var.container_network}"] : []
  # Packer execs every command into the container: its main process only has to stay up.
  entrypoint = local.container_init ? ["--systemd=always", "--entrypoint=/sbin/init"] : ["--entrypoint=/bin/sh"]

  # Training profiles: the wheels come in through a read-only mount (not part of the image).
  wheel_mount = "/tmp/awsome-wheels"
  volumes     = local.training && var.wheel_dir != "" ? { (var.wheel_dir) = "${local.wheel_mount}:ro" } : {}
  training_ansible_args = local.training ? concat(
    ["-e", "pytorch_env_flavour=${local.profile_image.flavour}"],
    var.wheel_dir != "" ? ["-e", "pytorch_env_wheel_dir=${local.wheel_mount}"] : [],
  ) : []
  sqsh = "${var.sqsh_dir != "" ? var.sqsh_dir : "${local.repo}/build/images"}/${basename(local.image_repository)}+${local.image_tag}.sqsh"

  # The same facts as the AMI tags, as image labels. Training images also get org.awsome.torch, the
  # version the image imports, after the build (scripts/training_image_finish.sh).
  image_labels = merge(
    { for k, v in local.stack_versions : "org.awsome.stack.${k}" => v },
    { "org.awsome.profile" = var.profile },
  )
}

source "docker" "node" {
  image       = local.base_image
  pull        = var.pull || local.profile_image.pull
  commit      = true
  volumes     = local.volumes
  run_command = concat(["-d", "-i", "-t"], local.network, local.entrypoint, ["--", "{{.Image}}"])
  # The build ran with its own entrypoint; the image gets none, and a shell as command.
  changes = concat(
    ["ENTRYPOINT []", "CMD [\"/bin/bash\"]"],
    [for k, v in local.image_labels : "LABEL ${k}=${v}"],
  )
}
