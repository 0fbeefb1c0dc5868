"""Distributed-checkpoint round trip (dtcase.checkpoint), in this process without a process group.

Sharded (FSDP2, two ranks) saves and resumes are covered by test_trainer_distributed.py.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from dtcase import checkpoint
from dtcase.model import MODEL_CONFIGS, Transformer
from dtcase.trainer import build_optimizer
from helpers import REPO, load_module


def _trained(seed: int, steps: int):
    torch.manual_seed(seed)
    model = Transformer(MODEL_CONFIGS["tiny"], 16)
    model.init_weights()
    opt = build_optimizer(model, 1e-3, torch.device("cpu"))
    for _unused in range(steps):
        tokens = torch.randint(0, 512, (2, 17))
        F.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten()).backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def _save(mode: str, root, step: int, model, opt):
    """Save synchronously, or asynchronously and wait for the background write (as the trainer's end does)."""
    if mode == "sync":
        return checkpoint.save(root, step, model, opt)
    saver = checkpoint.AsyncSaver(mode, torch.device("cpu"))
    path, seconds = saver.save(root, step, model, opt)
    assert saver.close()[0] == step
    return path, seconds


@pytest.mark.parametrize("mode", ["sync", "thread"])
def test_round_trip_restores_identical_weights_and_optimizer_state(tmp_path, mode):
    model, opt = _trained(seed=0, steps=2)
    path, seconds = _save(mode, tmp_path, 2, model, opt)
    assert path == tmp_path / "step-00000002" and seconds >= 0
    assert checkpoint.latest(tmp_path) == (2, path)
    assert json.loads((path / checkpoint.MARKER).read_text())["step"] == 2

    other, other_opt = _trained(seed=1, steps=1)  # different weights, different Adam moments and step
    step, _unused = checkpoint.load(path, other, other_opt)
    assert step == 2
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for pa, pb in zip(model.parameters(), other.parameters(), strict=True):
        sa, sb = opt.state[pa], other_opt.state[pb]
        assert sa.keys() == sb.keys() == {"step", "exp_avg", "exp_avg_sq"}
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_latest_skips_incomplete_and_foreign_directories(tmp_path):
    assert checkpoint.latest(tmp_path / "missing") is None
    model, opt = _trained(seed=0, steps=1)
    checkpoint.save(tmp_path, 5, model, opt)
    (tmp_path / "step-00000009").mkdir()  # a save that died before .metadata was written
    checkpoint.save(tmp_path, 12, model, opt)
    (tmp_path / "step-00000012" / checkpoint.MARKER).unlink()  # all written, marker not yet: not complete
    (tmp_path / "notes").mkdir()
    assert checkpoint.latest(tmp_path) == (5, tmp_path / "step-00000005")


def test_an_async_save_counts_only_once_finished_and_snapshots_the_state_it_was_given(tmp_path):
    """The marker appears only when the background write is done; training on after save() (the
    optimizer updating the weights in place) does not leak into the checkpoint."""
    model, opt = _trained(seed=0, steps=1)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    saver = checkpoint.AsyncSaver("thread", torch.device("cpu"))
    path, _unused = saver.save(tmp_path, 1, model, opt)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    done = saver.close()
    assert done is not None and done[0] == 1 and (path / checkpoint.MARKER).is_file()
    assert saver.poll() is None  # nothing left in flight
    other, other_opt = _trained(seed=1, steps=1)
    checkpoint.load(path, other, other_opt)
    for name, value in other.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_unknown_async_mode_is_refused():
    with pytest.raises(ValueError, match="expected thread or process"):
        checkpoint.AsyncSaver("none", torch.device("cpu"))


def _summarize_runs():
    return load_module(REPO / "scripts" / "summarize_runs.py")


def test_checkpoint_cost_counts_the_stop_and_the_slower_steps_during_a_background_write():
    """scripts/summarize_runs.py's measure of training time lost per save (docs/performance.md)."""
    times = {s: 1.0 for s in range(1, 21)} | {1: 9.0, 11: 1.5, 12: 1.3, 13: 1.2}  # step 1: compile
    records = [{"event": "step", "step": s, "step_time_s": t} for s, t in times.items()]
    records += [{"event": "checkpoint", "step": 10, "action": "save", "seconds": 0.4, "mode": "thread"},
                {"event": "checkpoint", "step": 10, "action": "complete", "seconds": 3.9, "at_step": 13},
                {"event": "checkpoint", "step": 20, "action": "save", "seconds": 5.0, "mode": "sync"}]
    first, second = _summarize_runs().checkpoint_costs(records)
    assert first["normal_step_s"] == 1.0  # the median outside the write, compile step left out
    assert (first["steps_during"], first["slower_steps_s"]) == (3, 1.0)  # steps 11-13: +0.5 +0.3 +0.2
    assert first["lost_s"] == 1.4 and first["written_s"] == 3.9
    assert (second["mode"], second["lost_s"], second["steps_during"]) == ("sync", 5.0, 0)
