# User knobs of the container bake (the node-stack images and the training images).

variable "base_image" {
  type        = string
  default     = ""
  description = "Image to start from; it needs python3. Empty = the profile's: localhost/debian-systemd:bookworm (scripts/build_images.sh), for training-cuda nvidia/cuda:<cuda of stack/versions.yml>-cudnn-devel-ubuntu22.04."
}

variable "pull" {
  type        = bool
  default     = false
  description = "Pull base_image first (false: use the local image, as no registry is needed). training-cuda always pulls its registry base."
}

variable "image_repository" {
  type        = string
  default     = ""
  description = "Repository of the result; empty = localhost/awsome-training for training profiles, localhost/awsome-node otherwise."
}

variable "image_tag" {
  type        = string
  default     = ""
  description = "Tag of the result; empty = cpu / cuda for training profiles, the profile name otherwise."
}

variable "container_network" {
  type        = string
  default     = ""
  description = "Network of the build container (host: reach an artifact mirror on 127.0.0.1); empty = default."
}

variable "container_init" {
  type        = bool
  default     = true
  description = "Boot the base image's systemd in the build container (podman), so that roles can reload and enable units as on a host; false for base images without systemd (training-cuda's base has none: always false there)."
}

variable "wheel_dir" {
  type        = string
  default     = ""
  description = "Host directory of Python wheels (torch and its dependencies) that training profiles install from, mounted read-only into the build container; empty = the flavour's package index."
}

variable "sqsh_dir" {
  type        = string
  default     = ""
  description = "Where a training image's Enroot squashfs (<repository name>+<tag>.sqsh) goes; empty = build/images in the repository."
}
