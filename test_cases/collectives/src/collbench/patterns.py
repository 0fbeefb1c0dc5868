"""Predictable buffer contents: what each rank puts in, and what each rank must get back.

Every value is a small integer, so copies are exact in bf16/fp16/fp32. Reductions add
q(i) * w(rank), q(i) = 1 + i % m and w = 1 or 2 by rank parity: the sum varies along the buffer
(a chunk delivered to the wrong rank differs, m being odd) and drops if a rank is missing or
doubled. m is chosen from the world size so every partial sum stays below the dtype's exact
integer limit (2**8 for bf16); past that (bf16 beyond 170 ranks) sums are compared with a
relative tolerance instead.

Buffers are filled and checked in chunks so that a 4 GiB buffer never needs an int64 index
tensor of its own size (that would be 16 GiB).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from collbench.bandwidth import OpShape

CHUNK = 1 << 24  # elements per fill/check step
EXACT_INT_LIMIT = {torch.float32: 2**24, torch.float64: 2**53, torch.bfloat16: 2**8, torch.float16: 2**11}
INEXACT_RTOL = 1e-2
ROOT = 0

IndexFn = Callable[[torch.Tensor], torch.Tensor]  # global element index (int64) -> values


class Pattern:
    """Input and expected-output values of every op for a given world size and dtype."""

    def __init__(self, world_size: int, dtype: torch.dtype):
        limit = EXACT_INT_LIMIT[dtype]
        self.n = world_size
        self.weight = sum(1 + r % 2 for r in range(world_size))  # sum of w(rank) over ranks
        m = min(251, max(1, limit // self.weight))
        self.m = m if m % 2 else m - 1  # odd: power-of-two chunk sizes are never a multiple of it
        self.exact = self.m * self.weight <= limit

    @staticmethod
    def copy_value(rank: int | torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        # 251 is prime, so ranks differ in every chunk; values 1..251 are exact in bf16.
        return (rank * 37 + idx) % 251 + 1

    def reduce_value(self, rank: int, idx: torch.Tensor) -> torch.Tensor:
        return (idx % self.m + 1) * (1 + rank % 2)

    def reduced(self, idx: torch.Tensor) -> torch.Tensor:
        return (idx % self.m + 1) * self.weight

    def input_fn(self, op: str, rank: int) -> IndexFn | None:
        """Values for rank's input buffer; None means zeros (broadcast receivers)."""
        if op in ("all_reduce", "reduce_scatter"):
            return lambda idx: self.reduce_value(rank, idx)
        if op in ("all_gather", "alltoall"):
            return lambda idx: self.copy_value(rank, idx)
        if op == "broadcast":
            return (lambda idx: self.copy_value(ROOT, idx)) if rank == ROOT else None
        raise ValueError(f"unknown collective {op!r}")

    def expected_fn(self, shape: OpShape, rank: int) -> IndexFn:
        """Values rank's output buffer must hold after one operation."""
        op, c = shape.op, shape.per_rank
        if op == "all_reduce":
            return self.reduced
        if op == "reduce_scatter":
            return lambda idx: self.reduced(rank * c + idx)
        if op == "all_gather":
            return lambda idx: self.copy_value(idx // c, idx % c)
        if op == "alltoall":
            # chunk s of the output is chunk `rank` of sender s's input
            return lambda idx: self.copy_value(idx // c, rank * c + idx % c)
        if op == "broadcast":
            return lambda idx: self.copy_value(ROOT, idx)
        raise ValueError(f"unknown collective {op!r}")


def _chunks(buf: torch.Tensor):
    flat = buf.view(-1)
    for start in range(0, flat.numel(), CHUNK):
        part = flat[start:start + CHUNK]
        idx = torch.arange(start, start + part.numel(), dtype=torch.int64, device=buf.device)
        yield part, idx


def fill(buf: torch.Tensor, fn: IndexFn | None) -> None:
    if fn is None:
        buf.zero_()
        return
    for part, idx in _chunks(buf):
        part.copy_(fn(idx))


def matches(buf: torch.Tensor, fn: IndexFn, exact: bool = True) -> bool:
    """True when every element equals fn(index) (within INEXACT_RTOL when not exact)."""
    for part, idx in _chunks(buf):
        want = fn(idx).to(torch.float64)
        got = part.to(torch.float64)
        ok = torch.equal(got, want) if exact else torch.allclose(got, want, rtol=INEXACT_RTOL, atol=0.0)
        if not ok:
            return False
    return True
