#!/usr/bin/env bash
# Build the local base images the Molecule scenarios and the container bake start from.
# No registry is reachable, so the images come from debootstrap and `podman import`:
#   localhost/debian-base:bookworm     minbase Debian 12 (python3 added by each scenario's prepare)
#   localhost/debian-systemd:bookworm  Debian 12 booting systemd, for roles that manage services
# The Debian mirror is read from this machine's own apt sources. Re-running is a no-op.
set -euo pipefail
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "$0")/.." && pwd)/molecule/containers.conf}"
base=localhost/debian-base:bookworm
sysd=localhost/debian-systemd:bookworm

mirror() {
  # The URI apt itself uses for "bookworm main" on this machine.
  local uri
  uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' \
        | awk '$2 == "bookworm" && $3 == "main" {print $1; exit}')
  [ -n "$uri" ] || { echo "error: no Debian bookworm mirror in apt's sources (run apt-get update)" >&2; exit 1; }
  echo "$uri"
}

if ! podman image exists "$base"; then
  root=$(mktemp -d /var/tmp/debootstrap.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase bookworm "$root" "$(mirror)" >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
  echo "built $base"
fi

if ! podman image exists "$sysd"; then
  ctx=$(mktemp -d)
  cat > "$ctx/Containerfile" <<EOC
FROM $base
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      systemd systemd-sysv python3 python3-apt sudo dbus ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && systemctl mask systemd-remount-fs.service systemd-logind.service getty.target console-getty.service
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
EOC
  buildah bud --isolation chroot -q -t "$sysd" "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "built $sysd"
fi
echo "images ready: $base $sysd"
