"""Time back-to-back operations as a whole, like nccl-tests: per-op time = total / iters.

GPU: CUDA events around the loop on the current stream; operations are launched asynchronously
and waited for only after the last one, so nothing synchronises inside the timed region.
Optionally the iters are captured once in a CUDA graph and replayed (removes launch overhead,
which dominates small sizes). CPU: perf_counter around the loop of blocking gloo calls.
Every rank starts after a barrier; the reported time is the maximum over ranks.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.distributed as dist

Run = Callable[[bool], object]  # run(async_op) -> Work | None


def _wait_all(works: list) -> None:
    for work in works:
        if work is not None:
            work.wait()


def _cuda_loop_us(run: Run, iters: int) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    dist.barrier()
    start.record()
    works = [run(True) for _unused in range(iters)]
    _wait_all(works)  # on CUDA this only makes the current stream wait for the NCCL stream
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e3


def _cuda_graph_us(run: Run, iters: int) -> float:
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.graph(graph, stream=stream):
        for _unused in range(iters):
            run(False)
    graph.replay()  # one untimed replay: first replay uploads the graph
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    dist.barrier()
    start.record()
    graph.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e3


def _cpu_loop_us(run: Run, iters: int) -> float:
    dist.barrier()
    t0 = time.perf_counter()
    for _unused in range(iters):
        run(False)
    return (time.perf_counter() - t0) * 1e6


def time_per_op_us(run: Run, iters: int, warmup_iters: int, device: torch.device,
                   graph: bool = False) -> float:
    """Max over ranks of (time of `iters` back-to-back operations) / iters, in microseconds."""
    cuda = device.type == "cuda"
    for _unused in range(warmup_iters):
        run(False)
    if cuda:
        torch.cuda.synchronize()
        total = _cuda_graph_us(run, iters) if graph else _cuda_loop_us(run, iters)
    else:
        total = _cpu_loop_us(run, iters)
    return max_over_ranks(total / iters, device)


def max_over_ranks(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def all_ranks_true(flag: bool, device: torch.device) -> bool:
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())
