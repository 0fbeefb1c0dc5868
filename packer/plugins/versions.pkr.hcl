# Plugins the templates need on Packer >= 1.7, where builders and provisioners are no longer
# built in. Kept out of packer/ami and packer/container because Packer 1.6.6 (Debian's, which
# the tests use) rejects this block. scripts/packer_build.sh runs `packer init packer/plugins`
# on newer Packer before every build; by hand: packer init packer/plugins && packer build packer/ami
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    amazon = {
      version = ">= 1.2.0"
      source  = "github.com/hashicorp/amazon"
    }
    ansible = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/ansible"
    }
    docker = {
      version = ">= 1.0.0"
      source  = "github.com/hashicorp/docker"
    }
  }
}
