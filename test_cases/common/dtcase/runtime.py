"""Process-group set-up and teardown for torchrun-launched trainers (gloo on CPU, nccl on CUDA)."""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    fake_collectives: bool = False  # rank 0 of a simulated world (FAKE_WORLD_SIZE_ENV)


# Memory planning for a GPU count one does not have: with DTCASE_FAKE_WORLD_SIZE=N the one process
# plays rank 0 of N ranks whose collectives return at once without moving data (torch's "fake"
# backend). Its shards, gathered buffers and activations are those of rank 0 of a real N-GPU job, so
# its peak memory is; its loss is not (gathered weights hold whatever the buffers held), nor is its
# step time (no communication). Reports must never read it as a training run: the start event says so.
FAKE_WORLD_SIZE_ENV = "DTCASE_FAKE_WORLD_SIZE"


def fake_world_size() -> int:
    """N from DTCASE_FAKE_WORLD_SIZE (0: unset); a value that is not an integer >= 2, or a job of more
    than one process, is one `error:` line and exit 2, before any process group."""
    raw = os.environ.get(FAKE_WORLD_SIZE_ENV, "")
    procs = os.environ.get("WORLD_SIZE", "1")
    problem = None
    if raw and (not raw.isdigit() or int(raw) < 2):
        problem = f"expected an integer of at least 2 (the ranks to simulate), got {raw!r}"
    elif raw and procs != "1":
        problem = f"one process plays rank 0 of the simulated world: start one, not {procs}"
    if problem:
        print(f"{os.path.basename(sys.argv[0])}: error: {FAKE_WORLD_SIZE_ENV}: {problem}", file=sys.stderr)
        sys.exit(2)
    return int(raw) if raw else 0


def init_distributed() -> DistContext:
    """Join the process group described by torchrun's environment (a 1-process group without it)."""
    simulated = fake_world_size()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29599")
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if simulated:
        # A local store: nothing to rendezvous with.
        dist.init_process_group("fake", store=dist.HashStore(), rank=0, world_size=simulated)
        return DistContext(0, simulated, local_rank, device, fake_collectives=True)
    if device.type == "cuda":
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return DistContext(rank, world_size, local_rank, device)


# Which scaled_dot_product_attention kernels may run. A named backend disables the others, the
# math fallback included: a shape the kernel cannot take fails loudly instead of silently
# materialising the (seq x seq) attention matrix.
SDPA_BACKENDS = {"auto": None, "flash": "flash", "cudnn": "cudnn", "efficient": "mem_efficient"}


def select_sdpa_backend(name: str) -> None:
    chosen = SDPA_BACKENDS[name]
    if chosen is None or not torch.cuda.is_available():
        return
    for backend in ("flash", "cudnn", "mem_efficient", "math"):
        getattr(torch.backends.cuda, f"enable_{backend}_sdp")(backend == chosen)


def peak_mem_gib(device: torch.device) -> float:
    """Peak memory of this rank: allocated by torch on CUDA, the process's max RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30


def peak_reserved_gib(device: torch.device) -> float | None:
    """Peak memory the CUDA caching allocator held (what the GPU must have); None on CPU."""
    return torch.cuda.max_memory_reserved(device) / 2**30 if device.type == "cuda" else None


def finish(code: int) -> None:
    """Leave the process group and exit at once.

    FSDP2 on gloo can abort in interpreter teardown, which would leave the other nodes' torchrun
    waiting; os._exit skips that teardown (see the host notes).
    """
    if dist.is_initialized():
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
