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


def init_distributed() -> DistContext:
    """Join the process group described by torchrun's environment (a 1-process group without it)."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29599")
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
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
