"""scripts/summarize_runs.py's loss comparison by step windows (the float8 and compile parity tables
of docs/performance.md)."""

from __future__ import annotations

import pytest

from helpers import REPO, load_module

summarize = load_module(REPO / "scripts" / "summarize_runs.py")


@pytest.mark.parametrize(("steps", "windows"), [
    (100, [(1, 4), (5, 10), (11, 20), (21, 40), (41, 60), (61, 80), (81, 100)]),
    (20, [(1, 4), (5, 10), (11, 20)]),
    (50, [(1, 4), (5, 10), (11, 20), (21, 40), (41, 50)]),
    (3, [(1, 3)]),
])
def test_windows_cover_warm_up_then_twenty_steps_each(steps, windows):
    assert summarize.loss_windows(steps) == windows


def test_window_differences_are_signed_means_and_unsigned_step_maxima():
    base = {s: 10.0 for s in range(1, 21)}
    other = dict(base) | {6: 11.0, 7: 9.5, 15: 10.5}   # +10 % and -5 % in 5-10; +5 % at 15
    rows = summarize.window_differences(other, base, 20)
    assert [r["steps"] for r in rows] == ["1-4", "5-10", "11-20"]
    assert rows[0]["mean_rel"] == 0 and rows[0]["max_step_rel"] == 0
    assert rows[1]["mean_rel"] == pytest.approx(0.5 / 6 / 10)
    assert rows[1]["max_step_rel"] == pytest.approx(0.1)
    assert rows[2]["mean_rel"] == pytest.approx(0.005) and rows[2]["max_step_rel"] == pytest.approx(0.05)


def test_steps_one_run_lacks_are_left_out_of_its_windows():
    rows = summarize.window_differences({1: 2.0, 2: 2.0}, {1: 1.0, 2: 1.0, 5: 1.0}, 10)
    assert [r["steps"] for r in rows] == ["1-4"] and rows[0]["mean_rel"] == pytest.approx(1.0)
