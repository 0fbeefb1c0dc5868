#!/usr/bin/env bash
# The container launch path on a GPU machine that has no container runtime installed (the lent H200
# machine: Ubuntu, root, no podman, no nvidia-container-toolkit, nothing to fetch). Run from the
# repository root there, with Debian's podman/runc/conmon .deb files (and their libraries) in .deb/:
#   scripts/gpu_container_trial.sh [budget_seconds]
# What it sets up is a harness, not product: podman unpacked with dpkg -x under /opt/podman-root, a
# hand-written CDI spec for the machine's /dev/nvidia* (what `nvidia-ctk cdi generate` writes where
# the toolkit is installed), and an image that holds no userland of its own: the CUDA training image
# cannot be built here (its base cannot be pulled) nor carried (1.4 GB), so the container sees the
# host's /usr and /opt read-only through containers.conf's default volumes. It proves the launcher's
# container path on GPUs (podman in the node's namespaces, GPUs through CDI, NCCL inside the
# container, the launch contract), and the same fsdp preset bare and in the container, back to back.
set -u
budget=${1:-500}
deadline=$(( $(date +%s) + budget ))
root=/opt/podman-root
out=results/gpu-container
mkdir -p "$out" "$root"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

for deb in .deb/*.deb; do dpkg -x "$deb" "$root"; done
lib=$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu
# conmon and runc are started by podman with its own environment: wrappers give them the
# unpacked libraries without putting Debian's copies on the host's loader path.
for tool in conmon runc; do
  real=$(find "$root/usr" -type f -name "$tool" -perm -u+x | head -1)
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$lib" "$real" > "$root/$tool"
  chmod 755 "$root/$tool"
done
mkdir -p /etc/containers /etc/cdi /var/tmp/podman
hard() { local v; v=$(ulimit -H"$1"); [ "$v" = unlimited ] && v=-1; echo "$v"; }
cat > /etc/containers/containers.conf <<EOF
[containers]
volumes = ["/usr:/usr:ro", "/opt:/opt:ro"]
# podman sets its own rlimits: runc may not raise RLIMIT_NPROC here (EPERM), only lower it.
default_ulimits = ["nofile=$(hard n):$(hard n)", "nproc=16384:16384"]
[engine]
runtime = "runc"
conmon_path = ["$root/conmon"]
cgroup_manager = "cgroupfs"
events_logger = "file"
[engine.runtimes]
runc = ["$root/runc"]
EOF
cat > /etc/containers/storage.conf <<EOF
[storage]
driver = "vfs"
graphroot = "/var/tmp/podman/storage"
runroot = "/var/tmp/podman/run"
EOF
printf '{"default": [{"type": "insecureAcceptAnything"}]}\n' > /etc/containers/policy.json
{
  echo 'cdiVersion: "0.5.0"'
  echo 'kind: nvidia.com/gpu'
  echo 'devices:'
  echo '  - name: all'
  echo '    containerEdits:'
  echo '      deviceNodes:'
  for dev in /dev/nvidia[0-9]* /dev/nvidiactl /dev/nvidia-uvm /dev/nvidia-uvm-tools; do
    [ -e "$dev" ] && echo "        - path: $dev"
  done
} > /etc/cdi/nvidia.yaml
# podman is called by name from launch.sh and the preflight: a wrapper on PATH.
printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$lib" "$root/usr/bin/podman" > /usr/local/bin/podman
chmod 755 /usr/local/bin/podman
podman --version

# The image: the merged-/usr symlinks, /etc from the host (users, the loader cache), and empty
# mount points; everything else comes from the default volumes.
img=$(mktemp -d)
mkdir -p "$img"/{etc,tmp,proc,sys,dev,run,var/tmp,root,usr,opt}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$img/$d"; done
cp -a /etc/passwd /etc/group /etc/ld.so.cache /etc/ld.so.conf /etc/ld.so.conf.d "$img/etc/" 2>/dev/null
# The host's python3 with torch (a virtualenv here) first on the image's PATH.
path="$(dirname "$(command -v python3)"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
tar -C "$img" -c . | podman import --change "ENV PATH=$path" - localhost/gpu-host-view:latest > /dev/null \
  && echo "image imported"
timeout 120 podman run --rm --network host --device nvidia.com/gpu=all localhost/gpu-host-view \
  python3 -c 'import torch; print("in the container: torch", torch.__version__, "GPUs", torch.cuda.device_count())' \
  2>&1 | tail -5

# The launcher, bare and in the container, the same preset back to back (tokens/s and time to the
# first step from summary.json).
inv=inventories/examples/single_gpu_node.yml
export ANSIBLE_CONFIG=$PWD/ansible.cfg
mkdir -p .collections/ansible_collections/awsome
ln -sfn ../../.. .collections/ansible_collections/awsome/distributed_training
ansible-playbook playbooks/job_env.yml -i "$inv" > "$out/job_env.log" 2>&1 || echo "job_env.yml failed"
for how in bare container; do
  left=$(( deadline - $(date +%s) ))
  if [ "$left" -lt 120 ]; then echo "== $how: skipped (${left}s left)"; continue; fi
  extra=(); [ $how = container ] && extra=(-e container_image=localhost/gpu-host-view)
  t0=$(date +%s) before=$(readlink -f results/latest)
  timeout "$left" ansible-playbook playbooks/run_fsdp.yml -i "$inv" -e preset=h100-llama3-8b \
    -e procs_per_node="${GPUS:-2}" -e '{"params": {"steps": 30}}' -e timeout_s=$(( left - 20 )) "${extra[@]}" \
    > "$out/$how.log" 2>&1
  echo "== $how: rc=$? in $(( $(date +%s) - t0 ))s -> $(readlink -f results/latest)"
  grep -m3 -E "^(fatal|failed):|msg:" "$out/$how.log"
  [ "$(readlink -f results/latest)" != "$before" ] && ln -sfn "$(readlink -f results/latest)" "$out/$how"
done
python3 - "$out" <<'EOF'
import json, pathlib, sys
for how in ("bare", "container"):
    f = pathlib.Path(sys.argv[1], how, "summary.json")
    if f.exists():
        s = json.loads(f.read_text())
        env = {node: {k: v for k, v in e.items() if k != "image"} | {"image": (e.get("image") or {}).get("ref")}
               for node, e in (s.get("node_environment") or {}).items()}
        print(how, s["status"], "tokens/s/GPU", (s.get("steady") or {}).get("tokens_per_s_per_device"),
              "first step", s.get("time_to_first_step_s"), "s", json.dumps(env)[:400])
EOF
podman ps -a
