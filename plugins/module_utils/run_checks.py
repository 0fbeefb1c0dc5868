"""What counts as success for a run (the checks a manifest names) and what a failed run's first
line says.

One registry: a manifest's `success.checks` may name any key of CHECKS (testcase.py validates the
names against it), and each check is a function of the run's facts. Pure Python, unit-tested.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import mean
from typing import Any


def finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class RunFacts:
    """What the nodes left behind, sorted out once for every check."""
    records: list[dict]
    nodes: list[str]
    procs_per_node: int
    world_size: int
    statuses: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.steps = [r for r in self.records if r.get("event") == "step"]
        self.rank0 = sorted((r for r in self.steps if r.get("rank") == 0), key=lambda r: r["step"])
        started = {r["rank"] for r in self.records if r.get("event") == "start"}
        ended = {r["rank"] for r in self.records if r.get("event") == "end"}
        self.reported = sorted(started & ended)
        self.active = started | {r["rank"] for r in self.steps}  # ranks that wrote anything
        self.losses = [r["loss"] for r in self.rank0 if finite(r.get("loss"))]
        self.collectives = [r for r in self.records if r.get("event") == "collective"]

    def node_of(self, rank: int) -> str:
        index = rank // self.procs_per_node
        return self.nodes[index] if index < len(self.nodes) else "?"

    def last_step(self, ranks: set[int] | None = None) -> int | None:
        steps = [r["step"] for r in self.steps if ranks is None or r.get("rank") in ranks]
        return max(steps) if steps else None


def loss_trend(losses: list[float]) -> tuple[float, float]:
    """Mean of the first and of the last few losses: one step against one step is noise."""
    k = max(1, min(5, len(losses) // 4))
    return mean(losses[:k]), mean(losses[-k:])


def _all_ranks_reported(f: RunFacts) -> list[str]:
    missing = sorted(set(range(f.world_size)) - set(f.reported))
    silent = [r for r in missing if r not in f.active]
    stopped = [r for r in missing if r in f.active]
    out = []
    if silent:
        where = sorted({f.node_of(r) for r in silent})
        out.append(f"rank(s) {', '.join(map(str, silent))} wrote nothing (node {', '.join(where)})")
    if stopped:
        # They trained, then stopped before their end record: name where they stopped.
        last = f.last_step(set(stopped))
        where = sorted({f.node_of(r) for r in stopped})
        out.append(f"rank(s) {', '.join(map(str, stopped))} stopped before the end"
                   + (f" (last step {last})" if last is not None else "") + f" (node {', '.join(where)})")
    return out


def _no_nan(f: RunFacts) -> list[str]:
    bad = next((r for r in f.steps if not finite(r.get("loss"))), None)
    if bad is None:
        return []
    return [f"loss is {bad.get('loss')!r} at step {bad.get('step')} on rank {bad.get('rank')}"]


def _loss_decreased(f: RunFacts) -> list[str]:
    if len(f.losses) < 2:
        return ["loss_decreased: fewer than 2 training steps recorded"]
    first, last = loss_trend(f.losses)
    return [] if last < first else [f"loss did not fall (first {first:.4f} -> last {last:.4f})"]


def _all_correct(f: RunFacts) -> list[str]:
    if not f.collectives:
        return ["all_correct: no collective results recorded"]
    wrong = [r for r in f.collectives if r.get("supported", True) and r.get("correct") is not True]
    return ["wrong results: " + ", ".join(f"{r['op']}@{r['bytes']}B" for r in wrong[:5])] if wrong else []


CHECKS: dict[str, Callable[[RunFacts], list[str]]] = {
    "all_ranks_reported": _all_ranks_reported,
    "no_nan": _no_nan,
    "loss_decreased": _loss_decreased,
    "all_correct": _all_correct,
}

# A node's log line that only echoes another node's failure (the collective lost its peer).
_PEER_SYMPTOM = re.compile(r"Connection (reset|closed|refused)|Broken pipe|peer|timed out|Timeout|"
                           r"NCCL (communicator|error).*(abort|remote)|SIGTERM|Signals\.SIGTERM|"
                           r"DistNetworkError|RendezvousClosedError", re.I)


def node_failures(f: RunFacts) -> list[str]:
    """One line per node that did not end well; the node that failed first comes first.

    A node stopped by the launcher because another failed (reason "stopped: ...") and a node whose
    only error is a lost peer are consequences; a node that left no files at all was lost."""
    causes, consequences = [], []
    for st in f.statuses:
        host = st["host"]
        if st["rc"] == 0:
            continue
        last = f.last_step()
        at = f" at step {last}" if last is not None else ""
        if st.get("lost"):
            causes.append(f"{host} lost{at} ({st['lost']})")
        elif st["rc"] is None:
            consequences.append(f"{host}: no exit status (job did not finish)")
        elif st.get("reason", "") and st["reason"].startswith("timeout"):
            causes.append(f"{st['reason']}{at} ({host})")
        elif st.get("reason", "") and st["reason"].startswith("stopped"):
            consequences.append(f"{host}: {st['reason']}")
        elif st["excerpt"] and not _PEER_SYMPTOM.search(st["excerpt"]):
            causes.append(f"{host}: exited {st['rc']}: {st['excerpt']}")
        else:
            consequences.append(f"{host}: exited {st['rc']}: {st['excerpt']}")
    return causes + consequences


def judge(f: RunFacts, checks: list[str]) -> list[str]:
    """Every failure, the likeliest first cause first: a lost or failed node, a timeout, then NaN,
    then what follows from them (ranks that stopped, a loss that did not fall)."""
    nodes = node_failures(f)
    found = {name: CHECKS[name](f) for name in checks}
    nan = found.pop("no_nan", [])
    return [*nodes[:1], *nan, *nodes[1:], *(line for lines in found.values() for line in lines)]
