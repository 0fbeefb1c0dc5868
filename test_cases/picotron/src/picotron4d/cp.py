"""Context parallelism: each cp rank holds a contiguous chunk of the sequence.

Queries stay local; keys and values are all-gathered over the cp group so every query sees the
whole (causally masked) prefix. Backward sums the key/value gradients of all cp ranks and keeps this
rank's chunk. Simpler than ring attention (K/V of the whole sequence are held at once) and exact.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class _GatherSeq(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, group):
        ctx.group, ctx.rank, ctx.chunk = group, dist.get_rank(group), x.shape[1]
        parts = [torch.empty_like(x) for _unused in range(dist.get_world_size(group))]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=1)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        return grad[:, ctx.rank * ctx.chunk:(ctx.rank + 1) * ctx.chunk].contiguous(), None


def gather_sequence(x: torch.Tensor, group) -> torch.Tensor:
    """(batch, chunk, ...) on each cp rank -> (batch, cp * chunk, ...) everywhere."""
    return x if group is None else _GatherSeq.apply(x, group)


def causal_mask(chunk: int, cp_rank: int, cp_size: int, device: torch.device) -> torch.Tensor:
    """(chunk, cp_size * chunk) boolean mask: query at global position p sees keys at positions <= p."""
    q_pos = cp_rank * chunk + torch.arange(chunk, device=device)
    k_pos = torch.arange(cp_size * chunk, device=device)
    return k_pos[None, :] <= q_pos[:, None]
