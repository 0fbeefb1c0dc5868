"""Distributed checkpoints (torch.distributed.checkpoint) of model + optimizer + step.

Layout: ``<checkpoint_dir>/step-00000010/`` per save. DCP's coordinator writes ``.metadata`` last,
so only directories holding it count as complete (a crash mid-save is never resumed from).
Works with FSDP2 (sharded DTensors: each rank writes its shards), DDP and a plain module.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

_STEP_DIR = re.compile(r"^step-(\d+)$")


def step_dir(checkpoint_dir: str | Path, step: int) -> Path:
    return Path(checkpoint_dir) / f"step-{step:08d}"


def latest(checkpoint_dir: str | Path) -> tuple[int, Path] | None:
    """(step, path) of the newest complete checkpoint, or None."""
    found = []
    root = Path(checkpoint_dir)
    if root.is_dir():
        for child in root.iterdir():
            match = _STEP_DIR.match(child.name)
            if match and (child / ".metadata").is_file():
                found.append((int(match.group(1)), child))
    return max(found) if found else None


def save(checkpoint_dir: str | Path, step: int, model: nn.Module,
         optimizer: torch.optim.Optimizer) -> tuple[Path, float]:
    """Save; returns (path, seconds)."""
    t0 = time.perf_counter()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    path = step_dir(checkpoint_dir, step)
    state = {"model": model_sd, "optim": optim_sd, "train": {"step": torch.tensor(step)}}
    dcp.save(state, checkpoint_id=path)
    return path, time.perf_counter() - t0


def load(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, float]:
    """Load into model and optimizer in place; returns (step, seconds)."""
    t0 = time.perf_counter()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd, "train": {"step": torch.tensor(0)}}
    dcp.load(state, checkpoint_id=path)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    return int(state["train"]["step"]), time.perf_counter() - t0
