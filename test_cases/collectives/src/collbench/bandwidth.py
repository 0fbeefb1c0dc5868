"""Sizes and bandwidth the way nccl-tests reports them (nccl-tests doc/PERFORMANCE.md).

S is the size of the whole operation: the full (gathered) buffer for all_gather, the full input
for reduce_scatter and alltoall, the buffer for all_reduce and broadcast.
algbw = S / t; busbw = algbw * factor, where factor makes busbw comparable across rank counts.
"""

from __future__ import annotations

from dataclasses import dataclass

OPS = ("all_reduce", "all_gather", "reduce_scatter", "alltoall", "broadcast")
# Ops whose buffer is cut into one chunk per rank: S must be a multiple of n elements.
SPLIT_OPS = frozenset({"all_gather", "reduce_scatter", "alltoall"})


@dataclass(frozen=True)
class OpShape:
    """Element counts of one (op, size) point."""

    op: str
    count: int  # elements of S
    per_rank: int  # elements of one rank's chunk (count for unsplit ops)
    elem_size: int

    @property
    def nbytes(self) -> int:
        return self.count * self.elem_size


def op_shape(op: str, nbytes: int, elem_size: int, world_size: int) -> OpShape:
    """Round a requested size down to whole elements (and whole per-rank chunks), at least one chunk each."""
    if op not in OPS:
        raise ValueError(f"unknown collective {op!r} (known: {', '.join(OPS)})")
    unit = world_size if op in SPLIT_OPS else 1
    count = max(unit, nbytes // elem_size // unit * unit)
    return OpShape(op, count, count // unit, elem_size)


def bus_factor(op: str, world_size: int) -> float:
    n = world_size
    if op == "all_reduce":
        return 2 * (n - 1) / n
    if op in SPLIT_OPS:
        return (n - 1) / n
    if op == "broadcast":
        return 1.0
    raise ValueError(f"unknown collective {op!r} (known: {', '.join(OPS)})")


def algbw_gbps(nbytes: int, time_us: float) -> float:
    """GB/s with GB = 1e9 bytes, as nccl-tests prints."""
    return nbytes / time_us / 1e3


def busbw_gbps(op: str, nbytes: int, time_us: float, world_size: int) -> float:
    return algbw_gbps(nbytes, time_us) * bus_factor(op, world_size)


def sweep_sizes(min_bytes: int, max_bytes: int) -> list[int]:
    """min_bytes, 2*min_bytes, ... up to max_bytes inclusive (nccl-tests -b/-e/-f 2)."""
    if min_bytes < 1 or max_bytes < min_bytes:
        raise ValueError(f"need 1 <= min_bytes <= max_bytes, got {min_bytes}..{max_bytes}")
    sizes = []
    size = min_bytes
    while size <= max_bytes:
        sizes.append(size)
        size *= 2
    return sizes
