"""The train loop, CLI and metrics shared by the project's trainers (fsdp, ddp).

A trainer builds and wraps its model, then calls :func:`train`; everything else (data, schedule,
optimizer, checkpoints, metric events, exit codes) lives here once.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
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
from dtcase.params import manifest_parser
from dtcase.runtime import DistContext, peak_mem_gib, peak_reserved_gib, select_sdpa_backend
from dtcase.schedule import lr_at
from dtcase.torch_profiler import StepProfiler

EXIT_NON_FINITE = 3
# Python's collector pauses whichever rank crosses its allocation threshold, and every other rank
# waits for it at the next collective (seen: a 0.35 s step a dozen steps after float8's recompile).
# The loop collects instead, generation 1, every GC_EVERY steps: the same step on every rank.
GC_EVERY = 50


def base_parser(description: str, entry_file: str) -> argparse.ArgumentParser:
    """The trainer's command line: its case's manifest parameters (dtcase.params), declared once."""
    return manifest_parser(entry_file, description)


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate; bad input exits 2 with one `error:` line before any process group exists."""
    args = parser.parse_args(argv)
    # Types, choices and bounds come from the manifest (the parser checks them); relations between
    # parameters are the launcher's. What is left: what only this process can know.
    if not math.isfinite(args.lr):
        parser.error(f"--lr must be a finite number, got {args.lr}")
    if (args.checkpoint_every or args.resume) and not args.checkpoint_dir:
        parser.error("--checkpoint-every and --resume need --checkpoint-dir")
    if args.dtype == "bf16" and not torch.cuda.is_available():
        parser.error("--dtype bf16 needs a CUDA device; use fp32 or auto on CPU")
    if args.dataset == "corpus" and MODEL_CONFIGS[args.model].vocab_size < 256:
        parser.error(f"--dataset corpus needs a vocabulary of at least 256 byte tokens ({args.model})")
    if args.dataset == "staged":
        check_staged(parser, args)
    return args


def check_staged(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Staged data that cannot be read (no index, a shard missing, truncated or altered, too large a
    vocabulary) is one `error:` line naming the file, before any process group or step."""
    from dtcase.staged import StagedDataError, StagedTokens

    try:
        args.staged = StagedTokens(args.data_path, seq_len=args.seq_len,
                                   vocab_size=MODEL_CONFIGS[args.model].vocab_size, verify=args.data_verify)
    except StagedDataError as exc:
        parser.error(str(exc))


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


@contextlib.contextmanager
def scheduled_gc():
    """Automatic collection off for the run (the loop collects on its schedule), restored after."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class TrainSetup:
    """What a trainer hands to :func:`train`."""

    args: argparse.Namespace
    ctx: DistContext
    model: nn.Module                # wrapped (FSDP2 / DDP / plain)
    base: Transformer               # the unwrapped module, for counts and config
    dtype: torch.dtype
    forward_context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    before_step: Callable[[int], None] | None = None          # e.g. float8 switched on after warm-up
    after_optimizer_step: Callable[[], None] | None = None    # e.g. float8 scale precomputation
    facts: dict = field(default_factory=dict)   # case-specific start-event fields


def train(setup: TrainSetup) -> int:
    """Run the loop; returns the process exit code (0 ok, EXIT_NON_FINITE on a non-finite loss)."""
    with scheduled_gc():
        return _train(setup)


def _train(setup: TrainSetup) -> int:
    args, ctx, model = setup.args, setup.ctx, setup.model
    margs = setup.base.args
    wall0 = time.perf_counter()
    staged = vars(args).pop("staged", None)  # the data check_staged opened (not a config value)
    select_sdpa_backend(args.sdpa_backend)  # before the first forward, which is when compile traces
    metrics = MetricsWriter(args.output_dir, ctx.rank, ctx.world_size)
    total_params, non_embedding = param_counts(setup.base)
    fpt = flops_per_token(non_embedding, margs.n_layers, margs.n_heads, margs.head_dim, args.seq_len)
    device_name, peak, peak_source = device_peak(ctx.device)
    metrics.write("start", device=ctx.device.type, device_name=device_name, peak_tflops=peak,
                  peak_tflops_source=peak_source, config=vars(args), model_args=margs.as_dict(),
                  dtype=str(setup.dtype).removeprefix("torch."), params=total_params,
                  non_embedding_params=non_embedding, flops_per_token=fpt, **setup.facts,
                  **({"fake_collectives": True} if ctx.fake_collectives else {}),
                  **({"data": staged.describe()} if staged is not None else {}))

    optimizer = build_optimizer(model, args.lr, ctx.device)
    data = TokenBatches(args.dataset, seq_len=args.seq_len, local_batch=args.local_batch_size,
                        rank=ctx.rank, world_size=ctx.world_size, vocab_size=margs.vocab_size,
                        total_steps=args.steps, seed=args.seed, data_path=getattr(args, "data_path", ""),
                        verify=getattr(args, "data_verify", "sha256"), staged=staged)
    done = position = 0  # position: global samples consumed (the data position, saved in checkpoints)
    found = checkpoint.latest(args.checkpoint_dir) if args.resume else None
    if found:
        done, saved, seconds = checkpoint.load_train_state(found[1], model, optimizer)
        # A checkpoint from before positions were saved: its run had this world size from step 1.
        position = saved if saved is not None else done * data.per_step
        metrics.write("checkpoint", step=done, action="load", seconds=round(seconds, 3), path=str(found[1]),
                      data_position=position)

    # Compiled, the fp32 upcast fuses into the softmax: the (tokens x vocab) fp32 logits and their
    # gradient are never materialised (8 GiB for llama3-8b at seq 8192).
    loss_fn = torch.compile(cross_entropy) if args.compile else cross_entropy
    profiler = StepProfiler(args.torch_profiler, rank=ctx.rank, total_steps=args.steps, device=ctx.device,
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
        if setup.before_step is not None:
            setup.before_step(step)
        inputs, labels = (t.to(ctx.device, non_blocking=True) for t in data.batch_at(position))
        position += data.per_step
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
        if step % GC_EVERY == 0:
            gc.collect(1)

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
            # Simulated ranks compute on weights no collective filled: their loss means nothing.
            if not math.isfinite(global_loss) and not ctx.fake_collectives:
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
                path, _unused = saver.save(args.checkpoint_dir, step, model, optimizer, samples=position)
                seconds = time.perf_counter() - t0
            else:
                path, seconds = checkpoint.save(args.checkpoint_dir, step, model, optimizer, samples=position)
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
