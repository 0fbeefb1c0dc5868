"""The picotron-style 4D case: layout checks, the data split, and real multi-process runs whose loss
must equal the 1-process loss.

The runs train on staged data (``--dataset staged``): public-domain text as jsonl with a BPE
tokenizer.json trained on it (tests/staged_fixtures.py), read through the ``tokenizers`` package,
so the jsonl path runs end to end here; the dp ranks read disjoint samples, and the layouts still
see exactly the tokens of the 1-process run.

The ranks are started with the environment torchrun gives them (no agent: faster to start), gloo on
127.0.0.1, CPU only. The NCCL path (same code, CUDA tensors) cannot run on this machine. All four
axes together (16 ranks) take ~105 s here, too long for `make test`: the tests run two 4-rank
layouts that cover every axis (dp2 x cp2: gradients summed over dp and cp; pp2 x tp2: the AFAB
schedule with tensor-parallel stages); the 16-rank layout is the `cpu-4d` preset on the simulated
cluster (docs/test_cases/picotron.md gives its measured losses).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from staged_fixtures import jsonl_with_tokenizer, shards

from helpers import gloo_rank_envs, run_local_processes

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "test_cases" / "picotron" / "src"
sys.path.insert(0, str(SRC))

from picotron4d.data import GlobalBatches  # noqa: E402
from picotron4d.layout import Layout, LayoutError, check_layout  # noqa: E402

from dtcase.staged import StagedTokens  # noqa: E402

ARGS = ["--model", "tiny", "--seq-len", "64", "--global-batch-size", "8", "--micro-batches", "2",
        "--steps", "8", "--lr", "0.003"]
# fp32 sums taken in a different order (all-reduces, split matmuls) move the loss by ~1e-7 per step
# here; Adam keeps that small over 8 steps. 1e-5 would still catch any real error (a missing
# gradient reduction or a wrong mask moves the loss by 1e-2 or more from the first steps).
TOLERANCE = 1e-5
MODEL = {"n_layers": 4, "n_heads": 4, "n_kv_heads": 2, "ffn_dim": 192, "vocab_size": 256}


def test_layout_must_match_the_world_size_in_one_line():
    with pytest.raises(LayoutError) as exc:
        check_layout(Layout(dp=2, pp=2, cp=1, tp=2), world_size=4, seq_len=64, global_batch=8,
                     micro_batches=2, **MODEL)
    assert str(exc.value) == ("dp*pp*cp*tp = dp2 x pp2 x cp1 x tp2 = 8 must equal the world size 4 "
                              "(nodes x procs per node)")


@pytest.mark.parametrize(("layout", "extra", "message"), [
    (Layout(pp=3), {}, r"the model's layers \(4\) must divide evenly by pp \(3\)"),
    (Layout(tp=4), {}, r"the key/value heads \(2\) must divide evenly by tp \(4\)"),
    (Layout(cp=3), {"seq_len": 64}, r"seq_len \(64\) must divide evenly by cp \(3\)"),
    (Layout(dp=2), {"micro_batches": 3},
     r"global_batch_size \(8\) must divide evenly by dp x micro_batches \(6\)"),
])
def test_layout_must_divide_the_model_and_batch(layout, extra, message):
    kwargs = {"seq_len": 64, "global_batch": 8, "micro_batches": 2, **MODEL, **extra}
    with pytest.raises(LayoutError, match=message):
        check_layout(layout, world_size=layout.size, **kwargs)


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> Path:
    # A small vocabulary (near character level): real text the tiny model learns within 8 steps.
    return jsonl_with_tokenizer(tmp_path_factory.mktemp("texts"), vocab_size=100)


@pytest.mark.parametrize("source", ["corpus", "staged"])
def test_dp_and_cp_ranks_together_read_exactly_the_global_batch(source, tmp_path):
    staged = (StagedTokens(shards(tmp_path / "shards"), seq_len=16, vocab_size=256)
              if source == "staged" else None)
    data = GlobalBatches(seq_len=16, global_batch=8, steps=3, staged=staged)
    (whole_in, whole_lab), = data.rank_micro_batches(2, dp=1, dp_rank=0, cp=1, cp_rank=0, micro_batches=1)
    import torch

    rows_in, rows_lab = [], []
    for d in range(2):
        per_cp = [data.rank_micro_batches(2, dp=2, dp_rank=d, cp=2, cp_rank=c, micro_batches=2)
                  for c in range(2)]
        for m in range(2):  # micro-batches in order, cp chunks side by side
            rows_in.append(torch.cat([per_cp[c][m][0] for c in range(2)], dim=1))
            rows_lab.append(torch.cat([per_cp[c][m][1] for c in range(2)], dim=1))
    assert torch.equal(torch.cat(rows_in), whole_in) and torch.equal(torch.cat(rows_lab), whole_lab)
    assert torch.equal(whole_in[:, 1:], whole_lab[:, :-1])  # labels are the next tokens
    if staged is not None:  # step 2 of 8 samples a step: staged windows 8..15, dp rank 1 the last 4
        assert torch.equal(whole_in[0], torch.from_numpy(staged.window(8)[:-1]))
        (dp1_in, _unused), = data.rank_micro_batches(2, dp=2, dp_rank=1, cp=1, cp_rank=0, micro_batches=1)
        assert all(torch.equal(row, torch.from_numpy(staged.window(12 + i)[:-1]))
                   for i, row in enumerate(dp1_in))


def _run(out: Path, world: int, *layout: str, data: Path | None = None
         ) -> tuple[list[int], list[list[dict]], str]:
    staged = ["--dataset", "staged", "--data-path", str(data)] if data else []
    cmd = [sys.executable, str(SRC / "train.py"), *ARGS, *staged, *layout, "--output-dir", str(out)]
    codes, logs = run_local_processes(cmd, gloo_rank_envs(world, REPO / "test_cases" / "common", SRC))
    records = [[json.loads(line) for line in (out / f"metrics-rank{r}.jsonl").read_text().splitlines()]
               if (out / f"metrics-rank{r}.jsonl").exists() else [] for r in range(world)]
    return codes, records, "\n".join(logs)


def _losses(records: list[dict]) -> list[float]:
    return [r["loss"] for r in records if r["event"] == "step"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, texts):
    codes, ranks, log = _run(tmp_path_factory.mktemp("pico1") / "out", 1, data=texts)
    assert codes == [0], log[-3000:]
    assert ranks[0][0]["data"] == {"layout": "jsonl", "shards": 1, "tokens": 7993, "samples": 124,
                                   "vocab_size": 100}
    return _losses(ranks[0])


def test_entrypoint_refuses_a_layout_that_does_not_fill_the_world(tmp_path):
    codes, _unused, log = _run(tmp_path / "out", 1, "--tp", "2")
    assert codes == [2]
    assert log.strip() == ("picotron: dp*pp*cp*tp = dp1 x pp1 x cp1 x tp2 = 2 must equal the world size 1 "
                           "(nodes x procs per node)")


def test_entrypoint_refuses_a_cut_shard_in_one_line_before_any_step(tmp_path):
    data = shards(tmp_path / "shards")
    index = json.loads((data / "index.json").read_text())
    cut = data / index["shards"][1]["file"]
    cut.write_bytes(cut.read_bytes()[:1000])
    codes, ranks, log = _run(tmp_path / "out", 2, "--dp", "2", data=data)
    assert codes == [2, 2] and ranks == [[], []]  # no rank joined the group or wrote an event
    line = f"picotron: {cut}: 1000 bytes, the index says 4000 uint16 tokens (8000 bytes): truncated"
    assert [x for x in log.splitlines() if x] == [line, line]


@pytest.mark.slow
@pytest.mark.parametrize("layout", [("--dp", "2", "--cp", "2"), ("--pp", "2", "--tp", "2")],
                         ids=["dp2xcp2", "pp2xtp2"])
def test_parallel_layout_loss_equals_the_one_process_loss(reference, texts, layout, tmp_path):
    codes, ranks, log = _run(tmp_path / "out", 4, *layout, data=texts)
    assert codes == [0] * 4, log[-4000:]
    # It trains: real text falls more slowly than the generated corpus (6.0 -> 5.0 in 8 steps).
    assert len(reference) == 8 and reference[-1] < reference[0] - 0.5
    for rank, records in enumerate(ranks):
        assert [r["event"] for r in records] == ["start"] + ["step"] * 8 + ["end"]
        assert all(r["rank"] == rank and r["world_size"] == 4 for r in records)
        losses = _losses(records)
        worst = max(abs(a - b) for a, b in zip(losses, reference, strict=True))
        assert worst < TOLERANCE, (losses, reference)
    coords = {tuple(recs[0]["coord"][a] for a in ("dp", "pp", "cp", "tp")) for recs in ranks}
    assert len(coords) == 4  # every rank holds a distinct place on the mesh
    if "--pp" in layout:  # each stage holds its half of the layers, tp-sharded
        assert sorted(tuple(recs[0]["stage_layers"]) for recs in ranks) == [(0, 1)] * 2 + [(2, 3)] * 2
