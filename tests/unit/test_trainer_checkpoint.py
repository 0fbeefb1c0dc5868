"""Distributed-checkpoint round trip (dtcase.checkpoint), in this process without a process group.

Sharded (FSDP2, two ranks) saves and resumes are covered by test_trainer_distributed.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dtcase import checkpoint
from dtcase.model import MODEL_CONFIGS, Transformer
from dtcase.trainer import build_optimizer


def _trained(seed: int, steps: int):
    torch.manual_seed(seed)
    model = Transformer(MODEL_CONFIGS["tiny"], 16)
    model.init_weights()
    opt = build_optimizer(model, 1e-3, torch.device("cpu"))
    for _ in range(steps):
        tokens = torch.randint(0, 512, (2, 17))
        F.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten()).backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def test_round_trip_restores_identical_weights_and_optimizer_state(tmp_path):
    model, opt = _trained(seed=0, steps=2)
    path, seconds = checkpoint.save(tmp_path, 2, model, opt)
    assert path == tmp_path / "step-00000002" and seconds >= 0
    assert checkpoint.latest(tmp_path) == (2, path)

    other, other_opt = _trained(seed=1, steps=1)  # different weights, different Adam moments and step
    step, _ = checkpoint.load(path, other, other_opt)
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
    (tmp_path / "notes").mkdir()
    assert checkpoint.latest(tmp_path) == (5, tmp_path / "step-00000005")
