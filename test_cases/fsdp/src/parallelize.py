"""float8 linears (float8.py), activation checkpointing, torch.compile and FSDP2 for the Llama model
(applied in that order)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
from float8 import StepHooks, apply_float8, float8_gather_switch_error
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

from dtcase.model import Transformer

AC_MODES = ("none", "selective", "full")

# Selective AC (torchtitan's "op" policy): inside each block keep the outputs of attention kernels,
# reductions and every other matmul; recompute the rest (cheap pointwise ops, half the matmuls).
_SAVE_OPS = {
    torch.ops.aten.mm.default,
    torch.ops.aten.max.default,
    torch.ops.aten._scaled_dot_product_efficient_attention.default,
    torch.ops.aten._scaled_dot_product_flash_attention.default,
    torch.ops.aten._scaled_dot_product_cudnn_attention.default,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default,
    torch.ops._c10d_functional.reduce_scatter_tensor.default,
}


def _selective_context():
    counts: dict[str, int] = defaultdict(int)

    def policy(ctx, func, *args, **kwargs):
        mode = "recompute" if ctx.is_recompute else "forward"
        if func == torch.ops.aten.mm.default:
            counts[mode] += 1
        save = func in _SAVE_OPS and not (func == torch.ops.aten.mm.default and counts[mode] % 2 == 0)
        return CheckpointPolicy.MUST_SAVE if save else CheckpointPolicy.PREFER_RECOMPUTE

    return create_selective_checkpoint_contexts(policy)


def apply_ac(model: Transformer, mode: str, every: int = 1) -> None:
    """Wrap every ``every``-th transformer block (blocks 0, every, 2*every, ...): ``full`` recomputes
    the whole block in backward, ``selective`` follows the op policy above; ``none`` leaves the model
    alone. Unwrapped blocks keep all their activations: faster, at the cost of memory."""
    if mode not in AC_MODES:
        raise ValueError(f"unknown activation checkpointing mode {mode!r}: expected one of {AC_MODES}")
    if every < 1:
        raise ValueError(f"activation checkpointing interval must be >= 1, got {every}")
    if mode == "none":
        return
    extra = {"context_fn": _selective_context} if mode == "selective" else {}
    for i, (name, block) in enumerate(list(model.layers.named_children())):
        if i % every == 0:
            model.layers.register_module(name, checkpoint_wrapper(block, preserve_rng_state=False, **extra))


def apply_compile(model: Transformer) -> None:
    """Compile each block in place (names, hence checkpoints, are unchanged); blocks share one graph."""
    for block in model.layers.children():
        block.compile(fullgraph=True)


def apply_fsdp(model: Transformer, device_type: str, world_size: int, param_dtype: torch.dtype,
               reshard: bool = True) -> None:
    """FSDP2: one shard group per block, one for the embedding, one for norm + head, then the root.
    ``reshard=False`` keeps every block's gathered weights from forward to backward: no second
    all-gather (nor, with float8 all-gather, a second float8 cast of the weights), for the memory of
    one unsharded copy of the blocks."""
    mesh = init_device_mesh(device_type, (world_size,))
    # cast_forward_inputs=False: activations are already in param_dtype (the embedding's output), and
    # the fp32 RoPE table that every block receives must stay fp32 (precision, and no cast per block).
    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32, cast_forward_inputs=False)
    blocks = list(model.layers.children())
    fully_shard(model.tok_embeddings, mesh=mesh, mp_policy=mp)
    for i, block in enumerate(blocks):
        # The last block's backward starts right after forward: keeping it gathered saves an all-gather.
        fully_shard(block, mesh=mesh, mp_policy=mp, reshard_after_forward=reshard and i < len(blocks) - 1)
    fully_shard([model.norm, model.output], mesh=mesh, mp_policy=mp, reshard_after_forward=False)
    fully_shard(model, mesh=mesh, mp_policy=mp)


def parallelize(model: Transformer, *, ac: str, compile_blocks: bool, device_type: str, world_size: int,
                param_dtype: torch.dtype, ac_every: int = 1, float8: str = "none",
                float8_all_gather: bool = False, float8_skip: Sequence[str] = (),
                float8_fast_accum: bool = True, float8_from_step: int = 1, reshard: bool = True) -> StepHooks:
    """Returns what the training loop must run around each step (float8's), possibly nothing."""
    hooks = apply_float8(model, float8, float8_all_gather, float8_skip, float8_fast_accum, float8_from_step)
    apply_ac(model, ac, ac_every)
    if compile_blocks:
        apply_compile(model)
    apply_fsdp(model, device_type, world_size, param_dtype, reshard)
    if float8_all_gather and float8_from_step > 1 and (error := float8_gather_switch_error(model)):
        raise RuntimeError(error)
    return hooks
