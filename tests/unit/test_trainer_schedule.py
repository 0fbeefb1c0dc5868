"""Linear warmup + cosine decay (dtcase.schedule)."""

from __future__ import annotations

import pytest

from dtcase.schedule import lr_at


def test_warmup_is_linear_from_the_first_step():
    lrs = [lr_at(s, peak_lr=1.0, warmup_steps=4, total_steps=20) for s in range(1, 5)]
    assert lrs == [0.25, 0.5, 0.75, 1.0]


def test_cosine_decays_to_the_floor_halfway_point_at_the_middle():
    kw = {"peak_lr": 2.0, "warmup_steps": 10, "total_steps": 110, "min_ratio": 0.1}
    assert lr_at(60, **kw) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert lr_at(110, **kw) == pytest.approx(0.2)
    assert lr_at(500, **kw) == pytest.approx(0.2)  # clamped past the end
    decay = [lr_at(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))


def test_no_warmup_and_warmup_covering_every_step():
    assert lr_at(1, peak_lr=1.0, warmup_steps=0, total_steps=10) < 1.0
    assert lr_at(10, peak_lr=1.0, warmup_steps=10, total_steps=10) == 1.0
