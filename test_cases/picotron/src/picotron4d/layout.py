"""The 4D layout: sizes, the one-line checks a bad request fails with, and the process groups."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

AXES = ("dp", "pp", "cp", "tp")  # tp innermost: its ranks are neighbours (one node where possible)


class LayoutError(ValueError):
    """A layout that cannot run; str() is the one-line message."""


@dataclass(frozen=True)
class Layout:
    dp: int = 1
    pp: int = 1
    cp: int = 1
    tp: int = 1

    @property
    def size(self) -> int:
        return self.dp * self.pp * self.cp * self.tp

    def describe(self) -> str:
        return " x ".join(f"{axis}{getattr(self, axis)}" for axis in AXES)


def check_layout(layout: Layout, *, world_size: int, n_layers: int, n_heads: int, n_kv_heads: int,
                 ffn_dim: int, vocab_size: int, seq_len: int, global_batch: int, micro_batches: int) -> None:
    """Raise LayoutError (one line) unless the sizes fit the world and divide the model and batch."""
    if layout.size != world_size:
        raise LayoutError(f"dp*pp*cp*tp = {layout.describe()} = {layout.size} must equal the world size "
                          f"{world_size} (nodes x procs per node)")
    rules = [
        (n_layers, layout.pp, "the model's layers", "pp"),
        (n_heads, layout.tp, "the attention heads", "tp"),
        (n_kv_heads, layout.tp, "the key/value heads", "tp"),
        (ffn_dim, layout.tp, "the feed-forward width", "tp"),
        (vocab_size, layout.tp, "the vocabulary", "tp"),
        (seq_len, layout.cp, "seq_len", "cp"),
        (global_batch, layout.dp * micro_batches, "global_batch_size", "dp x micro_batches"),
    ]
    for total, parts, what, axis in rules:
        if total % parts:
            raise LayoutError(f"{what} ({total}) must divide evenly by {axis} ({parts})")


@dataclass
class Groups:
    """This rank's coordinates and process groups on the 4D mesh (None where the axis has size 1)."""

    layout: Layout
    coord: dict[str, int]
    groups: dict[str, dist.ProcessGroup | None]
    prev_stage: int | None  # global rank of the previous / next pipeline stage (same dp, cp, tp)
    next_stage: int | None

    def size(self, axis: str) -> int:
        return getattr(self.layout, axis)

    @property
    def first_stage(self) -> bool:
        return self.coord["pp"] == 0

    @property
    def last_stage(self) -> bool:
        return self.coord["pp"] == self.layout.pp - 1


def build_groups(layout: Layout, device: torch.device) -> Groups:
    """Process groups from init_device_mesh over (dp, pp, cp, tp); call on every rank."""
    if layout.size == 1:
        return Groups(layout, dict.fromkeys(AXES, 0), dict.fromkeys(AXES), None, None)
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(device.type, tuple(getattr(layout, a) for a in AXES), mesh_dim_names=AXES)
    coord = {a: mesh.get_local_rank(a) for a in AXES}
    groups = {a: mesh.get_group(a) if getattr(layout, a) > 1 else None for a in AXES}
    prev_stage = next_stage = None
    if groups["pp"] is not None:
        if coord["pp"] > 0:
            prev_stage = dist.get_global_rank(groups["pp"], coord["pp"] - 1)
        if coord["pp"] < layout.pp - 1:
            next_stage = dist.get_global_rank(groups["pp"], coord["pp"] + 1)
    return Groups(layout, coord, groups, prev_stage, next_stage)
