"""The composer case: its metrics adapter on real Composer 0.32.1 log lines, and its launch.

tests/fixtures/composer holds what one real run wrote here (2 ranks on 127.0.0.1, `cpu-tiny` with
12 steps, Composer's launcher per "node", mosaicml 0.32.1 on torch 2.7.0): Composer's own FileLogger
files of both ranks and the events rank 0 wrote through the case's logger destination. Composer
itself cannot be imported here (the collection's venv has a newer torch than mosaicml allows); the
adapter is standard library only, the data (composer_case.data) torch only. The run through the
launcher on two simulated nodes (on staged shards) is tests/integration/test_catalogue.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from staged_fixtures import shards

from ansible_collections.awsome.distributed_training.plugins.module_utils.job_launch import (
    rank_argv,
    shell_words,
)
from ansible_collections.awsome.distributed_training.plugins.module_utils.testcase import (
    load_manifest,
    resolve,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "composer"
sys.path.insert(0, str(REPO / "test_cases" / "composer" / "src"))

from composer_case.adapter import events_from_log, parse_line, step_event  # noqa: E402  (stdlib only)
from composer_case.data import RankSamples, StagedWindows  # noqa: E402  (torch only)

from dtcase.staged import StagedTokens  # noqa: E402


def test_composers_own_log_lines_become_the_common_step_events():
    events = events_from_log((FIXTURES / "composer-rank0.log").read_text())
    assert [e["step"] for e in events] == list(range(1, 13))
    # Composer logs the first batch's loss at batch=0: it is step 1's, not a step 0.
    assert events[0] == {"step": 1, "loss": 5.6485, "lr": 0.003}
    assert events[-1]["loss"] < events[0]["loss"] - 2
    # SpeedMonitor (window 2) reports from the third batch on: tokens/s per device and step time.
    assert all("tokens_per_s_per_device" not in e for e in events[:2])
    for e in events[2:]:
        assert 500 < e["tokens_per_s_per_device"] < 1e6 and 0 < e["step_time_s"] < 10
        # 8 samples x 64 tokens per rank and step: the two figures describe the same steps.
        assert e["tokens_per_s_per_device"] * e["step_time_s"] == pytest.approx(8 * 64, rel=0.02)
    # The Trainer all-reduces the loss: both ranks logged the same numbers.
    assert events_from_log((FIXTURES / "composer-rank1.log").read_text()) == events


def test_the_events_the_run_wrote_live_match_its_composer_log():
    live = [json.loads(line) for line in (FIXTURES / "metrics-rank0.jsonl").read_text().splitlines()]
    assert [e["event"] for e in live] == ["start"] + ["step"] * 12 + ["end"]
    assert live[0]["framework"] == "composer 0.32.1" and live[0]["torch"].startswith("2.7.0")
    from_log = events_from_log((FIXTURES / "composer-rank0.log").read_text())
    for got, want in zip(live[1:-1], from_log, strict=True):
        assert set(got) - {"event", "rank", "world_size", "node", "time"} == set(want)
        for key, value in want.items():  # the FileLogger writes 4 decimals
            assert got[key] == pytest.approx(value, abs=5e-5, rel=1e-4), (got["step"], key)


def test_lines_that_are_not_numeric_metrics_are_left_out():
    assert parse_line("[metric][batch=7]: throughput/device/tokens_per_sec: 4290.1013 \n") == \
        (7, "throughput/device/tokens_per_sec", 4290.1013)
    assert parse_line('[hyperparameter]: composer_version: "0.32.1" ') is None
    assert parse_line('[metric][batch=3]: run_name: "x"') is None
    assert step_event(3, {"throughput/batches_per_sec": 2.0}) is None  # no loss: not a training step
    assert step_event(4, {"loss/train/total": 1.5, "throughput/batches_per_sec": 4.0,
                          "throughput/device/flops": 2.5e14, "throughput/device/mfu": 0.4}) == \
        {"step": 4, "loss": 1.5, "step_time_s": 0.25, "tflops_per_device": 250.0, "mfu": 0.4}


@pytest.mark.parametrize(("preset", "nproc", "world", "extra"), [
    ("cpu-tiny", 1, 2, "--data-path '' --data-verify sha256 --dataset corpus "
                       "--global-batch-size 16 --lr 0.003 --model tiny --seed 0 --seq-len 64 "
                       "--speed-window 2 --steps 30"),
    ("p5-2node", 8, 16, "--data-path '' --data-verify sha256 --dataset corpus "
                        "--global-batch-size 128 --lr 0.0006 --model small --seed 0 --seq-len 2048 "
                        "--speed-window 10 --steps 50"),
])
def test_each_node_runs_composers_launcher_with_the_launch_contract(preset, nproc, world, extra):
    plan = resolve(load_manifest(str(REPO / "test_cases"), "composer"), preset=preset,
                   hosts=["node1", "node2"], target="cluster")
    assert (plan["launch_mode"], plan["venv"]) == ("command", "composer")
    assert plan["framework_module"] == "composer"
    assert (plan["procs_per_node"], plan["world_size"]) == (nproc, world)
    assert shell_words(rank_argv(plan, "/opt/awsome/envs/composer/bin/python")) == (
        '/opt/awsome/envs/composer/bin/python -m composer.cli.launcher --nproc "${NPROC_PER_NODE}" '
        '--world_size "${WORLD_SIZE}" --node_rank "${NODE_RANK}" --master_addr "${MASTER_ADDR}" '
        '--master_port "${MASTER_PORT}" --stdout "${AWSOME_OUTPUT_DIR}"\'/stdout-rank{rank}.log\' '
        '--stderr "${AWSOME_OUTPUT_DIR}"\'/stderr-rank{rank}.log\' code/composer/src/train.py '
        f'{extra} --output-dir "${{AWSOME_OUTPUT_DIR}}"')


def test_the_environment_pins_composer_and_the_torch_it_allows():
    env = load_manifest(str(REPO / "test_cases"), "composer")["environment"]
    assert env["requirements"] == ["mosaicml==0.32.1", "torch==2.7.0"]  # mosaicml: torch>=2.6,<2.7.1


def test_ranks_read_disjoint_staged_windows_by_the_rule_of_every_case(tmp_path):
    import torch

    data = StagedTokens(shards(tmp_path / "shards"), seq_len=16, vocab_size=256)
    dataset = StagedWindows(data)
    loaders = [torch.utils.data.DataLoader(dataset, batch_size=4, drop_last=True,
                                           sampler=RankSamples(dataset, steps=3, global_batch=8, rank=r,
                                                               world_size=2))
               for r in range(2)]
    batches = [list(loader) for loader in loaders]
    assert [len(b) for b in batches] == [3, 3]
    for step in range(3):
        for rank in range(2):
            inputs, labels = batches[rank][step]
            assert torch.equal(inputs[:, 1:], labels[:, :-1])
            # Step s, rank r: samples 8 (s - 1) + 4 r + b, as every case reads them.
            first = 8 * step + 4 * rank
            assert all(torch.equal(row, torch.from_numpy(data.window(first + b)[:-1]))
                       for b, row in enumerate(inputs))
    assert len(dataset) == data.total and torch.equal(dataset[data.total][0], dataset[0][0])  # wraps
    # Composer accepts no other sampler class on more than one rank.
    assert isinstance(loaders[0].sampler, torch.utils.data.distributed.DistributedSampler)
