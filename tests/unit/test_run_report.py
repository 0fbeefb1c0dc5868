"""The report judges a run only from what the nodes left behind: build such runs by hand."""

import json
import math

from ansible_collections.awsome.distributed_training.plugins.module_utils.run_report import (
    steady_window,
    summarize,
    write_report,
)

PLAN = {"run_id": "r1", "test_case": "fsdp", "preset": "cpu-tiny", "nodes": ["node1", "node2"],
        "procs_per_node": 1, "world_size": 2, "accelerator": "cpu",
        "checks": ["all_ranks_reported", "no_nan", "loss_decreased"],
        "metrics": {"plots": [{"event": "step", "x": "step", "y": "loss"},
                              {"event": "step", "x": "step", "y": "tokens_per_s_per_device"}]}}


def make_run(tmp_path, losses=None, ranks=(0, 1), rc=(0, 0), log="", steps=30):
    losses = losses or [5.0 - 0.1 * i for i in range(steps)]
    for rank, host in enumerate(PLAN["nodes"]):
        node = tmp_path / "nodes" / host
        node.mkdir(parents=True)
        if rc[rank] is not None:
            (node / "rc").write_text(f"{rc[rank]}\n")
        (node / "torchrun.log").write_text(log or f"log of {host}\nline 2\n")
        if rank not in ranks:
            continue
        lines = [{"event": "start", "rank": rank, "time": 100.0}]
        for i, loss in enumerate(losses, start=1):
            lines.append({"event": "step", "rank": rank, "step": i, "loss": loss, "time": 100.0 + i,
                          "tokens_per_s_per_device": 1000.0, "step_time_s": 1.0, "mfu": 0.5,
                          "tflops_per_device": 2.0, "peak_mem_gib": 1.5 + rank})
        lines.append({"event": "end", "rank": rank, "time": 101.0 + len(losses)})
        (node / f"metrics-rank{rank}.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return tmp_path


def test_a_good_run_passes_with_steady_state_numbers(tmp_path):
    s = summarize(str(make_run(tmp_path)), PLAN | {"launched_at": "98.0"})
    assert s["status"] == "passed", s["failures"]
    assert s["ranks_reported"] == [0, 1] and s["steps"] == 30
    assert s["steady"]["window"] == [11, 30]
    assert s["steady"]["tokens_per_s_per_device"] == 1000.0
    # 20 steps of 1000 tokens over 20 s of wall clock: the cross-check agrees with the trainer.
    assert s["steady"]["wall_tokens_per_s_per_device"] == 1000.0
    assert s["time_to_first_step_s"] == 3.0 and s["peak_mem_gib_max"] == 2.5
    assert math.isclose(s["loss_first"], 4.8)  # mean of the first 5 and s["loss_last"] < s["loss_first"]


def test_missing_rank_flat_loss_and_nan_are_each_reported(tmp_path):
    losses = [5.0] * 10 + [float("nan")]
    s = summarize(str(make_run(tmp_path, losses=[str(x) if x != x else x for x in losses], ranks=(0,))), PLAN)
    assert s["status"] == "failed"
    text = " | ".join(s["failures"])
    assert "rank(s) 1 did not report (node node2)" in text
    assert "non-finite loss 'nan' at step 11 on rank 0" in text
    assert "loss did not fall (first 5.0000 -> last 5.0000)" in text


def test_failed_node_carries_its_log_excerpt(tmp_path):
    log = ("step 3\nTraceback (most recent call last):\nRuntimeError: gloo connection reset\n"
           "E1128 elastic/multiprocessing/api.py:1002] failed (exitcode: 1) local_rank: 0\n"
           "Traceback (most recent call last):\nChildFailedError:\n============\n"
           "Root Cause (first observed failure):\n  error_file: <N/A>\n"
           "  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html\n")
    s = summarize(str(make_run(tmp_path, rc=(0, 1), log=log)), PLAN)
    assert ("node2: exited 1: Traceback (most recent call last): | RuntimeError: gloo connection reset"
            in s["failures"])


def test_unfinished_node_is_a_failure(tmp_path):
    s = summarize(str(make_run(tmp_path, rc=(0, None))), PLAN)
    assert "node2: no exit status (job did not finish)" in s["failures"]


def test_write_report_produces_every_artifact(tmp_path):
    run = make_run(tmp_path)
    s = write_report(str(run), PLAN)
    assert json.loads((run / "summary.json").read_text())["status"] == "passed"
    merged = (run / "metrics.jsonl").read_text().splitlines()
    assert len(merged) == 2 * 32 and {json.loads(x)["host"] for x in merged} == {"node1", "node2"}
    for png in s["plots"]:
        assert (run / png).read_bytes()[:4] == b"\x89PNG"
    assert len(s["plots"]) == 2
    html = (run / "report.html").read_text()
    assert "passed" in html and 'src="loss_vs_step.png"' in html


def test_collectives_become_a_csv_and_are_checked(tmp_path):
    node = tmp_path / "nodes" / "node1"
    node.mkdir(parents=True)
    (node / "rc").write_text("0")
    rows = [{"event": "start", "rank": 0, "time": 1}, {"event": "end", "rank": 0, "time": 3}]
    rows += [{"event": "collective", "rank": 0, "time": 2, "op": "all_reduce", "bytes": b, "busbw_gbps": 1.0,
              "correct": b != 2048} for b in (1024, 2048)]
    (node / "metrics-rank0.jsonl").write_text("\n".join(map(json.dumps, rows)))
    bw_plot = {"event": "collective", "x": "bytes", "y": "busbw_gbps", "group": "op"}
    plan = PLAN | {"nodes": ["node1"], "world_size": 1, "checks": ["all_ranks_reported", "all_correct"],
                   "metrics": {"plots": [bw_plot]}}
    s = write_report(str(tmp_path), plan)
    assert s["failures"] == ["wrong results: all_reduce@2048B"]
    assert (tmp_path / "collectives.csv").read_text().splitlines()[0].startswith("op,dtype,bytes")
    assert s["plots"] == ["busbw_gbps_vs_bytes.png"]


def test_steady_window():
    assert steady_window(list(range(1, 51))) == (11, 40)
    assert steady_window(list(range(1, 11))) == (6, 10)
    assert steady_window([]) == (0, 0)


def test_profiled_steps_are_left_out_of_the_steady_state(tmp_path):
    """Steps under torch.profiler (rank 0 slowed, the others waiting) must not drag the means down."""
    run = make_run(tmp_path, steps=33)
    for metrics in run.glob("nodes/*/metrics-rank*.jsonl"):
        recs = [json.loads(line) for line in metrics.read_text().splitlines()]
        for rec in recs:
            if rec.get("step", 0) > 30:
                rec.update(profiled=True, tokens_per_s_per_device=10.0)
        metrics.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    s = summarize(str(run), PLAN)
    assert s["steady"]["window"] == [11, 33]
    assert s["steady"]["tokens_per_s_per_device"] == 1000.0
