#!/usr/bin/env bash
# Bake an image with Packer; `make ami` and `make image` call this. Arguments are checked here,
# before Packer starts, so a typo never launches a build instance.
#   scripts/packer_build.sh ami <gpu|neuron|cpu> <ubuntu-22.04|ubuntu-24.04|al2023> [packer build args]
#   scripts/packer_build.sh container <gpu|neuron|cpu|training-cpu|training-cuda> [packer build args]
#   scripts/packer_build.sh local [packer build args]   the cpu container bake, no cloud (packer/local)
# PACKER names the packer binary (default: packer on PATH). Container bakes take an artifact mirror
# from AWSOME_ARTIFACT_MIRROR / AWSOME_MIRROR_OVERLAY (what tests/fixtures/mirror/serve.py prints);
# training-cpu first fetches its wheels into build/wheels/training-cpu (TORCH_WHEEL_INDEX: the
# index pip downloads them from; default: pip's own configuration).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
packer=${PACKER:-packer}
# The same names as playbooks/vars/image_profiles.yml and the templates' validation rules
# (tests/lint/test_packer_validate.py checks that they agree).
profiles=(gpu neuron cpu training-cpu training-cuda)
# An AMI is a node: the training profiles are container images only.
node_profiles=(gpu neuron cpu)
oses=(ubuntu-22.04 ubuntu-24.04 al2023)

die() { echo "error: $*" >&2; exit 2; }
usage() { die "usage: $0 ami <profile> <os> | container <profile> | local  (profiles: ${profiles[*]}, ami: ${node_profiles[*]}; os: ${oses[*]})"; }
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

# torch (the stack/versions.yml pin), its dependencies and a pip wheel (the bake runs pip from it)
# for training-cpu's Debian 12 Python 3.11, into a wheel cache the bake mounts read-only; a torch
# that is not a CPU build stops here, before Packer starts.
fetch_cpu_wheels() {
  local dir=$1 pin wheel
  pin=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["stack_versions"]["torch"])' \
        "$repo/stack/versions.yml")
  mkdir -p "$dir"
  python3 -m pip download --quiet --disable-pip-version-check --dest "$dir" --only-binary=:all: \
    --implementation cp --python-version 3.11 --platform manylinux_2_28_x86_64 \
    ${TORCH_WHEEL_INDEX:+--index-url "$TORCH_WHEEL_INDEX"} "torch==$pin" numpy pip >&2
  wheel=$(find "$dir" -maxdepth 1 -name "torch-$pin*.whl" -printf '%f\n' | sort | tail -n1)
  case "$wheel" in
    *+cpu-*) echo "$dir" ;;
    *) die "$dir holds torch '${wheel:-none}', not the CPU build of $pin: set TORCH_WHEEL_INDEX to a CPU wheel index" ;;
  esac
}

# The AMI bake's temporary security group admits SSH from the builder only: its public address as
# AWS sees it (AWSOME_BUILDER_IP, else EC2's checkip service), unless -var ssh_source_cidrs=... is given.
cidr_args=()
builder_cidrs() {
  local arg ip
  for arg in "$@"; do
    # Given on the command line or perhaps in a var file: the template refuses a build without it.
    case "$arg" in ssh_source_cidrs=* | -var=ssh_source_cidrs=* | -var-file*) return 0 ;; esac
  done
  ip=${AWSOME_BUILDER_IP:-$(curl -fsS --max-time 10 https://checkip.amazonaws.com 2>/dev/null || true)}
  ip=$(printf '%s' "$ip" | tr -d '[:space:]')
  [[ $ip =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]] ||
    die "cannot find this machine's public address for the build's SSH rule: set AWSOME_BUILDER_IP or pass -var 'ssh_source_cidrs=[\"<address>/32\"]'"
  cidr_args=(-var "ssh_source_cidrs=[\"$ip/32\"]")
}

kind=${1:-}
[ $# -gt 0 ] && shift
case "$kind" in
  ami)
    [ $# -ge 2 ] || usage
    profile=$1 os=$2; shift 2
    one_of "$profile" "${node_profiles[@]}" || die "unknown profile '$profile': use one of ${node_profiles[*]} (AMIs are nodes)"
    one_of "$os" "${oses[@]}" || die "unknown OS '$os': use one of ${oses[*]}"
    modern_packer || die "AMI bakes need Packer >= 1.7 (metadata_options, imds_support and the amazon plugin); found: $("$packer" version | head -n1)"
    builder_cidrs "$@"
    "$packer" init "$repo/packer/plugins"
    mkdir -p "$repo/.state/packer"
    exec "$packer" build -var "profile=$profile" -var "os=$os" "${cidr_args[@]}" "$@" "$repo/packer/ami"
    ;;
  container)
    [ $# -ge 1 ] || usage
    profile=$1; shift
    check_profile "$profile"
    template=$repo/packer/container
    if [ -n "${AWSOME_ARTIFACT_MIRROR:-}" ]; then
      # A mirror named here is reached from the host's network (e.g. 127.0.0.1).
      set -- -var "artifact_mirror=$AWSOME_ARTIFACT_MIRROR" -var container_network=host \
        ${AWSOME_MIRROR_OVERLAY:+-var "stack_overlay=$AWSOME_MIRROR_OVERLAY"} "$@"
    fi
    if [ "$profile" = training-cpu ]; then
      set -- -var "wheel_dir=$(fetch_cpu_wheels "$repo/build/wheels/$profile")" "$@"
    fi
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
