"""Slurm exporter: node states with drain reasons, jobs by state, GPUs allocated and idle.

Reads `sinfo` and `squeue` with format strings rather than `--json`: the JSON schema changes with
every Slurm release (22.05's data_parser 0.0.38 differs from 23.x and 24.x), the format fields do
not. Run it on the controller (or any host whose Slurm commands reach slurmctld). Slurm node names
are the label `slurm_node`: Prometheus's scrape config keeps `node` for the host it scrapes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

from prometheus_client.core import GaugeMetricFamily

from .serve import parser, run

SINFO = ["sinfo", "-h", "-N", "-O", "NodeList:|,StateLong:|,Gres:|,GresUsed:|,Reason:"]
SQUEUE = ["squeue", "-h", "-a", "-o", "%i|%T|%P|%u|%D|%b|%N"]
# States in which a node's free GPUs cannot take a job.
UNAVAILABLE = {"down", "drained", "draining", "fail", "failing", "maint", "future", "inval", "unknown"}


def expand_hostlist(text: str) -> list[str]:
    """'gpu-[1-3,5],login1' -> ['gpu-1', 'gpu-2', 'gpu-3', 'gpu-5', 'login1'] (one bracket per name)."""
    names = []
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", text):
        m = re.match(r"(.*)\[([^\]]*)\](.*)", part)
        if not m:
            names.append(part)
            continue
        for rng in m.group(2).split(","):
            lo, _sep, hi = rng.partition("-")
            width = len(lo)
            for i in range(int(lo), int(hi or lo) + 1):
                names.append(f"{m.group(1)}{i:0{width}d}{m.group(3)}")
    return names


def gres_gpus(text: str) -> int:
    """GPUs in a gres string: 'gpu:h100:4', 'gpu:4(S:0-1)', 'gpu:h100:3(IDX:0-2),shard:8' -> 4 / 4 / 3."""
    total = 0
    for item in re.split(r",(?![^(]*\))", text or ""):
        m = re.match(r"(?:gres[:/])?gpu(?::[^:(]+)?:(\d+)", item.strip())
        if m:
            total += int(m.group(1))
    return total


def base_state(state: str) -> str:
    """'drained*' -> 'drained', 'idle~' -> 'idle' (the suffix flags say not responding / powered down)."""
    return state.strip().rstrip("*~#!%$@^-+").lower() or "unknown"


def parse_sinfo(text: str) -> list[dict]:
    """One dict per node (sinfo -N repeats a node once per partition: kept once)."""
    nodes: dict[str, dict] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|", 4)
        if len(fields) < 5:
            raise ValueError(f"unexpected sinfo line: {line!r}")
        name, state, gres, used, reason = (f.strip() for f in fields)
        nodes.setdefault(name, {
            "node": name, "state": base_state(state), "responding": not state.strip().endswith("*"),
            "reason": "" if reason == "none" else reason,
            "gpus": gres_gpus(gres), "gpus_allocated": gres_gpus(used),
        })
    return list(nodes.values())


def parse_squeue(text: str) -> list[dict]:
    jobs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 7:
            raise ValueError(f"unexpected squeue line: {line!r}")
        job_id, state, partition, user, nodes, tres, nodelist = (f.strip() for f in fields[:7])
        jobs.append({"job_id": job_id, "state": state.lower(), "partition": partition, "user": user,
                     "nodes": int(nodes) if nodes.isdigit() else 0, "gpus_per_node": gres_gpus(tres),
                     "nodelist": expand_hostlist(nodelist) if nodelist else []})
    return jobs


def command(cmd: list[str], timeout: float) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout).stdout


class SlurmCollector:
    def __init__(self, timeout: float = 20.0):
        self.timeout = timeout

    def collect(self):
        up = GaugeMetricFamily("awsome_slurm_up", "1 when sinfo and squeue answered")
        try:
            nodes = parse_sinfo(command(SINFO, self.timeout))
            jobs = parse_squeue(command(SQUEUE, self.timeout))
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            print(f"slurm exporter: {exc}", file=sys.stderr)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        node = GaugeMetricFamily("awsome_slurm_node_state", "1 for the node's current state, with the reason "
                                 "Slurm holds for a drained or down node",
                                 labels=["slurm_node", "state", "reason"])
        responding = GaugeMetricFamily("awsome_slurm_node_responding", "0 when slurmctld cannot reach slurmd",
                                       labels=["slurm_node"])
        gpus = GaugeMetricFamily("awsome_slurm_node_gpus", "GPUs per node by use (allocated, idle, "
                                 "unavailable: free on a down or drained node)", labels=["slurm_node", "use"])
        by_state = GaugeMetricFamily("awsome_slurm_nodes", "Nodes by state", labels=["state"])
        gpu_total = GaugeMetricFamily("awsome_slurm_gpus", "GPUs of the cluster, by use", labels=["use"])
        totals = Counter()
        for n in nodes:
            node.add_metric([n["node"], n["state"], n["reason"]], 1)
            responding.add_metric([n["node"]], 1 if n["responding"] else 0)
            free = max(n["gpus"] - n["gpus_allocated"], 0)
            use = {"allocated": n["gpus_allocated"], "idle": 0, "unavailable": 0}
            use["unavailable" if n["state"] in UNAVAILABLE else "idle"] = free
            for name, count in use.items():
                gpus.add_metric([n["node"], name], count)
                totals[name] += count
        for state, count in sorted(Counter(n["state"] for n in nodes).items()):
            by_state.add_metric([state], count)
        for use in ("allocated", "idle", "unavailable"):
            gpu_total.add_metric([use], totals[use])
        yield from (node, responding, gpus, by_state, gpu_total)

        job_states = GaugeMetricFamily("awsome_slurm_jobs", "Jobs by state and partition",
                                       labels=["state", "partition"])
        for (state, part), count in sorted(Counter((j["state"], j["partition"]) for j in jobs).items()):
            job_states.add_metric([state, part], count)
        running = GaugeMetricFamily("awsome_slurm_job_gpus", "GPUs a running job holds (nodes x GPUs/node)",
                                    labels=["job_id", "partition", "user"])
        on_node = GaugeMetricFamily("awsome_slurm_job_node", "1 for each node a running job runs on",
                                    labels=["job_id", "slurm_node"])
        for j in jobs:
            if j["state"] == "running":
                running.add_metric([j["job_id"], j["partition"], j["user"]], j["nodes"] * j["gpus_per_node"])
                for name in j["nodelist"]:
                    on_node.add_metric([j["job_id"], name], 1)
        yield from (job_states, running, on_node)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0], 9402)
    p.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for each Slurm command")
    args = p.parse_args(argv)
    return run(args, lambda: SlurmCollector(args.timeout))


if __name__ == "__main__":
    sys.exit(main())
