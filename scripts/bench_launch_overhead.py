#!/usr/bin/env python3
"""Launch overhead of the product path: `ansible-playbook run_fsdp.yml` vs torchrun started by hand.

For each node count it (re)creates the simulated cluster, then measures the wall time from the
start of the launch to rank 0's first training step (the step event's own timestamp):
  ansible  - `ansible-playbook playbooks/run_fsdp.yml` (plan, checks, staging, start, follow)
  by hand  - `ssh node torchrun ...` to every node at once, reusing the code the ansible run staged
Prints one row per node count with the medians and the ratio.
The simulated cluster is one per machine: the script holds the lock the integration tests' fixture
takes (a test session waits for it, and it for them) and removes the cluster when it is done.
With --profile DIR it also writes each ansible run's per-task times (ansible.posix.profile_tasks)
to DIR/profile-<nodes>n-<repeat>.txt.
With --container IMAGE it also prints what the container costs: the launcher's own time to first
step (summary.json: job start to rank 0's first step) of the same run bare and inside IMAGE.
Usage:
  .venv/bin/python scripts/bench_launch_overhead.py --nodes 2 4 --repeats 2 [--container IMAGE]
      [--profile DIR]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv" / "bin"
ENV = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{VENV}:{os.environ['PATH']}"}
CLUSTER_LOCK = Path("/run/lock/awsome-local-cluster.lock")  # tests/integration/conftest.py's


def sh(*cmd: str, env: dict | None = None) -> str:
    proc = subprocess.run(cmd, cwd=REPO, env=env or ENV, text=True, capture_output=True, check=False)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc.stdout


def first_step_time(metrics: Path) -> float:
    for line in metrics.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "step":
            return rec["time"]
    raise RuntimeError(f"no step in {metrics}")


def ansible_run(inventory: Path, nodes: int, steps: int, *extra: str, profile: Path | None = None,
                ) -> tuple[float, Path]:
    env = {**ENV, "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
           "PROFILE_TASKS_SORT_ORDER": "none", "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all"} if profile else ENV
    t0 = time.time()
    out = sh(str(VENV / "ansible-playbook"), "playbooks/run_fsdp.yml", "-i", str(inventory),
             "-e", "preset=cpu-tiny", "-e", f"nodes={nodes}", "-e", json.dumps({"params": {"steps": steps}}),
             *extra, env=env)
    if profile:
        profile.write_text(out)
    run_dir = (REPO / "results" / "latest").resolve()
    return first_step_time(run_dir / "nodes" / "node1" / "metrics-rank0.jsonl") - t0, run_dir


def manual_run(inventory: Path, run_dir: Path, steps: int) -> float:
    inv = yaml.safe_load(inventory.read_text())["all"]["children"]["cluster"]
    hosts, v = inv["hosts"], inv["vars"]
    names = sorted(hosts)[: len(json.loads((run_dir / "summary.json").read_text())["nodes"])]
    head = hosts[names[0]]["ansible_host"]
    work = Path(v["launcher_work_root"]) / run_dir.name
    out = Path(tempfile.mkdtemp(prefix="bench-manual-"))  # fresh: the metrics writer appends
    t0 = time.time()
    procs = []
    for rank, name in enumerate(names):
        node_dir = work / name
        cmd = (f"cd {node_dir} && PYTHONPATH=code/common:code/fsdp/src OMP_NUM_THREADS=1 "
               f"GLOO_SOCKET_IFNAME={v['network_interface']} {v['launcher_python']} -m torch.distributed.run "
               f"--nnodes {len(names)} --nproc-per-node 1 --node-rank {rank} --master-addr {head} "
               f"--master-port 29501 code/fsdp/src/train.py --model tiny --steps {steps} "
               f"--output-dir {out}/{name}")
        procs.append(subprocess.Popen(
            # The inventory's own host-key options: the cluster's known_hosts, checked strictly.
            ["ssh", "-i", v["ansible_ssh_private_key_file"],
             *shlex.split(v.get("ansible_ssh_common_args", "")), "-o", "LogLevel=ERROR",
             f"root@{hosts[name]['ansible_host']}", cmd],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for p in procs:
        if p.wait():
            sys.exit("manual torchrun failed")
    return first_step_time(out / names[0] / "metrics-rank0.jsonl") - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--container", help="also measure the container start cost with this image")
    ap.add_argument("--profile", type=Path, help="write each ansible run's per-task times into DIR")
    a = ap.parse_args()
    if a.profile:
        a.profile.mkdir(parents=True, exist_ok=True)
    CLUSTER_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with CLUSTER_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            rows, container_rows = measure(a)
        finally:
            sh(str(VENV / "ansible-playbook"), "playbooks/local_cluster.yml", "-e", "cluster_state=absent")
    print(f"{'nodes':>5} {'ansible-playbook s':>19} {'torchrun by hand s':>19} {'ratio':>6}")
    for n, ans_s, man_s in rows:
        print(f"{n:>5} {ans_s:>19.1f} {man_s:>19.1f} {ans_s / man_s:>6.2f}")
    if container_rows:
        print(f"\ntime to first step from the job's start, bare vs in {a.container}")
        print(f"{'nodes':>5} {'bare s':>8} {'container s':>12} {'cost s':>7}")
        for n, bare_s, boxed_s in container_rows:
            print(f"{n:>5} {bare_s:>8.1f} {boxed_s:>12.1f} {boxed_s - bare_s:>7.1f}")


def measure(a: argparse.Namespace) -> tuple[list, list]:
    inventory = REPO / ".state" / "cluster" / "inventory.yml"
    rows, container_rows = [], []
    for n in a.nodes:
        sh(str(VENV / "ansible-playbook"), "playbooks/local_cluster.yml", "-e", "cluster_state=present",
           "-e", f"cluster_nodes={n}")
        ans, man = [], []
        for r in range(a.repeats):
            t, run_dir = ansible_run(inventory, n, a.steps,
                                     profile=a.profile / f"profile-{n}n-{r}.txt" if a.profile else None)
            ans.append(t)
            man.append(manual_run(inventory, run_dir, a.steps))
        rows.append((n, statistics.median(ans), statistics.median(man)))
        if a.container:
            bare, boxed = [], []
            for _unused in range(a.repeats):
                for image, out in (("none", bare), (a.container, boxed)):
                    _unused, run_dir = ansible_run(inventory, n, a.steps, "-e", f"container_image={image}")
                    out.append(json.loads((run_dir / "summary.json").read_text())["time_to_first_step_s"])
            container_rows.append((n, statistics.median(bare), statistics.median(boxed)))
    return rows, container_rows


if __name__ == "__main__":
    main()
