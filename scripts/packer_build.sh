#!/usr/bin/env bash
# Bake an image with Packer; `make ami` and `make image` call this. Arguments are checked here,
# before Packer starts, so a typo never launches a build instance.
#   scripts/packer_build.sh ami <gpu|neuron|cpu> <ubuntu-22.04|ubuntu-24.04|al2023> [packer build args]
#   scripts/packer_build.sh container <gpu|neuron|cpu> [packer build args]
#   scripts/packer_build.sh local [packer build args]   the cpu container bake, no cloud (packer/local)
# PACKER names the packer binary (default: packer on PATH).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
packer=${PACKER:-packer}
# The same names as playbooks/vars/image_profiles.yml and the templates' validation rules
# (tests/lint/test_packer_validate.py checks that they agree).
profiles=(gpu neuron cpu)
oses=(ubuntu-22.04 ubuntu-24.04 al2023)

die() { echo "error: $*" >&2; exit 2; }
usage() { die "usage: $0 ami <profile> <os> | container <profile> | local  (profiles: ${profiles[*]}; os: ${oses[*]})"; }
one_of() { local want=$1 x; shift; for x in "$@"; do [ "$x" = "$want" ] && return 0; done; return 1; }
check_profile() {
  one_of "$1" "${profiles[@]}" || die "unknown profile '$1': use one of ${profiles[*]}"
}

# Packer >= 1.7 reads required_plugins from packer/plugins (kept apart: 1.6.6 rejects the block).
modern_packer() {
  local major minor
  read -r major minor < <("$packer" version | sed -n '1s/^Packer v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p') || true
  [ -n "${minor:-}" ] && { [ "$major" -gt 1 ] || [ "$minor" -ge 7 ]; }
}

kind=${1:-}
[ $# -gt 0 ] && shift
case "$kind" in
  ami)
    [ $# -ge 2 ] || usage
    profile=$1 os=$2; shift 2
    check_profile "$profile"
    one_of "$os" "${oses[@]}" || die "unknown OS '$os': use one of ${oses[*]}"
    modern_packer || die "AMI bakes need Packer >= 1.7 (metadata_options, imds_support and the amazon plugin); found: $("$packer" version | head -n1)"
    "$packer" init "$repo/packer/plugins"
    mkdir -p "$repo/.state/packer"
    exec "$packer" build -var "profile=$profile" -var "os=$os" "$@" "$repo/packer/ami"
    ;;
  container)
    [ $# -ge 1 ] || usage
    profile=$1; shift
    check_profile "$profile"
    template=$repo/packer/container
    set -- -var "profile=$profile" "$@"
    ;;
  local)
    template=$repo/packer/local
    ;;
  *) usage ;;
esac

# Container bakes: Packer's docker builder talks to podman through the shim where docker is absent
# or has no daemon.
if ! docker info >/dev/null 2>&1; then
  export PATH="$repo/scripts/docker-podman-shim:$PATH"
fi
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/molecule/containers.conf}
if modern_packer; then
  "$packer" init "$repo/packer/plugins"
fi
exec "$packer" build "$@" "$template"
