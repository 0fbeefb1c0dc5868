"""Collective bus-bandwidth sweep, run by torchrun with one process per GPU (or per CPU rank).

Measures all_reduce, all_gather, reduce_scatter, alltoall and broadcast over a power-of-two size
sweep the way nccl-tests does, checks one result per point, and writes `collective` JSON lines
(rank 0) plus `start`/`end` on every rank. Exits non-zero when any result was wrong.
See docs/test_cases/collectives.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.distributed as dist
from collbench import bandwidth, sweep
from collbench.ops import select_impl
from collbench.table import HEADER, format_footer, format_row

from dtcase.metrics import MetricsWriter
from dtcase.params import manifest_parser

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
GPU_MAX_BYTES = 4 << 30
CPU_MAX_BYTES = 64 << 20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The manifest's parameters (dtcase.params), then what no declaration can say."""
    p = manifest_parser(__file__, __doc__.splitlines()[0])
    args = p.parse_args(argv)
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    unknown = [o for o in ops if o not in bandwidth.OPS]
    if not ops or unknown:
        p.error(f"--ops: unknown collective(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(bandwidth.OPS)}")
    if len(set(ops)) != len(ops):
        p.error(f"--ops: repeated collective in {args.ops!r}")
    args.ops = ops
    if 0 < args.max_bytes < args.min_bytes:
        p.error(f"--max-bytes ({args.max_bytes}) must be >= --min-bytes ({args.min_bytes}) "
                "or 0 for the default")
    if args.cuda_graph_max_bytes < 0:
        p.error(f"--cuda-graph-max-bytes must be >= 0, got {args.cuda_graph_max_bytes}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device visible to this process")
    return args


def setup(args: argparse.Namespace) -> tuple[torch.device, torch.dtype]:
    """Pick device and dtype, and start the process group (nccl on CUDA, gloo on CPU)."""
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    dtype = DTYPES[args.dtype] if args.dtype != "auto" else (torch.bfloat16 if cuda else torch.float32)
    if args.max_bytes == 0:
        args.max_bytes = max(args.min_bytes, GPU_MAX_BYTES if cuda else CPU_MAX_BYTES)
    return device, dtype


def device_facts(device: torch.device) -> dict:
    facts = {"device": device.type, "device_name": "cpu", "peak_tflops": None,
             "torch_version": torch.__version__, "backend": dist.get_backend()}
    if device.type == "cuda":
        facts["device_name"] = torch.cuda.get_device_name(device)
        facts["nccl_version"] = ".".join(map(str, torch.cuda.nccl.version()))
    return facts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    device, dtype = setup(args)
    rank, world = dist.get_rank(), dist.get_world_size()
    sizes = bandwidth.sweep_sizes(args.min_bytes, args.max_bytes)
    writer = MetricsWriter(args.output_dir, rank, world, echo=False)
    writer.write("start", **device_facts(device), config=vars(args), dtype=sweep.DTYPE_NAMES[dtype],
                 ops=args.ops, sizes=sizes)
    say = print if rank == 0 else (lambda *a, **k: None)
    say(f"# collectives: world size {world}, {device.type}, {sweep.DTYPE_NAMES[dtype]}, "
        f"{args.min_bytes}..{args.max_bytes} B, warmup {args.warmup_iters}, iters {args.iters}", flush=True)
    say(HEADER, flush=True)

    rows = []
    for op in args.ops:
        impl = select_impl(op, sweep.prober(op, world, dtype, device))
        for nbytes in sizes:
            if impl is None:
                row = sweep.unsupported_row(op, nbytes, world_size=world, dtype=dtype, iters=args.iters)
            else:
                row = sweep.measure(impl, nbytes, rank=rank, world_size=world, dtype=dtype, device=device,
                                    iters=args.iters, warmup_iters=args.warmup_iters,
                                    graph=device.type == "cuda" and nbytes <= args.cuda_graph_max_bytes)
            rows.append(row)
            if rank == 0:
                writer.write("collective", **row)
            say(format_row(row), flush=True)
    say(format_footer(rows), flush=True)

    wrong = [r for r in rows if r["supported"] and not r["correct"]]
    if wrong:
        say(f"# {len(wrong)} result(s) were wrong: "
            + ", ".join(f"{r['op']}@{r['bytes']}" for r in wrong), file=sys.stderr, flush=True)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    writer.write("end", status="ok" if not wrong else "wrong_results", steps=len(rows),
                 wrong=len(wrong), peak_mem_gib=peak and round(peak, 3), wall_s=round(time.time() - t0, 3))
    writer.close()
    dist.destroy_process_group()
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
