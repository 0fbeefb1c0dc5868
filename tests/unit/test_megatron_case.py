"""The megatron case's entry point without megatron-core: its arguments, their checks and the layout
of ranks, and the launch the manifest plans.

megatron-core needs CUDA (and Python >= 3.12 for 0.19), so the training itself runs only on the GPU
machine (docs/test_cases/megatron.md); train.py imports megatron-core and torch inside main() so that
what is tested here imports without them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from staged_fixtures import shards

from ansible_collections.awsome.distributed_training.plugins.module_utils import job_launch, testcase
from helpers import load_module

REPO = Path(__file__).resolve().parents[2]
train = load_module(REPO / "test_cases/megatron/src/train.py", "megatron_train")


def args_of(*argv: str):
    parser = train.manifest_parser(train.__file__, "test")
    return parser.parse_args([*argv, "--output-dir", "/tmp/x"])


def test_the_entry_point_takes_the_manifests_parameters_and_checks_them_against_the_ranks():
    a = args_of("--model", "small", "--tp", "2", "--global-batch-size", "8", "--no-bf16")
    assert (a.model, a.tp, a.global_batch_size, a.bf16, a.seq_len) == ("small", 2, 8, False, 256)
    assert train.check(a, world_size=4) is None
    assert train.check(a, world_size=3) == "tensor parallel size 2 does not divide the 3 ranks"
    assert train.check(args_of("--tp", "8"), world_size=8) == (
        "tensor parallel size 8 does not divide the 4 attention heads of tiny")
    assert train.check(args_of("--tp", "1", "--global-batch-size", "6"), world_size=4) == (
        "global batch 6 is not a multiple of the data-parallel size 4")
    with pytest.raises(SystemExit):  # the manifest's choices and bounds hold on the node too
        args_of("--model", "gpt-7b")
    with pytest.raises(SystemExit):
        args_of("--tp", "0")


def test_tensor_parallel_neighbours_share_a_batch_and_data_parallel_ranks_split_it():
    a = args_of("--model", "small", "--tp", "2", "--global-batch-size", "8", "--seq-len", "1024")
    layout = [train.plan(a, world_size=4, rank=r) for r in range(4)]
    assert [p["dp_rank"] for p in layout] == [0, 0, 1, 1]  # megatron-core: TP ranks are adjacent
    assert {p["micro_batch"] for p in layout} == {4} and {p["dp_size"] for p in layout} == {2}
    assert layout[0]["tokens_per_step_per_device"] == 4 * 1024 / 2
    layers, hidden, _heads, ffn = train.MODELS["small"]
    weights = layers * (4 * hidden**2 + 2 * hidden * ffn) + train.VOCAB * hidden
    assert layout[0]["flops_per_token"] == 6 * weights + 12 * layers * hidden * 1024


def test_staged_batches_follow_the_rule_of_every_case_tp_neighbours_share_one(tmp_path):
    import torch

    from dtcase.staged import StagedTokens

    data = StagedTokens(shards(tmp_path / "shards"), seq_len=32, vocab_size=train.VOCAB)
    a = args_of("--tp", "2", "--global-batch-size", "8", "--seq-len", "32")
    layout = [train.plan(a, world_size=4, rank=r) for r in range(4)]
    seen = []
    for step in (1, 2):
        got = [train.staged_batch(data, step, p["dp_rank"], p["micro_batch"], p["dp_size"], "cpu")
               for p in layout]
        assert torch.equal(got[0][0], got[1][0]) and torch.equal(got[2][0], got[3][0])  # one TP group
        for dp_rank in (0, 1):
            inputs, labels = got[2 * dp_rank]
            assert torch.equal(inputs[:, 1:], labels[:, :-1])
            for b, row in enumerate(inputs):  # samples 8 (s - 1) + 4 dp_rank + b
                assert torch.equal(row, torch.from_numpy(data.window(8 * (step - 1) + 4 * dp_rank + b)[:-1]))
                seen.append(8 * (step - 1) + 4 * dp_rank + b)
    assert sorted(seen) == list(range(16))


def test_a_cut_shard_stops_the_rank_in_one_line_before_torch_or_megatron(tmp_path, monkeypatch, capsys):
    data = shards(tmp_path / "shards")
    cut = data / json.loads((data / "index.json").read_text())["shards"][3]["file"]
    cut.write_bytes(cut.read_bytes()[:10])
    monkeypatch.setattr(sys, "argv", ["train.py", "--dataset", "staged", "--data-path", str(data),
                                      "--output-dir", str(tmp_path / "out")])
    monkeypatch.setitem(sys.modules, "megatron", None)  # reaching its import would fail differently
    with pytest.raises(SystemExit) as exc:
        train.main()
    assert exc.value.code == 2 and not (tmp_path / "out").exists()
    tokens = json.loads((data / "index.json").read_text())["shards"][3]["tokens"]
    assert capsys.readouterr().err.splitlines() == [
        f"megatron: {cut}: 10 bytes, the index says {tokens} uint16 tokens ({2 * tokens} bytes): truncated"]


def test_the_manifest_plans_torchrun_over_the_entry_point_from_the_cases_venv():
    manifest = testcase.load_manifest(str(REPO / "test_cases"), "megatron")
    plan = testcase.resolve(manifest, preset="gpu-tp2", hosts=["gpu0"], target="cluster")
    argv = job_launch.rank_argv(plan, "/opt/awsome/envs/megatron/bin/python")
    assert argv[:3] == ["/opt/awsome/envs/megatron/bin/python", "-m", "torch.distributed.run"]
    script = argv.index("code/megatron/src/train.py")
    assert argv[script + 1:] == ["--bf16", "--data-path", "", "--data-verify", "sha256",
                                 "--dataset", "corpus", "--global-batch-size", "8", "--grad-clip", "1.0",
                                 "--lr", "0.001",
                                 "--model", "small", "--seed", "0", "--seq-len", "1024", "--steps", "50",
                                 "--tp", "2", "--warmup-steps", "5", "--output-dir", "${AWSOME_OUTPUT_DIR}"]
    assert plan["framework_module"] == "megatron.core" and plan["world_size"] == 2
    assert all(r.count("==") == 1 for r in manifest["environment"]["requirements"])


def test_gradient_clipping_uses_the_norm_of_the_whole_tensor_parallel_model(monkeypatch):
    """Rank 0 of a tensor-parallel pair holds the shard (3, 0) of a weight, rank 1 (0, 4); a replicated
    norm weight has gradient 12 on both: the model's norm is 13 (a per-rank norm would be 12.4 here).
    The group's all-reduce is stood in for by adding rank 1's share; on 2x H200 both ranks of gpu-tp2
    logged the same grad_norm at every step (docs/test_cases/megatron.md)."""
    import torch
    import torch.distributed as dist

    def all_reduce(tensor, group=None):
        assert group == "tp"
        tensor += 16.0  # rank 1's sum of squares of its shard

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    shard = torch.nn.Parameter(torch.zeros(2))
    shard.tensor_model_parallel = True
    shard.grad = torch.tensor([3.0, 0.0])
    norm = torch.nn.Parameter(torch.zeros(1))
    norm.grad = torch.tensor([12.0])
    assert train.clip_grad_norm([shard, norm], 1.0, "tp") == pytest.approx(13.0)
    assert norm.grad.tolist() == pytest.approx([12 / 13])
    assert shard.grad.tolist() == pytest.approx([3 / 13, 0])
    # grad_clip 0: the norm is still measured, the gradients are left as they are
    norm.grad, shard.grad = torch.tensor([12.0]), torch.tensor([3.0, 0.0])
    assert train.clip_grad_norm([shard, norm], 0.0, "tp") == pytest.approx(13.0)
    assert norm.grad.tolist() == [12.0] and shard.grad.tolist() == [3.0, 0.0]
