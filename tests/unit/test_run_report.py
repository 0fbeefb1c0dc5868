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
    marked = [str(x) if math.isnan(x) else x for x in losses]
    s = summarize(str(make_run(tmp_path, losses=marked, ranks=(0,))), PLAN)
    assert s["status"] == "failed"
    text = " | ".join(s["failures"])
    assert "rank(s) 1 wrote nothing (node node2)" in text
    assert "loss is 'nan' at step 11 on rank 0" in text
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


def test_a_node_with_efa_whose_nccl_fell_back_to_sockets_fails_first(tmp_path):
    """NCCL INFO lines (what launch.sh asks NCCL to write into out/nccl-*.log) are read per node."""
    run = make_run(tmp_path)
    (run / "nodes" / "node1" / "nccl-node1-77.log").write_text(
        "node1:77:77 [0] NCCL INFO NET/Plugin: Loaded net plugin Libfabric (v9)\n"
        "node1:77:77 [0] NCCL INFO NCCL version 2.26.5+cuda12.8\n"
        "node1:77:90 [0] NCCL INFO Using network Libfabric\n")
    (run / "nodes" / "node2" / "nccl-node2-78.log").write_text(
        "NCCL version 2.26.5+cuda12.8\nnode2:78:91 [0] NCCL INFO Using network Socket\n")
    checks = {"node1": {"efa_devices": 4, "gpus": 8, "framework_version": "2.11.0", "changed": False},
              "node2": {"efa_devices": 4, "gpus": 8, "framework_version": "2.11.0"}}
    s = summarize(str(run), PLAN | {"accelerator": "cuda", "node_checks": checks})
    assert s["node_environment"]["node1"] == {
        "efa_devices": 4, "gpus": 8, "framework_version": "2.11.0",
        "nccl": {"version": "2.26.5", "network": "Libfabric", "plugin": "Libfabric"}}
    assert s["node_environment"]["node2"]["nccl"]["network"] == "Socket"
    assert s["status"] == "failed"
    assert s["failures"][0].startswith(
        "node2: has 4 EFA device(s) but NCCL used Socket: aws-ofi-nccl was not loaded")


def test_the_report_reads_like_a_report_and_the_index_trends_every_run(tmp_path):
    root = tmp_path / "results"
    speeds = [1000.0, 1010.0, 990.0, 700.0]  # the newest run is 30 % slower: a regression
    for i, speed in enumerate(speeds):
        run = make_run(root / f"r{i}")
        for node in ("node1", "node2"):
            for f in (run / "nodes" / node).glob("metrics-rank*.jsonl"):
                lines = [json.loads(x) for x in f.read_text().splitlines()]
                for rec in lines:
                    rec["time"] += 1000 * i
                    if rec["event"] == "step":
                        rec["tokens_per_s_per_device"] = speed
                f.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        plan = PLAN | {"run_id": f"r{i}", "launched_at": 1000 * i + 98.0, "params": {"steps": 30, "lr": 0.01},
                       "launch_mode": "torchrun", "container": {"image": "localhost/awsome-training:cpu"},
                       "request": {"inventory": ["inv/cluster.yml"], "mode": "ssh"}}
        s = write_report(str(run), plan)
    (root / "latest").symlink_to(root / "r3")
    page = (root / "r3" / "report.html").read_text()
    # Headline figures first, human times, no raw JSON, and the command that runs it again.
    assert page.index("tokens/s per device") < page.index("<h2>Plots")
    assert ">700<" in page and "1970-01-01 00:51:38 UTC" in page and '{"window"' not in page
    assert ("ansible-playbook playbooks/run_test_case.yml -i inv/cluster.yml -e test_case=fsdp "
            "-e preset=cpu-tiny -e nodes=2 -e procs_per_node=1 -e launch_mode=torchrun "
            "-e container_image=localhost/awsome-training:cpu "
            "-e &#x27;{&quot;params&quot;:{&quot;steps&quot;:30,&quot;lr&quot;:0.01}}&#x27;") in page
    assert s["status"] == "passed"
    index = (root / "index.html").read_text()
    assert index.count('href="r') == 4  # results/latest is not a second copy of r3
    assert "fell 10 % below the median" in index and "<svg" in index


def test_the_first_failure_line_says_what_happened_first_and_where(tmp_path):
    """node3 vanished at step 20 (nothing came back from it); node1 and node2 then lost their peer."""
    plan = PLAN | {"nodes": ["node1", "node2", "node3"], "world_size": 3}
    peer = "Traceback (most recent call last):\nRuntimeError: [gloo] Connection reset by peer\n"
    run = make_run(tmp_path, rc=(1, 1), log=peer, steps=20)
    for rank in (0, 1):  # the survivors trained 20 steps, then stopped without their end record
        path = run / "nodes" / f"node{rank + 1}" / f"metrics-rank{rank}.jsonl"
        path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:-1]))
    s = summarize(str(run), plan)
    assert s["failures"][0] == "node3 lost at step 20 (unreachable)"
    assert "rank(s) 2 wrote nothing (node node3)" in s["failures"]
    # Ranks that wrote 20 steps are not called silent.
    assert "rank(s) 0, 1 stopped before the end (last step 20) (node node1, node2)" in s["failures"]


def test_a_timeout_and_a_nan_are_named_with_their_step(tmp_path):
    run = make_run(tmp_path, rc=(124, 143), steps=12)
    (run / "nodes" / "node1" / "reason").write_text("timeout after 60s\n")
    (run / "nodes" / "node2" / "reason").write_text("stopped: node1 failed\n")
    s = summarize(str(run), PLAN)
    assert s["failures"][0] == "timeout after 60s at step 12 (node1)"
    assert "node2: stopped: node1 failed" in s["failures"]
    losses = [4.0, 3.9, float("nan"), 3.8]
    s = summarize(str(make_run(tmp_path / "nan", losses=losses, rc=(0, 0))), PLAN)
    assert s["failures"][0] == "loss is nan at step 3 on rank 0"


def test_the_report_shows_each_nodes_health_checks_and_links_the_profiles(tmp_path):
    """What the preflight's quick health checks said on each node (launch_preflight's `health`) and
    the Nsight Systems reports a profiled run (-e profiler=nsys) left in the nodes' results."""
    run = make_run(tmp_path / "r1")
    (run / "nodes" / "node1" / "nsys-node1-4242.nsys-rep").write_bytes(b"\0" * 3 * 2**20)
    checks = {"node1": {"health": {"status": "pass", "reason": "", "failed": [], "warned": []}},
              "node2": {"health": {"status": "unchecked",
                                   "reason": "/opt/awsome/bin/awsome_healthcheck.py is not installed"}}}
    s = write_report(str(run), PLAN | {"node_checks": checks})
    assert s["node_environment"]["node2"]["health"]["status"] == "unchecked"
    page = (run / "report.html").read_text()
    assert "<th>health checks</th>" in page and '<span class="pass">pass</span></td>' in page
    assert '<span class="unchecked">unchecked</span> /opt/awsome/bin/awsome_healthcheck.py is not' in page
    rep = "nodes/node1/nsys-node1-4242.nsys-rep"
    assert f'<a href="{rep}">{rep}</a> (3.0 MiB)' in page
    assert page.index("<h2>Plots") < page.index("<h2>Profiles (Nsight Systems)")
