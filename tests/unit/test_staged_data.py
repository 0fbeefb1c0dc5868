"""Training on staged data (dtcase.staged, dtcase.prepare, ``--dataset staged``): shards written from
the fixture text, memory-mapped, disjoint per rank, resumed at the exact data position, and every
bad-input case refused in one line naming the file before anything starts.

The jsonl layout reads the staged tokenizer.json with the ``tokenizers`` package (in the collection's
venv): a BPE tokenizer trained on the fixture text (tests/staged_fixtures.py) here, and the one line
a node without the package gets, with the package hidden from the import.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from staged_fixtures import EOS, jsonl_with_tokenizer

from dtcase import checkpoint, prepare
from dtcase.data import TokenBatches, position_ids
from dtcase.model import MODEL_CONFIGS, Transformer
from dtcase.runtime import DistContext
from dtcase.staged import INDEX, StagedDataError, StagedTokens
from dtcase.trainer import TrainSetup, base_parser, build_optimizer, parse_args, train
from helpers import REPO

CORPUS = REPO / "tests" / "fixtures" / "staged_data" / "corpus"
FSDP_ENTRY = str(REPO / "test_cases" / "fsdp" / "src" / "train.py")
SEQ = 32


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """The fixture text as byte-token shards of 4000 tokens (four shards and a short one)."""
    out = tmp_path_factory.mktemp("shards")
    assert prepare.main([str(CORPUS), "--output", str(out), "--shard-tokens", "4000"]) == 0
    return out


def _copy(src: Path, dest: Path) -> Path:
    dest.mkdir()
    for file in src.iterdir():
        (dest / file.name).write_bytes(file.read_bytes())
    return dest


def test_prepare_writes_the_text_as_indexed_byte_shards_that_are_memory_mapped(shards):
    index = json.loads((shards / INDEX).read_text())
    texts = [p.read_text() for p in sorted(CORPUS.glob("*.txt"))]
    expected = b"".join(t.encode() + b"\n" for t in texts)  # documents separated by a newline byte
    assert index["dtype"] == "uint16" and index["vocab_size"] == 256 and index["tokenizer"] == "bytes"
    assert index["tokens"] == len(expected) and [s["tokens"] for s in index["shards"]][:-1] == [4000] * 3
    on_disk = b"".join(bytes(np.fromfile(shards / s["file"], dtype=np.uint16).astype(np.uint8))
                       for s in index["shards"])
    assert on_disk == expected
    data = StagedTokens(shards, seq_len=SEQ, vocab_size=512)
    assert all(isinstance(a, np.memmap) and a.mode == "r" for a in data.arrays)
    # Windows stay inside one shard: shard 0 holds (4000 - 1) // 32 of them; the next starts shard 1.
    assert bytes(data.window(0).tolist()) == expected[:SEQ + 1]
    assert bytes(data.window(124).tolist()) == expected[4000:4000 + SEQ + 1]
    assert torch.equal(torch.from_numpy(data.window(data.total)), torch.from_numpy(data.window(0)))  # wraps


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_read_disjoint_windows_and_labels_are_inputs_shifted(shards, world):
    loaders = [TokenBatches("staged", seq_len=SEQ, local_batch=2, rank=r, world_size=world, vocab_size=512,
                            total_steps=0, data_path=str(shards)) for r in range(world)]
    data = loaders[0].staged
    steps = data.total // (world * 2)  # one pass over the data
    seen = []
    for step in range(1, steps + 1):
        for rank, loader in enumerate(loaders):
            ids = position_ids((step - 1) * loader.per_step, rank, 2)
            inputs, labels = loader.batch(step)
            assert torch.equal(inputs[:, 1:], labels[:, :-1])
            for row, g in zip(inputs, ids, strict=True):
                assert torch.equal(row, torch.from_numpy(data.window(g)[:-1]))
            seen += ids
    assert len(seen) == len(set(seen)) == steps * world * 2


def _run(ctx: DistContext, argv: list[str], seen: list) -> list[dict]:
    """One trainer run in this process; ``seen`` collects (data position, inputs) of every step."""
    args = parse_args(base_parser("test", FSDP_ENTRY), argv)
    torch.manual_seed(args.seed)
    model = Transformer(MODEL_CONFIGS[args.model], args.seq_len)
    model.init_weights()
    original = TokenBatches.batch_at

    def recording(self, position):
        out = original(self, position)
        seen.append((position, out[0].clone()))
        return out

    TokenBatches.batch_at = recording
    try:
        assert train(TrainSetup(args=args, ctx=ctx, model=model, base=model, dtype=torch.float32)) == 0
    finally:
        TokenBatches.batch_at = original
    return [json.loads(x) for x in (Path(args.output_dir) / "metrics-rank0.jsonl").read_text().splitlines()]


def test_a_resumed_run_reads_the_batches_the_uninterrupted_run_read(one_rank_group, shards, tmp_path):
    ctx = one_rank_group
    common = ["--dataset", "staged", "--data-path", str(shards), "--seq-len", str(SEQ),
              "--local-batch-size", "3", "--warmup-steps", "0", "--checkpoint-dir", str(tmp_path / "ck")]
    straight: list = []
    _run(ctx, [*common, "--steps", "6", "--output-dir", str(tmp_path / "a"),
               "--checkpoint-dir", str(tmp_path / "straight")], straight)
    first: list = []
    recs = _run(ctx, [*common, "--steps", "3", "--checkpoint-every", "3",
                      "--output-dir", str(tmp_path / "b")], first)
    assert recs[0]["data"] == {"layout": "shards", "shards": 4, "tokens": 13719, "samples": 425,
                               "vocab_size": 256}
    resumed: list = []
    recs = _run(ctx, [*common, "--steps", "6", "--resume", "--output-dir", str(tmp_path / "c")], resumed)
    assert [p for p, _unused in straight] == [0, 3, 6, 9, 12, 15]
    load = next(r for r in recs if r["event"] == "checkpoint" and r["action"] == "load")
    assert (load["step"], load["data_position"]) == (3, 9)
    assert [p for p, _unused in resumed] == [9, 12, 15]
    for (_unused, a), (_unused, b) in zip(straight[3:], resumed, strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_without_a_data_position_loads_with_none(tmp_path):
    """Checkpoints written before the position was saved: the trainer falls back to step x batch."""
    model = Transformer(MODEL_CONFIGS["tiny"], 8)
    opt = build_optimizer(model, 1e-3, torch.device("cpu"))
    state = checkpoint._state(model, opt, 7)
    del state["train"]["samples"]
    dcp.save(state, checkpoint_id=tmp_path)
    assert checkpoint.load_train_state(tmp_path, model, opt)[:2] == (7, None)
    checkpoint.save(tmp_path / "new", 7, model, opt, samples=42)
    assert checkpoint.load_train_state(tmp_path / "new" / "step-00000007", model, opt)[:2] == (7, 42)


def _refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        parse_args(base_parser("test", FSDP_ENTRY), ["--dataset", "staged", "--seq-len", str(SEQ), *argv])
    assert exc.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1, errors
    assert not dist.is_initialized()
    return errors[0]


def test_bad_staged_data_is_one_line_naming_the_file(shards, tmp_path, capsys):
    assert "--dataset staged needs --data-path DIR" in _refused([], capsys)
    nope = tmp_path / "nope"
    assert f"{nope}: no such directory" in _refused(["--data-path", str(nope)], capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"{empty / INDEX}: missing" in _refused(["--data-path", str(empty)], capsys)

    index = json.loads((shards / INDEX).read_text())
    second = index["shards"][1]["file"]
    gone = _copy(shards, tmp_path / "gone")
    (gone / second).unlink()
    line = _refused(["--data-path", str(gone)], capsys)
    assert f"{gone / second}: missing (listed in {gone / INDEX})" in line

    cut = _copy(shards, tmp_path / "cut")
    (cut / second).write_bytes((cut / second).read_bytes()[:1000])
    line = _refused(["--data-path", str(cut)], capsys)
    assert f"{cut / second}: 1000 bytes, the index says 4000 uint16 tokens (8000 bytes): truncated" in line

    altered = _copy(shards, tmp_path / "altered")
    body = bytearray((altered / second).read_bytes())
    body[10] ^= 1
    (altered / second).write_bytes(bytes(body))
    assert f"{altered / second}: sha256 " in _refused(["--data-path", str(altered)], capsys)
    # --data-verify size trusts the contents (and reads no shard whole).
    argv = ["--dataset", "staged", "--data-path", str(altered), "--data-verify", "size"]
    assert parse_args(base_parser("test", FSDP_ENTRY), argv).dataset == "staged"

    wide = _copy(shards, tmp_path / "wide")
    (wide / INDEX).write_text(json.dumps(index | {"vocab_size": 1000}))
    assert f"{wide / INDEX}: vocabulary of 1000 tokens, the model embeds 512" in _refused(
        ["--data-path", str(wide)], capsys)
    (wide / INDEX).write_text("{not json")
    assert f"{wide / INDEX}: not a readable JSON index" in _refused(["--data-path", str(wide)], capsys)


def test_jsonl_is_tokenized_with_the_staged_tokenizer_json(tmp_path):
    from tokenizers import Tokenizer

    data = jsonl_with_tokenizer(tmp_path / "texts")
    tokenizer = Tokenizer.from_file(str(data / "tokenizer.json"))
    first = json.loads((data / "texts.jsonl").read_text().splitlines()[0])["text"]
    expected = [*tokenizer.encode(first, add_special_tokens=False).ids, tokenizer.token_to_id(EOS)]
    staged = StagedTokens(data, seq_len=SEQ, vocab_size=256)
    assert staged.describe()["layout"] == "jsonl" and staged.vocab == 256
    assert staged.window(0).tolist() == expected[:SEQ + 1]  # documents end with the tokenizer's EOS


def test_jsonl_without_a_readable_tokenizer_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": "hello"}) + "\n")
    assert f"{tmp_path / 'tokenizer.json'}: missing" in _refused(["--data-path", str(tmp_path)], capsys)
    (tmp_path / "tokenizer.json").write_text("{}")
    line = _refused(["--data-path", str(tmp_path)], capsys)
    assert f"{tmp_path / 'tokenizer.json'}: not a tokenizer.json the tokenizers package reads" in line
    # A node whose Python lacks the package (a None entry makes its import fail, as if absent).
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    line = _refused(["--data-path", str(tmp_path)], capsys)
    assert line.endswith(f"{tmp_path / 'tokenizer.json'}: reading it needs the Python package 'tokenizers', "
                         f"which this interpreter cannot import; install it, or pre-tokenize with "
                         f"python -m dtcase.prepare --tokenizer {tmp_path / 'tokenizer.json'}")


def test_the_staged_reader_and_its_sharding_rule_import_no_torch(shards):
    """The jax case reads staged data from a venv without torch: dtcase.staged must not need it."""
    code = ("import sys; from dtcase.staged import StagedTokens, position_ids\n"
            f"s = StagedTokens({str(shards)!r}, seq_len=8, vocab_size=256)\n"
            "rows = s.rows_at(4, 1, 2)  # data position 4, dp rank 1 of local batch 2: samples 6 and 7\n"
            "print(position_ids(4, 1, 2), rows.shape, (rows[1] == s.window(7)).all(),"
            " 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO / "test_cases" / "common")}).stdout
    assert out.split() == ["[6,", "7]", "(2,", "9)", "True", "False"]


def test_prepare_reads_jsonl_and_refuses_bad_input_in_one_line(tmp_path):
    docs = [json.dumps({"text": "héllo"}), "", json.dumps({"text": "yo"})]  # a blank line is skipped
    (tmp_path / "a.jsonl").write_text("\n".join(docs) + "\n")
    index = prepare.prepare([str(tmp_path / "a.jsonl")], tmp_path / "out")
    tokens = np.fromfile(tmp_path / "out" / index["shards"][0]["file"], dtype=np.uint16)
    assert bytes(tokens.astype(np.uint8)) == "héllo\nyo\n".encode()
    (tmp_path / "b.jsonl").write_text('{"text": 1}\n')
    with pytest.raises(StagedDataError, match=r"b\.jsonl:1: not a JSON object with a string 'text'"):
        prepare.prepare([str(tmp_path / "b.jsonl")], tmp_path / "out2")
    with pytest.raises(StagedDataError, match="no-such: no such file or directory"):
        prepare.prepare([str(tmp_path / "no-such")], tmp_path / "out3")
    assert not (tmp_path / "out2").exists() or not (tmp_path / "out2" / INDEX).exists()
