"""The train loop, CLI and metrics shared by the project's trainers (fsdp, ddp).

A trainer builds and wraps its model, then calls :func:`train`; everything else (data, schedule,
optimizer, checkpoints, metric events, exit codes) lives here once.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from dtcase import checkpoint
from dtcase.data import TokenBatches
from dtcase.flops import device_peak, flops_per_token, mfu
from dtcase.metrics import MetricsWriter
from dtcase.model import MODEL_CONFIGS, Transformer, param_counts
from dtcase.profile import PROFILED_STEPS, StepProfiler
from dtcase.runtime import SDPA_BACKENDS, DistContext, peak_mem_gib, peak_reserved_gib, select_sdpa_backend
from dtcase.schedule import lr_at

EXIT_NON_FINITE = 3


def base_parser(description: str) -> argparse.ArgumentParser:
    """Parameters every project trainer takes (`--name-with-dashes`, booleans as --x/--no-x)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", default="tiny", choices=sorted(MODEL_CONFIGS))
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--local-batch-size", type=int, default=8, help="sequences per rank per step")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--grad-clip", type=float, default=1.0, help="max global grad norm (0: no clipping)")
    p.add_argument("--dataset", default="corpus", choices=["corpus", "synthetic"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp32"],
                   help="auto: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--checkpoint-every", type=int, default=0, help="save every K steps (0: never)")
    p.add_argument("--checkpoint-dir", default=None, help="shared by all nodes")
    p.add_argument("--async-checkpoint", default="none", choices=checkpoint.ASYNC_MODES,
                   help="write checkpoints in the background (thread or process) while training goes on")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=False,
                   help="continue from the latest complete checkpoint in --checkpoint-dir, if any")
    p.add_argument("--output-dir", default="out", help="node-local: metrics-rank<R>.jsonl")
    p.add_argument("--log-every", type=int, default=1, help="write a step event every N steps")
    p.add_argument("--sdpa-backend", default="auto", choices=sorted(SDPA_BACKENDS),
                   help="attention kernel on CUDA (auto: PyTorch's choice)")
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=False,
                   help=f"rank 0 profiles the last {PROFILED_STEPS} steps into profile-rank0.json")
    return p


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate; bad input exits 2 with one `error:` line before any process group exists."""
    args = parser.parse_args(argv)
    positive = {"--seq-len": args.seq_len, "--local-batch-size": args.local_batch_size,
                "--steps": args.steps, "--log-every": args.log_every}
    for flag, value in positive.items():
        if value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    if not 0 <= args.warmup_steps <= args.steps:
        parser.error(f"--warmup-steps must be between 0 and --steps ({args.steps}), got {args.warmup_steps}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        parser.error(f"--lr must be a positive number, got {args.lr}")
    if args.grad_clip < 0:
        parser.error(f"--grad-clip must be >= 0, got {args.grad_clip}")
    if args.checkpoint_every < 0:
        parser.error(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    if (args.checkpoint_every or args.resume) and not args.checkpoint_dir:
        parser.error("--checkpoint-every and --resume need --checkpoint-dir")
    if args.dtype == "bf16" and not torch.cuda.is_available():
        parser.error("--dtype bf16 needs a CUDA device; use fp32 or auto on CPU")
    if args.dataset == "corpus" and MODEL_CONFIGS[args.model].vocab_size < 256:
        parser.error(f"--dataset corpus needs a vocabulary of at least 256 byte tokens ({args.model})")
    return args


def compute_dtype(args: argparse.Namespace, device: torch.device) -> torch.dtype:
    if args.dtype == "bf16" or (args.dtype == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten())


def build_optimizer(model: nn.Module, lr: float, device: torch.device) -> torch.optim.Optimizer:
    # fused kernels on CUDA; foreach (multi-tensor) on CPU.
    impl = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, **impl)


def global_mean(value: torch.Tensor, world_size: int) -> float:
    # gloo has no ReduceOp.AVG: sum, then divide.
    total = value.detach().float().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.item() / world_size


def _grad_norm(model: nn.Module, max_norm: float) -> torch.Tensor:
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm if max_norm > 0 else math.inf,
                                          foreach=True)
    # FSDP2 parameters are DTensors: the norm comes back sharded-then-reduced; materialise it.
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


def _report_complete(metrics: MetricsWriter, done: tuple[int, float] | None, at_step: int) -> None:
    """An asynchronous save finished (and is marked complete) once step ``at_step`` had run."""
    if done is not None:
        metrics.write("checkpoint", step=done[0], action="complete", seconds=round(done[1], 3),
                      at_step=at_step)


@dataclass
class TrainSetup:
    """What a trainer hands to :func:`train`."""

    args: argparse.Namespace
    ctx: DistContext
    model: nn.Module                # wrapped (FSDP2 / DDP / plain)
    base: Transformer               # the unwrapped module, for counts and config
    dtype: torch.dtype
    forward_context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    after_optimizer_step: Callable[[], None] | None = None    # e.g. float8 scale precomputation
    facts: dict = field(default_factory=dict)   # case-specific start-event fields


def train(setup: TrainSetup) -> int:
    """Run the loop; returns the process exit code (0 ok, EXIT_NON_FINITE on a non-finite loss)."""
    args, ctx, model = setup.args, setup.ctx, setup.model
    margs = setup.base.args
    wall0 = time.perf_counter()
    select_sdpa_backend(args.sdpa_backend)  # before the first forward, which is when compile traces
    metrics = MetricsWriter(args.output_dir, ctx.rank, ctx.world_size)
    total_params, non_embedding = param_counts(setup.base)
    fpt = flops_per_token(non_embedding, margs.n_layers, margs.n_heads, margs.head_dim, args.seq_len)
    device_name, peak, peak_source = device_peak(ctx.device)
    metrics.write("start", device=ctx.device.type, device_name=device_name, peak_tflops=peak,
                  peak_tflops_source=peak_source, config=vars(args), model_args=margs.as_dict(),
                  dtype=str(setup.dtype).removeprefix("torch."), params=total_params,
                  non_embedding_params=non_embedding, flops_per_token=fpt, **setup.facts)

    optimizer = build_optimizer(model, args.lr, ctx.device)
    data = TokenBatches(args.dataset, seq_len=args.seq_len, local_batch=args.local_batch_size,
                        rank=ctx.rank, world_size=ctx.world_size, vocab_size=margs.vocab_size,
                        total_steps=args.steps, seed=args.seed)
    done = 0
    found = checkpoint.latest(args.checkpoint_dir) if args.resume else None
    if found:
        done, seconds = checkpoint.load(found[1], model, optimizer)
        metrics.write("checkpoint", step=done, action="load", seconds=round(seconds, 3), path=str(found[1]))

    # Compiled, the fp32 upcast fuses into the softmax: the (tokens x vocab) fp32 logits and their
    # gradient are never materialised (8 GiB for llama3-8b at seq 8192).
    loss_fn = torch.compile(cross_entropy) if args.compile else cross_entropy
    profiler = StepProfiler(args.profile, rank=ctx.rank, total_steps=args.steps, device=ctx.device,
                            output_dir=args.output_dir)
    saver = (checkpoint.AsyncSaver(args.async_checkpoint, ctx.device)
             if args.checkpoint_every and args.async_checkpoint != "none" else None)
    tokens_per_step = args.local_batch_size * args.seq_len
    status, code, last = "ok", 0, done
    t_last, since_log = time.perf_counter(), 0
    for step in range(done + 1, args.steps + 1):
        lr = lr_at(step, peak_lr=args.lr, warmup_steps=args.warmup_steps, total_steps=args.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        profiler.before(step)
        inputs, labels = (t.to(ctx.device, non_blocking=True) for t in data.batch(step))
        with setup.forward_context():
            logits = model(inputs)
        loss = loss_fn(logits, labels)
        del logits
        loss.backward()
        grad_norm = _grad_norm(model, args.grad_clip)
        optimizer.step()
        if setup.after_optimizer_step is not None:
            setup.after_optimizer_step()
        optimizer.zero_grad(set_to_none=True)
        profiler.after(step)
        since_log, last = since_log + 1, step

        if step % args.log_every == 0 or step == args.steps:
            global_loss = global_mean(loss, ctx.world_size)  # also a sync point for the timing below
            if ctx.device.type == "cuda":
                torch.cuda.synchronize(ctx.device)
            now = time.perf_counter()
            step_time = (now - t_last) / since_log
            t_last, since_log = now, 0
            tps = tokens_per_step / step_time
            tflops = tps * fpt / 1e12
            reserved = peak_reserved_gib(ctx.device)
            metrics.write("step", step=step, loss=global_loss, local_loss=loss.item(), lr=lr,
                          step_time_s=round(step_time, 6), tokens_per_s_per_device=round(tps, 2),
                          tflops_per_device=tflops, mfu=mfu(tflops, peak),
                          peak_mem_gib=round(peak_mem_gib(ctx.device), 4), grad_norm=grad_norm.item(),
                          **({"peak_reserved_gib": round(reserved, 4)} if reserved is not None else {}),
                          **({"profiled": True} if profiler.profiled(step) else {}))
            if not math.isfinite(global_loss):
                status, code = "non_finite_loss", EXIT_NON_FINITE
                break
        if saver is not None:
            _report_complete(metrics, saver.poll(), step)
            if step == done + 1:  # the optimizer state exists now: size the host copy once
                seconds = saver.prepare(model, optimizer)
                metrics.write("checkpoint", step=step, action="prepare", seconds=round(seconds, 3))
                t_last, since_log = time.perf_counter(), 0
        if args.checkpoint_every and step % args.checkpoint_every == 0:
            if saver is not None:
                t0 = time.perf_counter()
                _report_complete(metrics, saver.wait(), step)  # one save in flight at most
                if ctx.device.type == "cuda":
                    torch.cuda.synchronize(ctx.device)  # the optimizer's writes land before the copy
                path, _ = saver.save(args.checkpoint_dir, step, model, optimizer)
                seconds = time.perf_counter() - t0
            else:
                path, seconds = checkpoint.save(args.checkpoint_dir, step, model, optimizer)
            # seconds: how long training stood still (for an asynchronous save, the copy to host memory).
            metrics.write("checkpoint", step=step, action="save", seconds=round(seconds, 3), path=str(path),
                          mode=args.async_checkpoint if saver is not None else "sync")
            # Checkpoint time is reported on its own, not as step time.
            t_last, since_log = time.perf_counter(), 0

    if saver is not None:  # the last save must be on disk (and marked) before the process exits
        _report_complete(metrics, saver.close(), last)
    metrics.write("end", status=status, steps=last, steps_run=last - done,
                  wall_s=round(time.perf_counter() - wall0, 3))
    metrics.close()
    return code
