"""Distributed checkpoints (torch.distributed.checkpoint) of model + optimizer + step + data position.

The data position is the number of global samples consumed (dtcase.data): a resumed run reads on
from there, also on another number of ranks. Checkpoints written before it was saved hold only the
step; :func:`load_train_state` returns None for their position.

Layout: ``<checkpoint_dir>/step-00000010/`` per save. A checkpoint is complete, and the only kind
:func:`latest` returns, when its directory holds the marker ``COMPLETE`` (JSON: step, seconds). Rank 0
writes it (atomically: a temporary file, then a rename) only after its save finished: after
``dcp.save`` returned, or, for an asynchronous save, after the save's future completed. DCP's
coordinator (rank 0) finishes a save only once every rank has written its shards and ``.metadata``
is on disk, so the marker means the whole checkpoint is there; a save that died midway, or one still
being written in the background, is never resumed from.
Works with FSDP2 (sharded DTensors: each rank writes its shards), DDP and a plain module.

Asynchronous saves (:class:`AsyncSaver`): training stops only while the state is copied to host
memory; the files are written by a background thread or process (``mode``) while training goes on.
The host copy is allocated once (:meth:`AsyncSaver.prepare`, after the first step: pinned on CUDA,
shared with the background process) and refilled at every save. One save is in flight at most: the
next save, and the end of training (:meth:`AsyncSaver.close`), first wait for it.
"""

from __future__ import annotations

import json
import os
import re
import time
from concurrent.futures import Future
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed._state_dict_utils import _copy_state_dict, _create_cpu_state_dict
from torch.distributed.checkpoint.staging import AsyncStager
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

_STEP_DIR = re.compile(r"^step-(\d+)$")
MARKER = "COMPLETE"
ASYNC_MODES = ("none", "thread", "process")


def step_dir(checkpoint_dir: str | Path, step: int) -> Path:
    return Path(checkpoint_dir) / f"step-{step:08d}"


def latest(checkpoint_dir: str | Path) -> tuple[int, Path] | None:
    """(step, path) of the newest complete checkpoint (one holding the COMPLETE marker), or None."""
    found = []
    root = Path(checkpoint_dir)
    if root.is_dir():
        for child in root.iterdir():
            match = _STEP_DIR.match(child.name)
            if match and (child / MARKER).is_file():
                found.append((int(match.group(1)), child))
    return max(found) if found else None


def mark_complete(path: Path, step: int, seconds: float) -> None:
    """Rank 0 (or the only process): write the marker; the rename makes it appear whole or not at all."""
    if dist.is_initialized() and dist.get_rank() != 0:
        return
    tmp = path / f".{MARKER}.tmp"
    tmp.write_text(json.dumps({"step": step, "seconds": round(seconds, 3)}) + "\n")
    os.replace(tmp, path / MARKER)


def _state(model: nn.Module, optimizer: torch.optim.Optimizer, step: int, samples: int = 0) -> dict:
    model_sd, optim_sd = get_state_dict(model, optimizer)
    return {"model": model_sd, "optim": optim_sd,
            "train": {"step": torch.tensor(step), "samples": torch.tensor(samples)}}


def save(checkpoint_dir: str | Path, step: int, model: nn.Module,
         optimizer: torch.optim.Optimizer, samples: int = 0) -> tuple[Path, float]:
    """Save synchronously (``samples``: the data position after ``step``) and mark it complete;
    returns (path, seconds)."""
    t0 = time.perf_counter()
    path = step_dir(checkpoint_dir, step)
    dcp.save(_state(model, optimizer, step, samples), checkpoint_id=path)
    seconds = time.perf_counter() - t0
    mark_complete(path, step, seconds)
    return path, seconds


class _HostCopy(AsyncStager):
    """Stages into one host copy of the state, allocated once and refilled at every save.

    (torch 2.11's DefaultStager failed to stage a second time here: KeyError on ``type`` in its
    deep copy; this is what DCP's BlockingAsyncStager does when caching, plus shared memory.)"""

    _synchronize_after_execute = False  # stage() returns only once the copy is complete

    def __init__(self, pin: bool, share: bool):
        self._pin, self._share, self._copy = pin, share, None

    def allocate(self, state_dict: dict) -> None:
        if self._copy is None:
            self._copy = _create_cpu_state_dict(state_dict, pin_memory=self._pin, share_memory=self._share)

    def stage(self, state_dict: dict) -> dict:
        self.allocate(state_dict)
        out = _copy_state_dict(state_dict, self._copy, non_blocking=self._pin, type_check=False)
        if self._pin:
            torch.cuda.synchronize()  # the copies off the GPU are done before training touches the state
        return out

    def synchronize_staging(self) -> None:
        pass

    def close(self) -> None:
        self._copy = None


