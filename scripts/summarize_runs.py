#!/usr/bin/env python3
"""Print a table of finished runs (results/<run-id>/summary.json) and, optionally, how closely
two runs' losses agree step by step (e.g. torch.compile against eager on the same data and seed).

  scripts/summarize_runs.py results/<a> results/<b> [--compare-loss A B --steps 20]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rank0_losses(run_dir: Path) -> dict[int, float]:
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "step" and rec.get("rank") == 0:
            out[rec["step"]] = rec["loss"]
    return out


def row(run_dir: Path) -> str:
    s = json.loads((run_dir / "summary.json").read_text())
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
        for c in json.loads((run / "summary.json").read_text()).get("checkpoints", []):
            print(f"checkpoint {c['action']:<4} at step {c['step']:>3}: {c['seconds']:.2f} s  ({run.name})")
    for run in a.runs:
        for prof in sorted((run / "nodes").glob("*/profile-rank0.json")):
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
        print(f"loss agreement over steps 1-{a.steps} ({len(steps)} steps): max |diff| {max(diffs):.4f}, "
              f"max rel {max(rel):.2%}; first {la[steps[0]]:.4f}/{lb[steps[0]]:.4f}, "
              f"last {la[steps[-1]]:.4f}/{lb[steps[-1]]:.4f}")
        # Per-step loss is noisy once training moves fast; the mean of the later half shows drift.
        late = steps[len(steps) // 2:]
        ma, mb = (sum(x[s] for s in late) / len(late) for x in (la, lb))
        print(f"mean loss over steps {late[0]}-{late[-1]}: {ma:.4f}/{mb:.4f} "
              f"({abs(ma - mb) / abs(mb):.2%} apart)")


if __name__ == "__main__":
    main()
