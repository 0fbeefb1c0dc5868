#!/usr/bin/env bash
# Install the host packages listed in host_packages.txt (Debian/Ubuntu, as root).
# Daemons shipped by these packages are not left running: the simulated cluster and the
# tests start exactly what they need.
set -euo pipefail
list="$(dirname "$0")/host_packages.txt"
mapfile -t pkgs < <(grep -vE '^\s*(#|$)' "$list")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "host packages: all ${#pkgs[@]} present"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "error: installing ${missing[*]} needs root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d keeps package scripts from starting services we manage ourselves.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
