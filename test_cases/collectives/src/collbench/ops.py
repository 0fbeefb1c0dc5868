"""The torch.distributed call behind each op, with fallbacks for backends or torch versions.

Each op lists implementations in order of preference; the first one the backend accepts is used,
and its name is recorded in every row (`impl`), so a fallback never hides. An op no
implementation supports yields rows with `supported: false` rather than disappearing.
all_reduce and broadcast are in place (torch.distributed has no out-of-place form; nccl-tests
shows in-place and out-of-place perform alike); the other ops write a separate output buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from collbench.bandwidth import OpShape
from collbench.patterns import ROOT

# (output, input, world_size, async_op) -> Work | None
Launch = Callable[[torch.Tensor, torch.Tensor, int, bool], object]
IN_PLACE = frozenset({"all_reduce", "broadcast"})
UNSUPPORTED = (RuntimeError, NotImplementedError, AttributeError, TypeError, ValueError)


def _named(name: str) -> Callable | None:
    return getattr(dist, name, None)


def _candidates(op: str) -> list[tuple[str, Launch | None]]:
    gather_single = _named("all_gather_single")  # torch >= 2.13 name; older: all_gather_into_tensor
    scatter_single = _named("reduce_scatter_single")
    table: dict[str, list[tuple[str, Launch | None]]] = {
        "all_reduce": [("all_reduce", lambda o, i, n, a: dist.all_reduce(o, async_op=a))],
        "broadcast": [("broadcast", lambda o, i, n, a: dist.broadcast(o, src=ROOT, async_op=a))],
        "all_gather": [
            ("all_gather_single", gather_single and (lambda o, i, n, a: gather_single(o, i, async_op=a))),
            ("all_gather_into_tensor", lambda o, i, n, a: dist.all_gather_into_tensor(o, i, async_op=a)),
            ("all_gather(list)", lambda o, i, n, a: dist.all_gather(list(o.chunk(n)), i, async_op=a)),
        ],
        "reduce_scatter": [
            ("reduce_scatter_single",
             scatter_single and (lambda o, i, n, a: scatter_single(o, i, async_op=a))),
            ("reduce_scatter_tensor", lambda o, i, n, a: dist.reduce_scatter_tensor(o, i, async_op=a)),
            ("reduce_scatter(list)", lambda o, i, n, a: dist.reduce_scatter(o, list(i.chunk(n)), async_op=a)),
        ],
        "alltoall": [
            ("all_to_all_single", lambda o, i, n, a: dist.all_to_all_single(o, i, async_op=a)),
            ("all_to_all(list)",
             lambda o, i, n, a: dist.all_to_all(list(o.chunk(n)), list(i.chunk(n)), async_op=a)),
        ],
    }
    return table[op]


@dataclass(frozen=True)
class Impl:
    op: str
    name: str
    launch: Launch


def select_impl(op: str, probe: Callable[[Launch], None],
                candidates: list[tuple[str, Launch | None]] | None = None) -> Impl | None:
    """First candidate that `probe` runs without an error the backend raises for unsupported calls."""
    for name, launch in candidates if candidates is not None else _candidates(op):
        if launch is None:
            continue
        try:
            probe(launch)
        except UNSUPPORTED:
            continue
        return Impl(op, name, launch)
    return None


def allocate(shape: OpShape, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, input) buffers, allocated once per size; the same tensor for in-place ops."""
    def new(numel: int) -> torch.Tensor:
        return torch.empty(numel, dtype=dtype, device=device)

    op, full, chunk = shape.op, shape.count, shape.per_rank
    if op in IN_PLACE:
        buf = new(full)
        return buf, buf
    if op == "all_gather":  # S/n in, S out: at 4 GiB that is 5 GiB per rank
        return new(full), new(chunk)
    if op == "reduce_scatter":  # S in, S/n out
        return new(chunk), new(full)
    return new(full), new(full)  # alltoall: S in, S out
