#!/usr/bin/env bash
# Build the HyperPod lifecycle bundle: on_create.sh + node_role.py + the collection tarball
# (+ provisioning_parameters.json when given). Upload it with playbooks/hyperpod/upload_lifecycle.yml.
#   lifecycle/build_bundle.sh OUT_DIR [provisioning_parameters.json]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: build_bundle.sh OUT_DIR [provisioning_parameters.json]}
params=${2:-}
[[ -z "$params" || -f "$params" ]] || { echo "build_bundle: $params not found" >&2; exit 1; }
mkdir -p "$out"
rm -f "$out"/awsome-distributed_training-*.tar.gz
install -m 0755 "$REPO/lifecycle/on_create.sh" "$REPO/lifecycle/node_role.py" "$out/"
[[ -z "$params" ]] || install -m 0644 "$params" "$out/provisioning_parameters.json"
ansible-galaxy collection build --force --output-path "$out" "$REPO" >/dev/null
ls -1 "$out"
