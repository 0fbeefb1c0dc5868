# User knobs of the container bake (the test cases' images).

variable "base_image" {
  type        = string
  default     = "localhost/debian-systemd:bookworm"
  description = "Image to start from; it needs python3 (scripts/build_images.sh builds the default)."
}

variable "pull" {
  type        = bool
  default     = false
  description = "Pull base_image first (false: use the local image, as no registry is needed)."
}

variable "image_repository" {
  type    = string
  default = "localhost/awsome-node"
}

variable "image_tag" {
  type        = string
  default     = ""
  description = "Tag of the result; empty = the profile name."
}

variable "container_network" {
  type        = string
  default     = ""
  description = "Network of the build container (host: reach an artifact mirror on 127.0.0.1); empty = default."
}

variable "container_init" {
  type        = bool
  default     = true
  description = "Boot the base image's systemd in the build container (podman), so that roles can reload and enable units as on a host; false for base images without systemd."
}
