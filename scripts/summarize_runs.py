#!/usr/bin/env python3
"""Print a table of finished runs (results/<run-id>/summary.json) and, optionally, how closely
two runs' losses agree step by step (e.g. torch.compile against eager on the same data and seed).

  scripts/summarize_runs.py results/<a> results/<b> [--compare-loss A B --steps 20]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rank0_records(run_dir: Path) -> list[dict]:
    """The launcher's merged metrics.jsonl, or the trainer's own file of a run started by torchrun."""
    merged = run_dir / "metrics.jsonl"
    path = merged if merged.is_file() else run_dir / "metrics-rank0.jsonl"
    recs = (json.loads(line) for line in path.read_text().splitlines())
    return [r for r in recs if r.get("rank", 0) == 0]


def direct_summary(run_dir: Path) -> dict:
    """summary.json's fields for a run without the launcher: means over steps 11-40 (the launcher's
    window), peak memory over all steps."""
    recs = rank0_records(run_dir)
    start = next(r for r in recs if r["event"] == "start")
    steps = [r for r in recs if r["event"] == "step"]
    end = [r for r in recs if r["event"] == "end"]
    window = [r for r in steps if 11 <= r["step"] <= 40 and not r.get("profiled")]
    steady: dict = {"window": [11, 40]}
    for k in ("tokens_per_s_per_device", "tflops_per_device", "mfu"):
        if window:
            steady[k] = sum(r[k] for r in window) / len(window)
    status = end[0]["status"] if end else "failed"
    if start.get("fake_collectives"):  # rank 0 of a simulated world: its memory counts, not its speed
        status = f"{status}, fake {start['world_size']} ranks"
    return {"test_case": "fsdp", "preset": f"{run_dir.name} (torchrun)", "params": start["config"],
            "status": status, "steady": steady,
            "peak_mem_gib_max": max((r["peak_mem_gib"] for r in steps), default=None),
            "peak_reserved_gib_max": max((r.get("peak_reserved_gib", 0) for r in steps), default=None)}


def rank0_losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in rank0_records(run_dir) if r.get("event") == "step"}


def loss_windows(steps: int) -> list[tuple[int, int]]:
    """Step windows for comparing two loss curves: 1-4 and 5-10 (warm-up), 11-20, then 20 steps each."""
    edges = [(1, 4), (5, 10), (11, 20)] + [(a, a + 19) for a in range(21, steps + 1, 20)]
    return [(a, min(b, steps)) for a, b in edges if a <= steps]


def window_differences(la: dict[int, float], lb: dict[int, float], steps: int) -> list[dict]:
    """Per window: how far A's mean loss is from B's (signed, relative to B) and A's largest per-step
    difference; the mean shows a drift, the per-step maximum how far single steps wander."""
    out = []
    for a, b in loss_windows(steps):
        common = [s for s in range(a, b + 1) if s in la and s in lb]
        if not common:
            continue
        ma, mb = (sum(x[s] for s in common) / len(common) for x in (la, lb))
        out.append({"steps": f"{a}-{b}", "mean_rel": (ma - mb) / abs(mb),
                    "max_step_rel": max(abs(la[s] - lb[s]) / abs(lb[s]) for s in common)})
    return out


def checkpoint_costs(records: list[dict], first_step: int = 6) -> list[dict]:
    """Training time each save cost, from one rank's records: the seconds training stood still
    (the whole save when synchronous; waiting for the previous save plus the copy to host memory
    when asynchronous) plus, for an asynchronous save, how much longer than a normal step the steps
    were while it was written in the background. A normal step is the median step time from
    ``first_step`` on (compile and warm-up before), outside every background write."""
    steps = {r["step"]: r["step_time_s"] for r in records if r.get("event") == "step"}
    ckpt = [r for r in records if r.get("event") == "checkpoint"]
    done = {r["step"]: r for r in ckpt if r["action"] == "complete"}
    saves = [r for r in ckpt if r["action"] == "save"]
    window = {s["step"]: range(s["step"] + 1, done[s["step"]]["at_step"] + 1 if s["step"] in done else 0)
              for s in saves}
    busy = {k for w in window.values() for k in w}
    normal = sorted(t for k, t in steps.items() if k >= first_step and k not in busy)
    if not normal:
        return []
    median = normal[len(normal) // 2]
    out = []
    for s in saves:
        end = done.get(s["step"])
        during = [steps[k] - median for k in window[s["step"]] if k in steps]
        out.append({"step": s["step"], "mode": s.get("mode", "sync"), "stopped_s": s["seconds"],
                    "slower_steps_s": round(sum(during), 3), "steps_during": len(during),
                    "lost_s": round(s["seconds"] + sum(during), 3), "normal_step_s": median,
                    "written_s": end["seconds"] if end else s["seconds"]})
    return out


def row(run_dir: Path) -> str:
    summary = run_dir / "summary.json"
    s = json.loads(summary.read_text()) if summary.is_file() else direct_summary(run_dir)
    st = s["steady"]

    def fmt(v, spec):
        return format(v, spec) if isinstance(v, int | float) else "-"

    p = s["params"]
    what = f"{s['test_case']}/{s['preset']}"
    knobs = ",".join(f"{k}={p[k]}" for k in ("compile", "ac", "ac_every", "sdpa_backend", "steps") if k in p)
    cols = [fmt(st.get("tokens_per_s_per_device"), ",.0f"),
            fmt(st.get("wall_tokens_per_s_per_device"), ",.0f"),
            fmt(st.get("tflops_per_device"), ".1f"), fmt((st.get("mfu") or 0) * 100, ".1f"),
            fmt(s.get("peak_mem_gib_max"), ".1f"), fmt(s.get("peak_reserved_gib_max"), ".1f")]
    widths = (9, 9, 7, 6, 7, 8)
    return (f"{what:<24} {knobs:<48} {s['status']:<7} "
            + " ".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True)) + f"  {st['window']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--compare-loss", nargs=2, type=Path, metavar=("A", "B"))
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    print(f"{'run':<24} {'knobs':<48} {'status':<7} {'tok/s/dev':>9} {'wall':>9} {'TFLOPS':>7} "
          f"{'MFU%':>6} {'mem GiB':>7} {'reserved':>8}  window")
    for run in a.runs:
        print(row(run))
    for run in a.runs:
        for c in (r for r in rank0_records(run) if r.get("event") == "checkpoint"):
            print(f"checkpoint {c['action']:<4} at step {c['step']:>3}: {c['seconds']:.2f} s  ({run.name})")
        for c in checkpoint_costs(rank0_records(run)):
            print(f"checkpoint cost at step {c['step']:>3} ({c['mode']}): training stopped "
                  f"{c['stopped_s']:.2f} s, {c['steps_during']} steps during the write "
                  f"{c['slower_steps_s']:+.2f} s -> lost "
                  f"{c['lost_s']:.2f} s (normal step {c['normal_step_s']:.3f} s; written in "
                  f"{c['written_s']:.2f} s)  ({run.name})")
    for run in a.runs:
        for prof in sorted([*(run / "nodes").glob("*/profile-rank0.json"), *run.glob("profile-rank0.json")]):
            d = json.loads(prof.read_text())
            fams = ", ".join(f"{k} {v:.0f}" for k, v in d["families_ms_per_step"].items())
            print(f"profile ({run.name}, steps {d['steps']}): {d['ms_per_step']:.0f} ms/step of "
                  f"{d['time_source']}: {fams}")
            for k in d["top"][:8]:
                print(f"  {k['ms_per_step']:8.1f} ms  {k['share']:6.1%}  x{k['calls_per_step']:<4} "
                      f"{k['name'][:100]}")
    if a.compare_loss:
        la, lb = (rank0_losses(d) for d in a.compare_loss)
        steps = [s for s in range(1, a.steps + 1) if s in la and s in lb]
        if not steps:
            raise SystemExit(f"no common steps in 1-{a.steps}: {a.compare_loss[0]} vs {a.compare_loss[1]}")
        diffs = [abs(la[s] - lb[s]) for s in steps]
        rel = [abs(la[s] - lb[s]) / abs(lb[s]) for s in steps]
        early = [r for s, r in zip(steps, rel, strict=True) if s <= 10]
        print(f"loss agreement over steps 1-{a.steps} ({len(steps)} steps): max |diff| {max(diffs):.4f}, "
              f"max rel {max(rel):.2%} (steps 1-10: {max(early, default=0):.2%}); "
              f"first {la[steps[0]]:.4f}/{lb[steps[0]]:.4f}, "
              f"last {la[steps[-1]]:.4f}/{lb[steps[-1]]:.4f}")
        # Per-step loss is noisy once training moves fast; the mean of the later half shows drift.
        late = steps[len(steps) // 2:]
        ma, mb = (sum(x[s] for s in late) / len(late) for x in (la, lb))
        print(f"mean loss over steps {late[0]}-{late[-1]}: {ma:.4f}/{mb:.4f} "
              f"({abs(ma - mb) / abs(mb):.2%} apart)")
        for w in window_differences(la, lb, a.steps):
            print(f"  steps {w['steps']:>7}: mean {w['mean_rel']:+7.2%}, "
                  f"largest step {w['max_step_rel']:6.2%}")


if __name__ == "__main__":
    main()
