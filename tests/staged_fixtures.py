"""Staged datasets made from the public-domain texts of tests/fixtures/staged_data, in the two layouts
``--dataset staged`` reads (docs/stage_data.md): `from staged_fixtures import shards, jsonl_with_tokenizer`.

Both need only the collection's venv (numpy, tokenizers); the case code under test_cases/common is
imported from the repository.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "fixtures" / "staged_data" / "corpus"
EOS = "<|endoftext|>"
sys.path.insert(0, str(REPO / "test_cases" / "common"))


def shards(out: Path, shard_tokens: int = 4000) -> Path:
    """The texts as byte-token shards (python -m dtcase.prepare): 13,719 tokens, vocabulary 256."""
    from dtcase import prepare

    assert prepare.main([str(CORPUS), "--output", str(out), "--shard-tokens", str(shard_tokens)]) == 0
    return out


def jsonl_with_tokenizer(out: Path, vocab_size: int = 256) -> Path:
    """The texts as jsonl (one paragraph a line) and a BPE tokenizer.json of ``vocab_size`` entries
    trained on them with the ``tokenizers`` package (EOS ``<|endoftext|>``), as a user stages text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    out.mkdir(parents=True, exist_ok=True)
    paragraphs = [p.strip() for f in sorted(CORPUS.glob("*.txt")) for p in f.read_text().split("\n\n")]
    paragraphs = [p for p in paragraphs if p]
    with (out / "texts.jsonl").open("w") as fh:
        for paragraph in paragraphs:
            fh.write(json.dumps({"text": paragraph}) + "\n")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(paragraphs, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                                                  show_progress=False))
    tokenizer.save(str(out / "tokenizer.json"))
    return out
