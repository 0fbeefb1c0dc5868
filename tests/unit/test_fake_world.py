"""DTCASE_FAKE_WORLD_SIZE: one process plays rank 0 of N ranks whose collectives move nothing, so the
memory of an N-GPU preset can be measured on one GPU. Here, on CPU: the process holds rank 0's
shard of N, trains on to the end with its records marked, and bad values are refused in one line.
The peak memory it exists for is measured on the GPU machine (docs/performance.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from dtcase.model import MODEL_CONFIGS, Transformer
from dtcase.runtime import FAKE_WORLD_SIZE_ENV, fake_world_size, init_distributed
from dtcase.trainer import TrainSetup, base_parser, parse_args, train
from helpers import REPO

FSDP_SRC = REPO / "test_cases" / "fsdp" / "src"
sys.path.insert(0, str(FSDP_SRC))
from parallelize import parallelize  # noqa: E402


@pytest.fixture
def torchrun_env(monkeypatch):
    """One process as torchrun would start it; init_distributed's defaults are undone afterwards."""
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": "29599"}.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_one_process_holds_rank_0s_shard_and_trains_to_the_end(torchrun_env, tmp_path):
    torchrun_env.setenv(FAKE_WORLD_SIZE_ENV, "4")
    ctx = init_distributed()
    try:
        assert (ctx.rank, ctx.world_size, ctx.fake_collectives) == (0, 4, True)
        assert dist.get_backend() == "fake"
        args = parse_args(base_parser("test", str(FSDP_SRC / "train.py")), [
            "--model", "tiny", "--seq-len", "16", "--local-batch-size", "2", "--steps", "4",
            "--warmup-steps", "0", "--output-dir", str(tmp_path)])
        model = Transformer(MODEL_CONFIGS["tiny"], args.seq_len)
        model.init_weights()
        full = model.layers["0"].attention.wq.weight.shape
        parallelize(model, ac="none", compile_blocks=False, device_type="cpu", world_size=ctx.world_size,
                    param_dtype=torch.float32)
        # A quarter of every weight lives here, as on rank 0 of four real ranks.
        assert model.layers["0"].attention.wq.weight.to_local().shape == (full[0] // 4, full[1])
        code = train(TrainSetup(args=args, ctx=ctx, model=model, base=model, dtype=torch.float32))
    finally:
        dist.destroy_process_group()
    records = [json.loads(line) for line in (tmp_path / "metrics-rank0.jsonl").read_text().splitlines()]
    assert code == 0
    assert records[0]["event"] == "start" and records[0]["fake_collectives"] is True
    assert all(r["rank"] == 0 and r["world_size"] == 4 for r in records)
    # The loss is not meaningful (gathered weights are whatever the buffers held), but every step ran.
    assert [r["step"] for r in records if r["event"] == "step"] == [1, 2, 3, 4]
    end = records[-1]
    assert (end["event"], end["status"], end["steps"]) == ("end", "ok", 4)


@pytest.mark.parametrize(("value", "world", "message"), [
    ("1", "1", "expected an integer of at least 2 (the ranks to simulate), got '1'"),
    ("two", "1", "expected an integer of at least 2 (the ranks to simulate), got 'two'"),
    ("2", "2", "one process plays rank 0 of the simulated world: start one, not 2"),
], ids=["one", "not-a-number", "two-processes"])
def test_bad_values_are_one_line_before_any_process_group(torchrun_env, capsys, value, world, message):
    torchrun_env.setenv(FAKE_WORLD_SIZE_ENV, value)
    torchrun_env.setenv("WORLD_SIZE", world)
    with pytest.raises(SystemExit) as exc:
        fake_world_size()
    assert exc.value.code == 2 and not dist.is_initialized()
    expected = f"{Path(sys.argv[0]).name}: error: {FAKE_WORLD_SIZE_ENV}: {message}"
    assert capsys.readouterr().err.splitlines() == [expected]


def test_unset_means_a_real_process_group(torchrun_env):
    torchrun_env.delenv(FAKE_WORLD_SIZE_ENV, raising=False)
    assert fake_world_size() == 0
