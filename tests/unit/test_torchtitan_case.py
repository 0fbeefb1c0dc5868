"""The torchtitan case: its metrics adapter on torchtitan's real log lines, the report that reads a run
through it, the shim's command line, and the launch the manifest plans.

torchtitan itself does not run here (it needs CUDA: docs/test_cases/torchtitan.md); the log lines
are the ones tests/unit/test_torchtitan_anchor.py copied from its log on the GPU machine, with the
local-rank prefix torchrun adds under `--role rank --tee 3` and torchtitan's own first and last lines.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from staged_fixtures import jsonl_with_tokenizer, shards
from test_torchtitan_anchor import LOG

from ansible_collections.awsome.distributed_training.plugins.module_utils import job_launch, testcase
from ansible_collections.awsome.distributed_training.plugins.module_utils.metrics_adapters import (
    adapter_records,
    parse_steps,
    torchtitan_records,
)
from ansible_collections.awsome.distributed_training.plugins.module_utils.run_report import (
    summarize,
    write_report,
)
from helpers import load_module

REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "test_cases" / "torchtitan" / "src" / "titan_train.py"
titan_train = load_module(SHIM)

FIRST = "[titan] 2026-11-28 08:08:50,001 - root - INFO - torchtitan version: 0.2.2 (0.0.0 means __version__ is not defined correctly)."  # noqa: E501
LAST = "[titan] 2026-11-28 08:09:16,530 - root - INFO - Process group destroyed"


def node_log(local_ranks=(0, 1), end=True) -> str:
    """Two ranks of one node as torchrun prints them: every titan line once per local rank."""
    steps = LOG.splitlines()[1:]
    lines = []
    for lr in local_ranks:
        body = [FIRST, *steps[:1], steps[lr % 2 + 1], steps[3]] + ([LAST] if end else [])
        lines += [f"[rank{lr}]:{x}" for x in body]
    return "torchrun banner\n" + "\n".join(lines) + "\n"


def test_the_adapter_reads_every_rank_of_a_node_into_start_step_and_end_events():
    recs = torchtitan_records(node_log(), node_rank=1, procs_per_node=2, tokens_per_step=8192)
    assert [(r["event"], r["rank"]) for r in recs if r["event"] != "step"] == [
        ("start", 2), ("end", 2), ("start", 3), ("end", 3)]
    step11 = next(r for r in recs if r["rank"] == 3 and r.get("step") == 11)
    # rank 3 is local rank 1 of node 1; its step-11 line is the second one of the log (8,723 tokens/s)
    assert step11 | {"time": 0} == {"event": "step", "rank": 3, "step": 11, "time": 0, "loss": 5.66745,
                                    "tokens_per_s_per_device": 8723.0, "tflops_per_device": 505.2,
                                    "mfu": pytest.approx(0.5108), "peak_reserved_gib": 80.97,
                                    "step_time_s": round(8192 / 8723, 6)}
    assert step11["time"] - recs[0]["time"] == pytest.approx(22.586)  # 08:09:12,587 - 08:08:50,001
    # A rank that never reached the end of main() has no end event: all_ranks_reported names it.
    cut = torchtitan_records(node_log(end=False))
    assert {r["event"] for r in cut} == {"start", "step"}
    # The anchor script reads the same lines with the same parser (one copy).
    assert parse_steps(LOG)[11]["tps"] == 8723.0


# Two lines of this case's own run through the launcher on 2x H200 (docs/test_cases/torchtitan.md).
LAUNCHED = """\
[rank0]:[titan] 2026-11-30 22:35:09,497 - root - INFO - step: 11  loss:  4.77522  grad_norm: 30.7836  memory: 80.97GiB(57.92%)  tps: 8,851  tflops: 512.62  mfu: 51.83%
[rank1]:[titan] 2026-11-30 22:35:09,497 - root - INFO - step: 11  loss:  4.77522  grad_norm: 30.7836  memory: 80.97GiB(57.92%)  tps: 8,850  tflops: 512.52  mfu: 51.82%
"""  # noqa: E501 (log lines as torchrun prints them)


def test_the_lines_of_a_launched_run_carry_their_rank():
    recs = torchtitan_records(LAUNCHED, node_rank=0, procs_per_node=2)
    assert [(r["event"], r["rank"], r.get("tokens_per_s_per_device")) for r in recs] == [
        ("start", 0, None), ("step", 0, 8851.0), ("start", 1, None), ("step", 1, 8850.0)]


def test_the_report_of_a_torchtitan_run_comes_from_its_logs(tmp_path):
    plan = {"run_id": "t1", "test_case": "torchtitan", "preset": "gpu-debug", "nodes": ["gpu0", "gpu1"],
            "procs_per_node": 2, "world_size": 4, "accelerator": "cuda",
            "params": {"seq_len": 8192, "local_batch_size": 1},
            "checks": ["all_ranks_reported", "no_nan", "loss_decreased"],
            "metrics": {"adapter": "torchtitan", "plots": [{"event": "step", "x": "step", "y": "loss"}]}}
    for host in plan["nodes"]:
        (tmp_path / "nodes" / host).mkdir(parents=True)
        (tmp_path / "nodes" / host / "torchrun.log").write_text(node_log())
        (tmp_path / "nodes" / host / "rc").write_text("0\n")
    s = write_report(str(tmp_path), plan)
    assert s["status"] == "passed", s["failures"]
    assert s["ranks_reported"] == [0, 1, 2, 3] and s["steps"] == 3
    assert (s["loss_first"], s["loss_last"]) == (12.27436, 4.89492)
    # Steps 11-12 of every rank: local rank 0 printed 8,725 at step 11, local rank 1 8,723; both 8,695.
    assert s["steady"]["tokens_per_s_per_device"] == pytest.approx((8725 + 8723 + 2 * 8695) / 4)
    assert s["peak_reserved_gib_max"] == 80.97 and s["plots"] == ["loss_vs_step.png"]
    merged = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {r["host"] for r in merged} == {"gpu0", "gpu1"}
    # One node's log lost its last lines: the report says which ranks stopped.
    (tmp_path / "nodes" / "gpu1" / "torchrun.log").write_text(node_log(end=False))
    s = summarize(str(tmp_path), plan)
    assert s["status"] == "failed" and "rank(s) 2, 3 stopped before the end" in s["failures"][0]
    with pytest.raises(ValueError, match="unknown metrics adapter 'megatron' \\(known: torchtitan\\)"):
        adapter_records(str(tmp_path), plan | {"metrics": {"adapter": "megatron"}})


def test_the_shim_turns_our_options_into_torchtitans(tmp_path):
    ours, rest = titan_train.parse(["--config", "llama3_8b", "--compile", "--float8", "tensorwise",
                                    "--training.steps", "40", "--training.seq_len", "8192",
                                    "--output-dir", str(tmp_path)])
    argv = titan_train.titan_argv(ours, rest, tmp_path / "assets")
    assert argv[:2] == ["--job.config_file", str(REPO / "test_cases/torchtitan/config/llama3_8b.toml")]
    assert argv[argv.index("--job.dump_folder") + 1] == str(tmp_path / "torchtitan")
    assert argv[argv.index("--model.hf_assets_path") + 1] == str(tmp_path / "assets" / "tokenizer")
    assert "--compile.enable" in argv and "--output-dir" not in argv
    assert argv[-4:] == ["--training.steps", "40", "--training.seq_len", "8192"]  # the run's options last
    assert argv[argv.index("--model.converters") + 1] == "quantize.linear.float8"
    assert "--quantize.linear.float8.recipe_name" in titan_train.float8_args("rowwise")
    with pytest.raises(SystemExit):
        titan_train.parse(["--config", "nope", "--output-dir", str(tmp_path)])


def test_staged_jsonl_and_tokenizer_become_torchtitans_dataset_and_assets_paths(tmp_path):
    data = jsonl_with_tokenizer(tmp_path / "texts")
    (data / "more.jsonl").write_text(json.dumps({"text": "Four score."}) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    ours, rest = titan_train.parse(["--dataset", "staged", "--data-path", str(data), "--training.steps", "20",
                                    "--output-dir", str(out)])
    assets = titan_train.link_staged(out, ours.data_path)
    argv = titan_train.titan_argv(ours, rest, assets)
    tokenizer = Path(argv[argv.index("--model.hf_assets_path") + 1])
    dataset = Path(argv[argv.index("--training.dataset_path") + 1])
    assert (tokenizer, dataset) == (out / "staged-assets" / "tokenizer", out / "staged-assets" / "data")
    # torchtitan's HF tokenizer reads <dir>/tokenizer.json; its c4_test loader every file of <dir>.
    assert [p.name for p in tokenizer.iterdir()] == ["tokenizer.json"]
    assert (tokenizer / "tokenizer.json").resolve() == data / "tokenizer.json"
    assert sorted(p.name for p in dataset.iterdir()) == ["more.jsonl", "texts.jsonl"]
    assert (dataset / "more.jsonl").read_text() == (data / "more.jsonl").read_text()
    assert "--dataset" not in argv and "--data-path" not in argv and argv[-2:] == ["--training.steps", "20"]


def _refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        titan_train.main([*argv])
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_staged_data_torchtitan_cannot_read_is_one_line_before_torchtitan(tmp_path, capsys):
    out = ["--output-dir", str(tmp_path / "out")]
    pre = shards(tmp_path / "shards")
    assert _refused(["--dataset", "staged", "--data-path", str(pre), *out], capsys) == (
        f"torchtitan: {pre / 'index.json'}: pre-tokenized shards; torchtitan tokenizes text itself: "
        "stage *.jsonl with its tokenizer.json for this case\n")
    data = jsonl_with_tokenizer(tmp_path / "texts")
    texts = (data / "texts.jsonl").read_text()
    (data / "texts.jsonl").write_text(texts[:len(texts) // 2])  # a copy that died mid-line
    lines = texts[:len(texts) // 2].count("\n") + 1
    assert _refused(["--dataset", "staged", "--data-path", str(data), *out], capsys) == (
        f"torchtitan: {data / 'texts.jsonl'}:{lines}: not a JSON object with a string 'text' "
        "(JSONDecodeError)\n")
    (data / "tokenizer.json").unlink()
    assert _refused(["--dataset", "staged", "--data-path", str(data), *out], capsys) == (
        f"torchtitan: {data / 'tokenizer.json'}: missing (jsonl text needs the tokenizer staged beside it)\n")
    assert not (tmp_path / "out" / "staged-assets").exists()


def test_the_manifest_plans_torchrun_over_the_shim_with_torchtitans_options(tmp_path):
    manifest = testcase.load_manifest(str(REPO / "test_cases"), "torchtitan")
    plan = testcase.resolve(manifest, preset="llama3-8b-fp8", hosts=["gpu0", "gpu1"], target="cluster",
                            procs_per_node=2, params={"steps": 30})
    argv = job_launch.rank_argv(plan, "/opt/awsome/envs/torchtitan/bin/python")
    line = job_launch.shell_words(argv)
    assert line.startswith('/opt/awsome/envs/torchtitan/bin/python -m torch.distributed.run '
                           '--nnodes "${NNODES}"')
    assert "--role rank --tee 3 code/torchtitan/src/titan_train.py" in line
    args = argv[argv.index("code/torchtitan/src/titan_train.py") + 1:]

    def value(flag):
        return args[args.index(flag) + 1]
    assert value("--training.steps") == "30" and value("--training.seq_len") == "8192"
    assert value("--config") == "llama3_8b" and value("--float8") == "tensorwise" and "--compile" in args
    assert value("--dataset") == "corpus"
    staged = testcase.resolve(manifest, preset="gpu-debug", hosts=["gpu0"], target="cluster",
                              params={"dataset": "staged", "data_path": "/fsx/data/texts"})
    staged_argv = job_launch.rank_argv(staged, "python")
    assert staged_argv[staged_argv.index("--data-path") + 1] == "/fsx/data/texts"
    assert staged_argv[staged_argv.index("--dataset") + 1] == "staged"
    assert args[-2:] == ["--output-dir", "${AWSOME_OUTPUT_DIR}"]
    assert plan["metrics"]["adapter"] == "torchtitan" and plan["world_size"] == 2
    with pytest.raises(testcase.ManifestError, match="warmup_steps <= steps"):
        testcase.resolve(manifest, preset="gpu-debug", hosts=["gpu0"], target="cluster",
                         params={"steps": 1, "warmup_steps": 2})
    # A manifest naming an adapter the report does not have is refused when it is loaded.
    bad = tmp_path / "cases" / "titan2"
    bad.mkdir(parents=True)
    (bad / "testcase.yml").write_text((REPO / "test_cases/torchtitan/testcase.yml").read_text()
                                      .replace("adapter: torchtitan", "adapter: titan"))
    refused = r"unknown metrics.adapter 'titan' \(known: torchtitan\)"
    with pytest.raises(testcase.ManifestError, match=refused):
        testcase.load_manifest(str(tmp_path / "cases"), "titan2")
