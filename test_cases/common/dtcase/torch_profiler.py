"""Where a step's time goes (``--torch-profiler``): rank 0 profiles the run's last steps and writes
``profile-rank0.json`` next to its metrics: device time per step by kernel family and the top kernels.

The last steps are used so the benchmark window (steps 11-40) is unaffected when a run has a few
steps more than that; their step events carry ``"profiled": true`` and the report leaves them out of
its steady-state means.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

PROFILED_STEPS = 3
TOP_KERNELS = 25

# First match wins. Communication kernels run concurrently with compute, so family totals can add up
# to more than the step time.
_FAMILIES = [
    ("communication", re.compile(r"nccl|allgather|reducescatter|allreduce", re.I)),
    ("attention", re.compile(r"flash|fmha|attention|sdpa|cudnn", re.I)),
    ("gemm", re.compile(r"gemm|nvjet|cutlass|xmma|cublas|sm\d+_.*(mma|tensorop)|\bmm\b|addmm|matmul", re.I)),
    ("optimizer", re.compile(r"adam|multi_tensor|foreach", re.I)),
    ("fused (triton)", re.compile(r"triton", re.I)),
    ("memory copies", re.compile(r"memcpy|memset|copy|cat", re.I)),
]


def family(name: str) -> str:
    return next((fam for fam, pattern in _FAMILIES if pattern.search(name)), "other")


class StepProfiler:
    """Call :meth:`before` and :meth:`after` around every step; profiles the last PROFILED_STEPS."""

    def __init__(self, enabled: bool, *, rank: int, total_steps: int, device: torch.device, output_dir: str):
        self.first = max(1, total_steps - PROFILED_STEPS + 1)
        self.last = total_steps
        self.active = enabled and rank == 0
        self.on_cuda = device.type == "cuda"
        self.path = Path(output_dir) / f"profile-rank{rank}.json"
        self._prof: profile | None = None

    def profiled(self, step: int) -> bool:
        return self.active and self.first <= step <= self.last

    def before(self, step: int) -> None:
        if self.active and step == self.first:
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.on_cuda else [])
            self._prof = profile(activities=activities)
            self._prof.__enter__()

    def after(self, step: int) -> None:
        if self._prof is None or step != self.last:
            return
        if self.on_cuda:
            torch.cuda.synchronize()
        self._prof.__exit__(None, None, None)
        self.path.write_text(json.dumps(self.summary(step - self.first + 1), indent=1))
        self._prof = None

    def summary(self, steps: int) -> dict:
        rows = []
        for event in self._prof.key_averages():
            if self.on_cuda:
                # Kernels and copies only: the CPU ops that launched them, and the ranges named on
                # the GPU timeline (nccl:all_gather, FSDP::all_gather, Optimizer.step), would count
                # the same time twice.
                if event.device_type != DeviceType.CUDA or getattr(event, "is_user_annotation", False):
                    continue
                micros = event.self_device_time_total
            else:
                micros = event.self_cpu_time_total
            if micros > 0:
                rows.append((event.key, micros / 1000 / steps, event.count // steps))
        rows.sort(key=lambda row: row[1], reverse=True)
        total = sum(ms for _unused, ms, _unused in rows)
        families: dict[str, float] = {}
        for name, ms, _unused in rows:
            families[family(name)] = families.get(family(name), 0.0) + ms
        return {
            "steps": [self.first, self.last],
            "time_source": "device kernels" if self.on_cuda else "cpu operators",
            "ms_per_step": round(total, 3),
            "families_ms_per_step": {k: round(v, 3)
                                     for k, v in sorted(families.items(), key=lambda kv: -kv[1])},
            "top": [{"name": name[:160], "ms_per_step": round(ms, 3), "calls_per_step": calls,
                     "share": round(ms / total, 4) if total else 0.0, "family": family(name)}
                    for name, ms, calls in rows[:TOP_KERNELS]],
        }
