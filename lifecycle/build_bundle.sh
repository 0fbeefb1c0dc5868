#!/usr/bin/env bash
# Build the HyperPod lifecycle bundle: on_create.sh + node_role.py + the collection tarball
# + dependencies/ (a tarball of every collection galaxy.yml depends on, packed from the copies the
# controller's `ansible` package bundles, so a node installs them with no Galaxy)
# (+ provisioning_parameters.json when given). Upload it with playbooks/hyperpod/upload_lifecycle.yml.
#   lifecycle/build_bundle.sh OUT_DIR [provisioning_parameters.json]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: build_bundle.sh OUT_DIR [provisioning_parameters.json]}
params=${2:-}
[[ -z "$params" || -f "$params" ]] || { echo "build_bundle: $params not found" >&2; exit 1; }
mkdir -p "$out"
rm -f "$out"/awsome-distributed_training-*.tar.gz
rm -rf "$out/dependencies"
mkdir -p "$out/dependencies"
install -m 0755 "$REPO/lifecycle/on_create.sh" "$REPO/lifecycle/node_role.py" "$out/"
[[ -z "$params" ]] || install -m 0644 "$params" "$out/provisioning_parameters.json"
ansible-galaxy collection build --force --output-path "$out" "$REPO" >/dev/null
# The Python that runs ansible-galaxy is the one whose `ansible` package holds the dependencies.
python=$(sed -n "1s/^#! *//p" "$(command -v ansible-galaxy)")
bundled=$("$python" -c 'import ansible, os; print(os.path.join(os.path.dirname(os.path.dirname(ansible.__file__)), "ansible_collections"))')
for dep in $("$python" -c 'import sys, yaml; print(*yaml.safe_load(open(sys.argv[1]))["dependencies"])' "$REPO/galaxy.yml"); do
    src="$bundled/${dep//.//}"
    [[ -f "$src/MANIFEST.json" ]] || { echo "build_bundle: dependency $dep not found in $bundled" >&2; exit 1; }
    "$python" "$REPO/lifecycle/pack_collection.py" "$src" "$out/dependencies" >/dev/null
done
ls -1 "$out"
