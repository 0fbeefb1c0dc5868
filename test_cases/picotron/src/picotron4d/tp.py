"""Tensor parallelism (Megatron style): column-parallel and row-parallel linears.

Column-parallel: each tp rank holds a slice of the output features; its input is "copied" into the
tp region (identity forward, all-reduce of the input gradient backward). Row-parallel: each rank
holds a slice of the input features; the partial outputs are all-reduced forward (identity
backward). A column-parallel layer followed by a row-parallel one costs one all-reduce each way.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class _CopyToRegion(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class _ReduceFromRegion(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, group):
        x = x.contiguous()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class _GatherLastDim(torch.autograd.Function):
    """All-gather along the last dimension; backward keeps this rank's slice of the gradient."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group, ctx.rank, ctx.width = group, dist.get_rank(group), x.shape[-1]
        parts = [torch.empty_like(x) for _unused in range(dist.get_world_size(group))]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=-1)

    @staticmethod
    def backward(ctx, grad):
        return grad[..., ctx.rank * ctx.width:(ctx.rank + 1) * ctx.width].contiguous(), None


def copy_to_region(x: torch.Tensor, group) -> torch.Tensor:
    return x if group is None else _CopyToRegion.apply(x, group)


def reduce_from_region(x: torch.Tensor, group) -> torch.Tensor:
    return x if group is None else _ReduceFromRegion.apply(x, group)


def gather_last_dim(x: torch.Tensor, group) -> torch.Tensor:
    return x if group is None else _GatherLastDim.apply(x, group)


def shard(weight: torch.Tensor, dim: int, rank: int, parts: int) -> torch.Tensor:
    """This rank's contiguous slice of a full weight along ``dim``."""
    size = weight.shape[dim] // parts
    return weight.narrow(dim, rank * size, size).clone()


class ColumnParallelLinear(nn.Module):
    """y_shard = x @ W[rows of this rank].T; ``gather_output`` all-gathers the full y."""

    def __init__(self, full_weight: torch.Tensor, group, rank: int, parts: int, gather_output: bool = False):
        super().__init__()
        self.group, self.gather_output = group, gather_output
        self.weight = nn.Parameter(shard(full_weight, 0, rank, parts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(copy_to_region(x, self.group), self.weight)
        return gather_last_dim(y, self.group) if self.gather_output else y


class RowParallelLinear(nn.Module):
    """y = sum over tp ranks of x_shard @ W[:, columns of this rank].T (one all-reduce)."""

    def __init__(self, full_weight: torch.Tensor, group, rank: int, parts: int):
        super().__init__()
        self.group = group
        self.weight = nn.Parameter(shard(full_weight, 1, rank, parts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reduce_from_region(F.linear(x, self.weight), self.group)
