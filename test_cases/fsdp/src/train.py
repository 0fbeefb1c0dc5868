"""Llama-3 family pre-training with FSDP2 (run by torchrun). See docs/test_cases/fsdp.md."""

from __future__ import annotations

import torch
from parallelize import AC_MODES, parallelize

from dtcase.model import MODEL_CONFIGS, Transformer
from dtcase.runtime import finish, init_distributed
from dtcase.trainer import TrainSetup, base_parser, compute_dtype, parse_args, train


def main() -> int:
    parser = base_parser("Llama-3 pre-training with FSDP2")
    parser.add_argument("--ac", default="none", choices=AC_MODES,
                        help="activation checkpointing per block: none | selective (op policy) | full")
    parser.add_argument("--ac-every", type=int, default=1,
                        help="apply --ac to every Nth block only (1: all); the others keep their activations")
    args = parse_args(parser)
    if args.ac_every < 1:
        parser.error(f"--ac-every must be >= 1, got {args.ac_every}")
    ctx = init_distributed()
    dtype = compute_dtype(args, ctx.device)
    torch.manual_seed(args.seed)
    margs = MODEL_CONFIGS[args.model]
    if ctx.device.type == "cuda":
        # Build on the meta device, shard, then allocate and initialise only the local shards.
        with torch.device("meta"):
            model = Transformer(margs, args.seq_len)
        parallelize(model, ac=args.ac, compile_blocks=args.compile, device_type="cuda",
                    world_size=ctx.world_size, param_dtype=dtype, ac_every=args.ac_every)
        model.to_empty(device=ctx.device)
        model.init_weights()
    else:
        # CPU: initialise the full model identically on every rank, then shard it.
        model = Transformer(margs, args.seq_len)
        model.init_weights()
        parallelize(model, ac=args.ac, compile_blocks=args.compile, device_type="cpu",
                    world_size=ctx.world_size, param_dtype=dtype, ac_every=args.ac_every)
    return train(TrainSetup(args=args, ctx=ctx, model=model, base=model, dtype=dtype,
                            facts={"parallelism": "fsdp2", "ac": args.ac,
                                   "ac_every": args.ac_every}))


if __name__ == "__main__":
    finish(main())
