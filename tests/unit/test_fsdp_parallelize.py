"""fsdp's activation-checkpointing placement (test_cases/fsdp/src/parallelize.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

from dtcase.model import MODEL_CONFIGS, Transformer
from helpers import REPO

FSDP_SRC = REPO / "test_cases" / "fsdp" / "src"
sys.path.insert(0, str(FSDP_SRC))
from parallelize import apply_ac  # noqa: E402


def dtcase_python(*argv: str) -> subprocess.CompletedProcess:
    """This Python with only the trainers' shared package (test_cases/common) on its path."""
    env = {"PYTHONPATH": str(REPO / "test_cases" / "common"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120, env=env,
                          check=False)


def wrapped_blocks(mode: str, every: int) -> list[int]:
    model = Transformer(MODEL_CONFIGS["tiny"], 16)
    apply_ac(model, mode, every)
    return [i for i, block in enumerate(model.layers.values()) if isinstance(block, CheckpointWrapper)]


@pytest.mark.parametrize(("mode", "every", "expected"), [
    ("selective", 1, [0, 1, 2, 3]),
    ("selective", 2, [0, 2]),
    ("full", 3, [0, 3]),
    ("full", 8, [0]),
    ("none", 1, []),
])
def test_ac_every_wraps_every_nth_block(mode, every, expected):
    assert wrapped_blocks(mode, every) == expected


def test_bad_interval_is_refused():
    with pytest.raises(ValueError, match="interval must be >= 1, got 0"):
        wrapped_blocks("selective", 0)


def test_the_trainer_refuses_a_bad_interval_before_starting():
    proc = dtcase_python(str(FSDP_SRC / "train.py"), "--ac-every", "0")
    assert proc.returncode == 2
    assert "error: argument --ac-every: must be >= 1, got 0" in proc.stderr  # the manifest's bound


def test_n_layers_trains_the_first_blocks_of_the_named_model(tmp_path):
    """--n-layers 2: the tiny model's width with 2 of its 4 blocks (a wide model's one-GPU proxy)."""
    proc = dtcase_python(str(FSDP_SRC / "train.py"), "--n-layers", "2", "--steps", "2", "--dtype", "fp32",
                         "--output-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in (tmp_path / "metrics-rank0.jsonl").read_text().splitlines()]
    start = next(e for e in events if e["event"] == "start")
    assert start["model_args"]["n_layers"] == 2
    assert start["model_args"]["dim"] == MODEL_CONFIGS["tiny"].dim
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2]
