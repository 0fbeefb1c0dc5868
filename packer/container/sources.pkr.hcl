# The build container. Packer 1.6.6 drives the docker CLI; scripts/packer_build.sh puts a
# docker -> podman shim first on PATH where only podman exists.
locals {
  image_tag = var.image_tag != "" ? var.image_tag : var.profile
  network   = var.container_network != "" ? ["--network=${var.container_network}"] : []
  # Packer execs every command into the container: its main process only has to stay up.
  entrypoint = var.container_init ? ["--systemd=always", "--entrypoint=/sbin/init"] : ["--entrypoint=/bin/sh"]
  # The same facts as the AMI tags, as image labels.
  image_labels = merge(
    { for k, v in local.stack_versions : "org.awsome.stack.${k}" => v },
    { "org.awsome.profile" = var.profile },
  )
}

source "docker" "node" {
  image       = var.base_image
  pull        = var.pull
  commit      = true
  run_command = concat(["-d", "-i", "-t"], local.network, local.entrypoint, ["--", "{{.Image}}"])
  # The build ran with its own entrypoint; the image gets none, and a shell as command.
  changes = concat(
    ["ENTRYPOINT []", "CMD [\"/bin/bash\"]"],
    [for k, v in local.image_labels : "LABEL ${k}=${v}"],
  )
}
