#!/usr/bin/env bash
# The first multi-node GPU run: the simulated cluster (playbooks/local_cluster.yml: one network
# namespace per node, sshd in each, a bridge between them) on the GPU machine, one GPU per node, the
# fsdp case through the ssh launcher. The nodes have their own hostnames, so NCCL takes them for two
# hosts and talks over the network path (sockets across the bridge), not NVLink. Then the same preset
# on one node with both GPUs, for what the network path costs. Run from the repository root there, with
# Debian's iproute2/openssh packages and the libraries that machine lacks in .netdeb/, and the
# community.crypto collection (the cluster's SSH keys) where ANSIBLE_COLLECTIONS_PATH finds it:
#   scripts/gpu_multinode_trial.sh [budget_seconds]
set -u
budget=${1:-420}
deadline=$(( $(date +%s) + budget ))
out=results/gpu-multinode
mkdir -p "$out"
export ANSIBLE_CONFIG=$PWD/ansible.cfg NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p .collections/ansible_collections/awsome
ln -sfn ../../.. .collections/ansible_collections/awsome/distributed_training

# Only what the machine lacks goes under / (it is discarded after the session): the programs and
# the libraries it lacks; those it has stay its own. Unpacked aside first, then copied in keeping the
# machine's merged-/usr symlinks (/bin -> usr/bin): `dpkg -x DEB /` would replace them with directories.
stage=$(mktemp -d)
for deb in .netdeb/{iproute2,openssh-client,openssh-server,openssh-sftp-server,libbpf1,libmnl0,libwrap0,libnsl2,libtirpc3,libtirpc-common}_*.deb; do
  dpkg -x "$deb" "$stage"
done
tar -C "$stage" -c . | tar -C / -x --keep-directory-symlink --no-overwrite-dir
ldconfig
# What openssh-server's maintainer scripts would have done: its privilege-separation user.
mkdir -p /run/sshd
id sshd > /dev/null 2>&1 || useradd --system --no-create-home --home-dir /run/sshd --shell /usr/sbin/nologin sshd
python=$(command -v python3)   # the machine's Python with CUDA torch
ansible-playbook playbooks/local_cluster.yml -e cluster_nodes=2 -e local_cluster_python="$python" \
  > "$out/cluster.log" 2>&1 || { echo "local_cluster.yml failed"; tail -20 "$out/cluster.log"; exit 1; }
inv=.state/cluster/inventory.yml
# One GPU per node (per-host instance_env), CUDA nodes.
python3 - "$inv" <<'EOF'
import sys, yaml
path = sys.argv[1]
inv = yaml.safe_load(open(path))
hosts = inv["all"]["children"]["cluster"]["hosts"]
for i, name in enumerate(sorted(hosts)):
    hosts[name]["instance_env"] = {"CUDA_VISIBLE_DEVICES": str(i)}
inv["all"]["children"]["cluster"]["vars"]["accelerator"] = "cuda"
yaml.safe_dump(inv, open(path, "w"), sort_keys=False)
EOF
ansible-playbook playbooks/job_env.yml -i "$inv" > "$out/job_env.log" 2>&1 || echo "job_env.yml failed"

fsdp() {  # fsdp NAME INVENTORY ARGS...
  local name=$1 inv=$2 left=$(( deadline - $(date +%s) )) t0 before
  shift 2
  if [ "$left" -lt 100 ]; then echo "== $name: skipped (${left}s left)"; return; fi
  t0=$(date +%s) before=$(readlink -f results/latest)
  timeout "$left" ansible-playbook playbooks/run_fsdp.yml -i "$inv" -e preset=llama3-1b \
    -e '{"params": {"steps": 30, "warmup_steps": 5, "checkpoint_every": 0}}' -e timeout_s=$(( left - 20 )) "$@" \
    > "$out/$name.log" 2>&1
  echo "== $name: rc=$? in $(( $(date +%s) - t0 ))s"
  grep -m3 -E "^(fatal|failed):|msg:" "$out/$name.log"
  [ "$(readlink -f results/latest)" != "$before" ] && ln -sfn "$(readlink -f results/latest)" "$out/$name"
}
fsdp two_nodes "$inv" -e nodes=2 -e procs_per_node=1
fsdp one_node inventories/examples/single_gpu_node.yml -e nodes=1 -e procs_per_node=2
python3 - "$out" <<'EOF'
import json, pathlib, sys
for name in ("two_nodes", "one_node"):
    f = pathlib.Path(sys.argv[1], name, "summary.json")
    if f.exists():
        s = json.loads(f.read_text())
        nccl = {node: e.get("nccl") for node, e in (s.get("node_environment") or {}).items()}
        print(name, s["status"], "ranks", s.get("ranks_reported"), "tokens/s/GPU",
              (s.get("steady") or {}).get("tokens_per_s_per_device"), "loss", s.get("loss_first"), "->",
              s.get("loss_last"), json.dumps(nccl))
EOF
ansible-playbook playbooks/local_cluster.yml -e cluster_state=absent > "$out/cluster_absent.log" 2>&1
