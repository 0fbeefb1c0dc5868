#!/usr/bin/env bash
# HyperPod lifecycle entry point (LifeCycleConfig.OnCreate): runs once on every node after boot.
# Works out whether this node is the controller, a login node or a worker (node_role.py), installs
# the collection shipped in this bundle and runs playbooks/hyperpod/node.yml locally for that role.
# Everything goes to $PROVISION_LOG_DIR/provisioning.log (HyperPod collects /var/log/provision).
#
# Environment (all optional; the defaults are HyperPod's paths):
#   PROVISION_LOG_DIR        log directory                     (/var/log/provision)
#   RESOURCE_CONFIG          resource_config.json              (/opt/ml/config/resource_config.json)
#   PROVISIONING_PARAMETERS  provisioning_parameters.json      (next to this script)
#   NODE_IP                  this node's IP in resource_config (from its hostname)
#   LIFECYCLE_WORK_DIR       inventory, facts, collection      (/opt/awsome/lifecycle)
#   ANSIBLE_PLAYBOOK         ansible-playbook to use           (from PATH, else a venv built from wheels/)
#   LIFECYCLE_PLAYBOOK       playbook                          (awsome.distributed_training.hyperpod.node)
#   LIFECYCLE_ANSIBLE_ARGS   more ansible-playbook arguments   (e.g. "--tags record")
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_DIR=${PROVISION_LOG_DIR:-/var/log/provision}
RESOURCE_CONFIG=${RESOURCE_CONFIG:-/opt/ml/config/resource_config.json}
PROVISIONING_PARAMETERS=${PROVISIONING_PARAMETERS:-$HERE/provisioning_parameters.json}
WORK=${LIFECYCLE_WORK_DIR:-/opt/awsome/lifecycle}
PLAYBOOK=${LIFECYCLE_PLAYBOOK:-awsome.distributed_training.hyperpod.node}

mkdir -p "$LOG_DIR" "$WORK"
LOG="$LOG_DIR/provisioning.log"
exec 3>&2 >>"$LOG" 2>&1  # fd 3 keeps the caller's stderr for the one-line failure summary

log() { printf '%s on_create: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
fail() { log "ERROR: $*"; echo "on_create: $* (see $LOG)" >&3; exit 1; }
trap 'fail "failed at line $LINENO (exit $?)"' ERR

log "start (bundle $HERE)"
command -v python3 >/dev/null || fail "python3 is required"

if ! role_line=$(python3 "$HERE/node_role.py" --resource-config "$RESOURCE_CONFIG" \
        --provisioning-parameters "$PROVISIONING_PARAMETERS" --node-ip "${NODE_IP:-}" \
        --inventory "$WORK/inventory.json" --facts "$WORK/node.json" 2>"$WORK/node_role.err"); then
    trap - ERR
    fail "$(sed 's/^ERROR: //' "$WORK/node_role.err")"
fi
read -r role host <<<"$role_line"
log "this node is $host, role $role"

ansible_playbook=${ANSIBLE_PLAYBOOK:-$(command -v ansible-playbook || true)}
if [[ -z "$ansible_playbook" ]]; then
    # No Ansible on the image: install it offline from wheels shipped in the bundle (no downloads).
    [[ -d "$HERE/wheels" ]] || fail "ansible-playbook not found and the bundle has no wheels/ to install it from"
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q --no-index --find-links "$HERE/wheels" ansible-core
    ansible_playbook="$WORK/venv/bin/ansible-playbook"
fi
ansible_bin=$(dirname "$ansible_playbook")

shopt -s nullglob
tarballs=("$HERE"/awsome-distributed_training-*.tar.gz)
[[ ${#tarballs[@]} -eq 1 ]] || fail "expected one awsome-distributed_training-*.tar.gz in $HERE, found ${#tarballs[@]}"
deps=("$HERE"/dependencies/*.tar.gz)
log "installing collection ${tarballs[0]##*/} and ${#deps[@]} dependencies"
# Dependencies come from the bundle's tarballs only (--offline): the node may have no Galaxy access.
"$ansible_bin/ansible-galaxy" collection install --force --offline -p "$WORK/collections" \
    "${tarballs[0]}" "${deps[@]}" >/dev/null

log "running $PLAYBOOK for role $role"
# shellcheck disable=SC2086  # LIFECYCLE_ANSIBLE_ARGS is a list of arguments on purpose
ANSIBLE_COLLECTIONS_PATH="$WORK/collections" \
    "$ansible_playbook" -i "$WORK/inventory.json" --limit "$host" "$PLAYBOOK" ${LIFECYCLE_ANSIBLE_ARGS:-}
log "done: $host configured as $role"
