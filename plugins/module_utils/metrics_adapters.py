"""Metrics adapters: a framework's own log lines turned into the common metrics events.

Our trainers write metrics-rank<N>.jsonl themselves (test_cases/common/dtcase/metrics.py). A case that
runs a framework's own trainer names an adapter in its manifest (`metrics: {adapter: torchtitan}`);
the run report (run_report.load_records) reads every node's log through it, so the case gets the same
summary.json, metrics.jsonl and report.html as ours. One place: scripts/torchtitan_anchor.py imports
this module by path. Pure Python, no Ansible imports.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

# torchtitan's per-step line (0.2.x), e.g. "step: 11  loss:  5.66745  grad_norm: 33.5035
# memory: 80.97GiB(57.92%)  tps: 8,725  tflops: 505.30  mfu: 51.09%" (on one line).
TITAN_STEP = re.compile(r"step:\s*(\d+)\s+loss:\s*([-+\d.eE]+|nan|inf)\b.*?memory:\s*([\d.]+)GiB"
                        r".*?tps:\s*([\d,]+).*?tflops:\s*([\d,.]+).*?mfu:\s*([\d.]+)%")
# torchrun --role rank --tee 3 prefixes each line with the local rank: "[rank1]:[titan] ...".
_LOCAL_RANK = re.compile(r"^\[(?:rank|default)(\d+)\]:")
_TITAN_TIME = re.compile(r"\[titan\]\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})")
_TITAN_START = "torchtitan version"
# Every rank logs it after destroy_process_group(): the rank got to the end of main().
_TITAN_END = "Process group destroyed"


def parse_steps(log_text: str) -> dict[int, dict[str, float]]:
    """torchtitan's per-step figures by step (every rank prints them; the last one of a step wins)."""
    steps = {}
    for line in log_text.splitlines():
        if m := TITAN_STEP.search(line):
            s, loss, mem, tps, tflops, mfu = m.groups()
            steps[int(s)] = {"loss": float(loss), "reserved_gib": float(mem), "mfu": float(mfu),
                             "tps": float(tps.replace(",", "")), "tflops": float(tflops.replace(",", ""))}
    return steps


def _stamp(line: str) -> float | None:
    m = _TITAN_TIME.search(line)
    if not m:
        return None
    return time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000


def torchtitan_records(log_text: str, *, node_rank: int = 0, procs_per_node: int = 1,
                       tokens_per_step: int | None = None) -> list[dict]:
    """One node's torchrun log as start / step / end events of its ranks.

    Global rank = node_rank * procs_per_node + the local rank of the line's prefix (a line without a
    prefix is local rank 0). `tokens_per_step` (tokens per step and device: local batch x seq) gives
    step_time_s from torchtitan's tokens/s; MFU becomes a fraction, as our trainers write it.
    """
    out: list[dict] = []
    started: set[int] = set()
    for line in log_text.splitlines():
        prefix = _LOCAL_RANK.match(line)
        rank = node_rank * procs_per_node + (int(prefix.group(1)) if prefix else 0)
        when = _stamp(line)
        if when is None:
            continue  # not a torchtitan log line
        if rank not in started and (_TITAN_START in line or TITAN_STEP.search(line)):
            started.add(rank)
            out.append({"event": "start", "rank": rank, "time": when, "source": "torchtitan"})
        if m := TITAN_STEP.search(line):
            s, loss, mem, tps, tflops, mfu = m.groups()
            rec = {"event": "step", "rank": rank, "step": int(s), "time": when, "loss": float(loss),
                   "tokens_per_s_per_device": float(tps.replace(",", "")),
                   "tflops_per_device": float(tflops.replace(",", "")), "mfu": float(mfu) / 100,
                   "peak_reserved_gib": float(mem)}
            if tokens_per_step and rec["tokens_per_s_per_device"] > 0:
                rec["step_time_s"] = round(tokens_per_step / rec["tokens_per_s_per_device"], 6)
            out.append(rec)
        elif _TITAN_END in line and rank in started:
            out.append({"event": "end", "rank": rank, "time": when})
    return out


def _torchtitan_for_plan(text: str, node_rank: int, plan: dict) -> list[dict]:
    params = plan.get("params") or {}
    tokens = None
    if params.get("seq_len") and params.get("local_batch_size"):
        tokens = int(params["seq_len"]) * int(params["local_batch_size"])
    return torchtitan_records(text, node_rank=node_rank, procs_per_node=int(plan["procs_per_node"]),
                              tokens_per_step=tokens)


ADAPTERS: dict[str, Callable[[str, int, dict], list[dict]]] = {"torchtitan": _torchtitan_for_plan}


def adapter_records(run_dir: str, plan: dict) -> list[dict]:
    """The events the manifest's adapter reads from <run_dir>/nodes/<host>/torchrun.log of every node
    (the launch's stdout and stderr; the node's rank is its place in the plan's node list)."""
    name = (plan.get("metrics") or {}).get("adapter")
    if not name:
        return []
    if name not in ADAPTERS:
        raise ValueError(f"unknown metrics adapter {name!r} (known: {', '.join(sorted(ADAPTERS))})")
    records = []
    for node_rank, host in enumerate(plan["nodes"]):
        try:
            with open(os.path.join(run_dir, "nodes", host, "torchrun.log"), encoding="utf-8",
                      errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue  # nothing came back from that node: the report says so
        for rec in ADAPTERS[name](text, node_rank, plan):
            rec["host"] = host
            records.append(rec)
    return records
