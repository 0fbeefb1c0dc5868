"""One (op, size) point: allocate, check one operation's result, then time the loop."""

from __future__ import annotations

import torch

from collbench import bandwidth, patterns
from collbench.ops import Impl, allocate
from collbench.timing import all_ranks_true, time_per_op_us

DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def _sig(x: float) -> float:
    """Six significant digits: enough for any size, readable in the JSON."""
    return float(f"{x:.6g}")


def measure(impl: Impl, nbytes: int, *, rank: int, world_size: int, dtype: torch.dtype,
            device: torch.device, iters: int, warmup_iters: int, graph: bool = False) -> dict:
    """The `collective` row of one point; `correct` is true only if every rank got the right values."""
    elem = torch.empty((), dtype=dtype).element_size()
    shape = bandwidth.op_shape(impl.op, nbytes, elem, world_size)
    pattern = patterns.Pattern(world_size, dtype)
    out, inp = allocate(shape, dtype, device)

    def run(async_op: bool):
        return impl.launch(out, inp, world_size, async_op)

    patterns.fill(inp, pattern.input_fn(impl.op, rank))
    if out is not inp:
        out.fill_(-1)  # a stale output must not pass the check
    run(False)
    exact = pattern.exact or impl.op not in ("all_reduce", "reduce_scatter")
    correct = all_ranks_true(patterns.matches(out, pattern.expected_fn(shape, rank), exact), device)

    if impl.op == "all_reduce":
        inp.zero_()  # repeated in-place sums would grow to inf; zeros keep values (not speed) fixed
    time_us = time_per_op_us(run, iters, warmup_iters, device, graph)
    return {
        "op": impl.op, "impl": impl.name, "dtype": DTYPE_NAMES[dtype], "bytes": shape.nbytes,
        "count": shape.count, "iters": iters, "time_us": _sig(time_us),
        "algbw_gbps": _sig(bandwidth.algbw_gbps(shape.nbytes, time_us)),
        "busbw_gbps": _sig(bandwidth.busbw_gbps(impl.op, shape.nbytes, time_us, world_size)),
        "correct": correct, "supported": True,
    }


def prober(op: str, world_size: int, dtype: torch.dtype, device: torch.device):
    """A probe for select_impl: one operation on the smallest buffers of the op's real shape."""
    elem = torch.empty((), dtype=dtype).element_size()
    out, inp = allocate(bandwidth.op_shape(op, 0, elem, world_size), dtype, device)
    return lambda launch: launch(out, inp, world_size, False)


def unsupported_row(op: str, nbytes: int, *, world_size: int, dtype: torch.dtype, iters: int) -> dict:
    elem = torch.empty((), dtype=dtype).element_size()
    shape = bandwidth.op_shape(op, nbytes, elem, world_size)
    return {"op": op, "impl": None, "dtype": DTYPE_NAMES[dtype], "bytes": shape.nbytes, "count": shape.count,
            "iters": iters, "time_us": None, "algbw_gbps": None, "busbw_gbps": None, "correct": None,
            "supported": False}
