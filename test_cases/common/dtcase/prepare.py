"""Turn a text corpus into the shards ``--dataset staged`` trains on (index.json + flat token arrays).

    PYTHONPATH=test_cases/common python -m dtcase.prepare corpus/ --output shards/ [--tokenizer FILE]

Inputs are ``.txt`` files (one document each), ``.jsonl`` files (one ``{"text": ...}`` document per
line) or directories holding them (taken in name order). Tokens come from a ``tokenizer.json``
(the ``tokenizers`` package reads it; it is copied beside the shards) or, by default, from the UTF-8
bytes of the text (ids 0..255, what the tiny model embeds). Documents are separated by the
tokenizer's end-of-text token, or a newline byte. Then ``aws s3 sync shards/ s3://bucket/prefix/``
and ``playbooks/stage_data.yml`` put them on the nodes (docs/stage_data.md).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from dtcase.staged import TOKENIZER, StagedDataError, eos_id, jsonl_texts, load_tokenizer, write_shards

SUFFIXES = (".txt", ".jsonl")
BYTE_VOCAB = 256
NEWLINE = 10


def input_files(paths: list[str]) -> list[Path]:
    """The .txt and .jsonl files named or found (in name order) under the directories named."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        elif path.is_file() and path.suffix in SUFFIXES:
            files.append(path)
        elif path.exists():
            raise StagedDataError(f"{path}: not a .txt or .jsonl file")
        else:
            raise StagedDataError(f"{path}: no such file or directory")
    if not files:
        raise StagedDataError(f"no .txt or .jsonl files in {', '.join(paths)}")
    return files


def documents(files: list[Path]) -> Iterator[str]:
    for file in files:
        if file.suffix == ".jsonl":
            yield from jsonl_texts(file)
        else:
            try:
                yield file.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise StagedDataError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def prepare(paths: list[str], output: str | Path, *, tokenizer: str = "bytes",
            shard_tokens: int = 1 << 24) -> dict:
    """Tokenize the inputs into shards under ``output``; returns the index."""
    files = input_files(paths)
    if tokenizer == "bytes":
        vocab, sep, name = BYTE_VOCAB, NEWLINE, "bytes"

        def encode(text: str) -> list[int]:
            return list(text.encode("utf-8"))
    else:
        tok = load_tokenizer(tokenizer)
        vocab, sep, name = tok.get_vocab_size(), eos_id(tok), TOKENIZER

        def encode(text: str) -> list[int]:
            return tok.encode(text, add_special_tokens=False).ids

    def chunks() -> Iterator[list[int]]:
        for text in documents(files):
            yield encode(text) + ([] if sep is None else [sep])

    index = write_shards(chunks(), output, vocab_size=vocab, shard_tokens=shard_tokens, tokenizer=name)
    if tokenizer != "bytes":
        shutil.copyfile(tokenizer, Path(output) / TOKENIZER)  # the shards' ids mean nothing without it
    return index


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dtcase.prepare",
                                description=__doc__.split("\n", maxsplit=1)[0])
    p.add_argument("inputs", nargs="+", help=".txt / .jsonl files or directories holding them")
    p.add_argument("--output", required=True, help="directory for index.json and shard-*.bin")
    p.add_argument("--tokenizer", default="bytes",
                   help="a tokenizer.json, or 'bytes' (UTF-8 bytes, ids 0..255)")
    p.add_argument("--shard-tokens", type=int, default=1 << 24,
                   help="tokens per shard (the last may be shorter)")
    args = p.parse_args(argv)
    if args.shard_tokens < 1:
        p.error(f"--shard-tokens must be >= 1, got {args.shard_tokens}")
    try:
        index = prepare(args.inputs, args.output, tokenizer=args.tokenizer, shard_tokens=args.shard_tokens)
    except StagedDataError as exc:
        p.error(str(exc))
    print(f"{args.output}: {len(index['shards'])} shard(s), {index['tokens']} {index['dtype']} tokens, "
          f"vocabulary {index['vocab_size']} ({index['tokenizer']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
