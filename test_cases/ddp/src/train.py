"""Data-parallel training of a small Llama-style model with DistributedDataParallel (run by torchrun).

Model, data, schedule, metrics and checkpoints are the shared ones in dtcase; only the wrapping
differs from the fsdp case. See docs/test_cases/ddp.md.
"""

from __future__ import annotations

import contextlib
import functools
import inspect

import torch
from torch.nn.parallel import DistributedDataParallel

from dtcase.model import MODEL_CONFIGS, Transformer
from dtcase.runtime import finish, init_distributed
from dtcase.trainer import TrainSetup, base_parser, compute_dtype, parse_args, train


def main() -> int:
    args = parse_args(base_parser("Data-parallel training with DistributedDataParallel", __file__))
    ctx = init_distributed()
    dtype = compute_dtype(args, ctx.device)
    torch.manual_seed(args.seed)
    # Same initial weights on every rank (same seed); DDP also broadcasts rank 0's at wrap time.
    base = Transformer(MODEL_CONFIGS[args.model], args.seq_len)
    base.init_weights()
    base.to(ctx.device)
    if args.compile:
        base.compile()
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # The only buffer (RoPE table) is computed identically on every rank: no per-step broadcast.
    # torch 2.13 renamed the switch (its old name warns); older torch only knows broadcast_buffers.
    no_sync = ({"forward_sync_buffers": False}
               if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
               else {"broadcast_buffers": False})
    model = DistributedDataParallel(base, device_ids=device_ids, **no_sync)
    # Parameters stay fp32 under DDP; bf16 compute comes from autocast.
    forward_context = (functools.partial(torch.autocast, "cuda", dtype=torch.bfloat16)
                       if dtype == torch.bfloat16 else contextlib.nullcontext)
    return train(TrainSetup(args=args, ctx=ctx, model=model, base=base, dtype=dtype,
                            forward_context=forward_context, facts={"parallelism": "ddp"}))


if __name__ == "__main__":
    finish(main())