class AsyncSaver:
    """``dcp.async_save`` with staging buffers kept between saves; see the module docstring.

    Collective: every rank constructs it (it creates a gloo group for the background saves) and every
    rank calls :meth:`save` and :meth:`close` in the same order.
    """

    def __init__(self, mode: str, device: torch.device):
        if mode not in ASYNC_MODES[1:]:
            raise ValueError(f"unknown asynchronous checkpoint mode {mode!r}: expected thread or process")
        from torch.distributed.checkpoint.state_dict_saver import AsyncCheckpointerType

        self.mode = mode
        cuda = device.type == "cuda"
        # Its own gloo group: DCP needs a CPU backend beside NCCL, and on CPU the background save's
        # collectives must not interleave with the training thread's on the default group.
        self._group = dist.new_group(backend="gloo") if dist.is_initialized() else None
        self._type = AsyncCheckpointerType.PROCESS if mode == "process" else AsyncCheckpointerType.THREAD
        # Pinned host memory for fast copies off the GPU, shared memory so a background process reads
        # the staged tensors without a copy. Staging itself is synchronous: the optimizer updates the
        # parameters in place right after, so they must be copied before training resumes.
        self._stager = _HostCopy(pin=cuda, share=mode == "process")
        self._pending: tuple[Future, Path, int, float] | None = None

    def prepare(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> float:
        """Allocate the host copy now (after the first step, when the optimizer state exists), so
        the first save does not pay for it; returns seconds."""
        t0 = time.perf_counter()
        self._stager.allocate(_state(model, optimizer, 0))
        return time.perf_counter() - t0

    def save(self, checkpoint_dir: str | Path, step: int, model: nn.Module,
             optimizer: torch.optim.Optimizer, samples: int = 0) -> tuple[Path, float]:
        """Start a save; returns (path, seconds training was stopped: waiting for the previous save,
        if still running, plus copying the state to host memory)."""
        t0 = time.perf_counter()
        self.wait()
        path = step_dir(checkpoint_dir, step)
        result = dcp.async_save(_state(model, optimizer, step, samples), checkpoint_id=path,
                                process_group=self._group, async_checkpointer_type=self._type,
                                async_stager=self._stager)
        # torch >= 2.9 returns (staging, upload) futures when the stager works asynchronously.
        future = result.upload_completion if hasattr(result, "upload_completion") else result
        self._pending = (future, path, step, t0)
        return path, time.perf_counter() - t0

    def poll(self) -> tuple[int, float] | None:
        """Mark the save in flight complete if it has finished; returns (step, total seconds) then."""
        if self._pending is None or not self._pending[0].done():
            return None
        return self._finish()

    def wait(self) -> tuple[int, float] | None:
        """Block until the save in flight (if any) is written, then mark it complete."""
        if self._pending is None:
            return None
        self._pending[0].result()
        return self._finish()

    def close(self) -> tuple[int, float] | None:
        """Finish the save in flight and release the staging buffers (before the process exits)."""
        done = self.wait()
        self._stager.close()
        return done

    def _finish(self) -> tuple[int, float]:
        future, path, step, t0 = self._pending
        self._pending = None
        future.result()  # re-raises a failed background save here, on the training thread
        seconds = time.perf_counter() - t0
        mark_complete(path, step, seconds)
        return step, seconds


def load_train_state(path: str | Path, model: nn.Module,
                     optimizer: torch.optim.Optimizer) -> tuple[int, int | None, float]:
    """Load into model and optimizer in place; returns (step, data position or None, seconds)."""
    t0 = time.perf_counter()
    state = _state(model, optimizer, 0)
    saved = dcp.FileSystemReader(path).read_metadata().state_dict_metadata
    if "train.samples" not in saved:  # written before the data position was saved
        del state["train"]["samples"]
    dcp.load(state, checkpoint_id=path)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    samples = int(state["train"]["samples"]) if "samples" in state["train"] else None
    return int(state["train"]["step"]), samples, time.perf_counter() - t0


def load(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, float]:
    """Load into model and optimizer in place; returns (step, seconds)."""
    step, _unused, seconds = load_train_state(path, model, optimizer)
    return step, seconds
