"""One training step: the AFAB pipeline schedule and the data-parallel gradient all-reduce.

AFAB (all forward, all backward): every stage runs the forward pass of all micro-batches, sending
its output to the next stage, then the backward passes, sending input gradients to the previous
stage. Sends go downstream in the forward phase and upstream in the backward phase only, so blocking
send/recv cannot deadlock. Each micro-batch's loss is its summed cross-entropy over the global token
count, so the gradients summed over dp and cp ranks are those of the global mean loss.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from picotron4d.layout import Groups


def afab_step(stage: nn.Module, micro: list[tuple[torch.Tensor, torch.Tensor]], groups: Groups, *,
              hidden_shape: tuple[int, ...], global_tokens: int, device: torch.device) -> float:
    """Forward and backward of all micro-batches; returns this rank's share of the global loss."""
    inputs, outputs, loss_sum = [], [], 0.0
    for tokens, labels in micro:
        if groups.first_stage:
            x = tokens.to(device)
        else:
            x = torch.empty(hidden_shape, device=device)
            dist.recv(x, src=groups.prev_stage)
            x.requires_grad_(True)
        y = stage(x)
        if groups.last_stage:
            ce = F.cross_entropy(y.float().flatten(0, 1), labels.to(device).flatten(), reduction="sum")
            y = ce / global_tokens
            loss_sum += y.item()
        else:
            dist.send(y.detach().contiguous(), dst=groups.next_stage)
        inputs.append(x)
        outputs.append(y)
    for x, y in zip(inputs, outputs, strict=True):
        if groups.last_stage:
            y.backward()
        else:
            grad = torch.empty_like(y)
            dist.recv(grad, src=groups.next_stage)
            y.backward(grad)
        if not groups.first_stage:
            dist.send(x.grad.contiguous(), dst=groups.prev_stage)
    return loss_sum


def all_reduce_gradients(stage: nn.Module, groups: Groups) -> None:
    """Sum gradients over the dp and cp groups (weights are replicated on both), one bucket each."""
    grads = [p.grad for p in stage.parameters() if p.grad is not None]
    if not grads:
        return
    reduce_over = [g for g in (groups.groups["dp"], groups.groups["cp"]) if g is not None]
    if not reduce_over:
        return
    flat = torch.cat([g.flatten() for g in grads])
    for group in reduce_over:
        dist.all_reduce(flat, group=group)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def global_loss(local_share: float, groups: Groups, device: torch.device) -> float:
    """The step's global mean loss on every rank: each (dp, cp) rank of the last stage adds its
    share once (tp rank 0 only, since tp ranks hold the same loss)."""
    if groups.layout.size == 1:
        return local_share
    share = local_share if groups.last_stage and groups.coord["tp"] == 0 else 0.0
    t = torch.tensor([share], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())
