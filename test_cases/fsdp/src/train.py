"""Llama-3 family pre-training with FSDP2 (run by torchrun). See docs/test_cases/fsdp.md."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import socket
import sys

import torch
from float8 import FLOAT8_PACKAGE, float8_request_error
from parallelize import parallelize

from dtcase.model import MODEL_CONFIGS, Transformer
from dtcase.runtime import finish, init_distributed
from dtcase.trainer import TrainSetup, base_parser, compute_dtype, parse_args, train


def float8_skip_patterns(args: argparse.Namespace) -> list[str]:
    return [p.strip() for p in args.float8_skip.split(",") if p.strip()]


def check_request(parser: argparse.ArgumentParser, args: argparse.Namespace, float8_skip: list[str]) -> None:
    """One `error:` line, before any process group, for a model or float8 request this node cannot run."""
    depth = MODEL_CONFIGS[args.model].n_layers
    if args.n_layers > depth:
        parser.error(f"--n-layers {args.n_layers}: {args.model} has {depth} blocks")
    error = float8_request_error(args.float8, args.float8_all_gather, float8_skip, args.float8_fast_accum,
                                 args.float8_from_step)
    if error:
        parser.error(error)
    if args.float8 == "none":
        return
    if importlib.util.find_spec(FLOAT8_PACKAGE) is None:
        parser.error(f"--float8 {args.float8} needs the Python package {FLOAT8_PACKAGE!r} (torchao 0.17 for "
                     f"torch 2.11), which {sys.executable} on {socket.gethostname()} cannot import; "
                     f"install it or use --float8 none")
    local = int(os.environ.get("LOCAL_RANK", "0"))  # its own GPU: no CUDA context on another rank's
    if not torch.cuda.is_available() or torch.cuda.get_device_capability(local) < (8, 9):
        parser.error(f"--float8 {args.float8} needs a CUDA GPU of compute capability 8.9 or newer "
                     f"(Ada, Hopper); this node has none")


def main() -> int:
    parser = base_parser("Llama-3 pre-training with FSDP2", __file__)
    args = parse_args(parser)
    float8_skip = float8_skip_patterns(args)
    check_request(parser, args, float8_skip)
    ctx = init_distributed()
    dtype = compute_dtype(args, ctx.device)
    torch.manual_seed(args.seed)
    margs = MODEL_CONFIGS[args.model]
    if args.n_layers:
        margs = dataclasses.replace(margs, n_layers=args.n_layers)
    if ctx.device.type == "cuda":
        # Build on the meta device, shard, then allocate and initialise only the local shards.
        with torch.device("meta"):
            model = Transformer(margs, args.seq_len)
        hooks = parallelize(model, ac=args.ac, compile_blocks=args.compile, device_type="cuda",
                            world_size=ctx.world_size, param_dtype=dtype, ac_every=args.ac_every,
                            float8=args.float8, float8_all_gather=args.float8_all_gather,
                            float8_skip=float8_skip, float8_fast_accum=args.float8_fast_accum,
                            float8_from_step=args.float8_from_step, reshard=args.reshard_after_forward)
        model.to_empty(device=ctx.device)
        model.init_weights()
    else:
        # CPU: initialise the full model identically on every rank, then shard it.
        model = Transformer(margs, args.seq_len)
        model.init_weights()
        hooks = parallelize(model, ac=args.ac, compile_blocks=args.compile, device_type="cpu",
                            world_size=ctx.world_size, param_dtype=dtype, ac_every=args.ac_every,
                            reshard=args.reshard_after_forward)
    return train(TrainSetup(args=args, ctx=ctx, model=model, base=model, dtype=dtype,
                            before_step=hooks.before_step, after_optimizer_step=hooks.after_optimizer_step,
                            facts={"parallelism": "fsdp2", "ac": args.ac, "ac_every": args.ac_every,
                                   "float8": args.float8, "float8_all_gather": args.float8_all_gather,
                                   "float8_skip": float8_skip, "float8_fast_accum": args.float8_fast_accum,
                                   "float8_from_step": args.float8_from_step,
                                   "reshard_after_forward": args.reshard_after_forward}))


if __name__ == "__main__":
    finish(main())
