"""Picotron-style 4D-parallel training of a tiny Llama (run by torchrun, one process per rank).

data x pipeline x context x tensor parallelism written on torch.distributed primitives (see the
picotron4d package); gloo on CPU, NCCL on CUDA. Writes the common metrics events. See
docs/test_cases/picotron.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from picotron4d.data import GlobalBatches
from picotron4d.layout import Layout, LayoutError, build_groups, check_layout
from picotron4d.model import MODEL_CONFIGS, Stage
from picotron4d.pipeline import afab_step, all_reduce_gradients, global_loss

from dtcase.metrics import MetricsWriter
from dtcase.params import manifest_parser
from dtcase.runtime import finish, init_distributed, peak_mem_gib
from dtcase.staged import open_staged


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The manifest's parameters (dtcase.params): the layout, model and schedule, declared once."""
    return manifest_parser(__file__, __doc__.splitlines()[0]).parse_args(argv)


def check(args: argparse.Namespace, world_size: int) -> Layout:
    layout = Layout(dp=args.dp, pp=args.pp, cp=args.cp, tp=args.tp)
    cfg = MODEL_CONFIGS[args.model]
    check_layout(layout, world_size=world_size, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                 n_kv_heads=cfg.n_kv_heads, ffn_dim=cfg.ffn_dim, vocab_size=cfg.vocab_size,
                 seq_len=args.seq_len, global_batch=args.global_batch_size, micro_batches=args.micro_batches)
    return layout


def main() -> int:
    args = parse_args()
    try:
        # Before joining the process group: a bad layout fails on every rank at once, in one line.
        layout = check(args, int(os.environ.get("WORLD_SIZE", "1")))
    except LayoutError as exc:
        print(f"picotron: {exc}", file=sys.stderr, flush=True)
        return 2
    cfg = MODEL_CONFIGS[args.model]
    # Staged data that cannot be read stops every rank here, in one line naming the file.
    staged = open_staged(args, vocab_size=cfg.vocab_size, prog="picotron")
    ctx = init_distributed()
    groups = build_groups(layout, ctx.device)
    stage = Stage(cfg, args.seq_len, groups, args.seed).to(ctx.device)
    optimizer = torch.optim.AdamW(stage.parameters(), lr=args.lr, weight_decay=0.0)
    data = GlobalBatches(seq_len=args.seq_len, global_batch=args.global_batch_size, steps=args.steps,
                         staged=staged)
    mbs = args.global_batch_size // (layout.dp * args.micro_batches)
    hidden_shape = (mbs, args.seq_len // layout.cp, cfg.dim)
    global_tokens = args.global_batch_size * args.seq_len
    n_params = sum(p.numel() for p in stage.parameters())
    metrics = MetricsWriter(args.output_dir, ctx.rank, ctx.world_size)
    metrics.write("start", device=ctx.device.type,
                  device_name=torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else "cpu",
                  peak_tflops=None, config={**vars(args), "model_config": cfg.as_dict()},
                  parallelism=layout.describe(), coord=groups.coord, stage_layers=stage.layer_ids,
                  stage_params=n_params, schedule="afab",
                  **({"data": staged.describe()} if staged is not None else {}))
    started = time.time()
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        micro = data.rank_micro_batches(step, dp=layout.dp, dp_rank=groups.coord["dp"], cp=layout.cp,
                                        cp_rank=groups.coord["cp"], micro_batches=args.micro_batches)
        optimizer.zero_grad(set_to_none=True)
        share = afab_step(stage, micro, groups, hidden_shape=hidden_shape, global_tokens=global_tokens,
                          device=ctx.device)
        all_reduce_gradients(stage, groups)
        optimizer.step()
        loss = global_loss(share, groups, ctx.device)
        dt = time.perf_counter() - t0
        if step % args.log_every == 0 or step == args.steps:
            metrics.write("step", step=step, loss=loss, lr=args.lr, step_time_s=round(dt, 4),
                          tokens_per_s_per_device=global_tokens / dt / ctx.world_size,
                          peak_mem_gib=peak_mem_gib(ctx.device))
    metrics.write("end", status="ok", steps=args.steps, wall_s=round(time.time() - started, 3))
    metrics.close()
    return 0


if __name__ == "__main__":
    finish(main())
