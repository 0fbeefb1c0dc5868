"""Training data the user staged on the nodes (``--dataset staged --data-path DIR``).

Two layouts, told apart by what ``DIR`` holds:
- pre-tokenized shards (what Megatron and nanoGPT users have): flat token arrays ``*.bin``
  (uint16 or uint32, native byte order) and ``index.json`` naming each shard with its token count
  and sha256, the dtype and the vocabulary size. ``python -m dtcase.prepare`` writes this layout
  from text; the shards are memory-mapped (numpy.memmap), never read whole.
- jsonl text (one ``{"text": ...}`` per line, ``*.jsonl``) with the ``tokenizer.json`` staged beside
  it, loaded from that file by the ``tokenizers`` package (nothing comes from a hub). The text is
  tokenized at start, in memory: for corpora beyond a few hundred MB, pre-tokenize with dtcase.prepare.

Every problem with the data (no index, a shard missing, shorter or longer than the index says, a
sha256 that differs, tokens the model's vocabulary cannot hold) is one line naming the file, raised
as :class:`StagedDataError` before the process group exists.

Samples are windows of ``seq_len + 1`` tokens inside one shard (none straddles two); the global
sample ``g`` is window ``g % windows`` (a new epoch wraps around). Which samples a rank reads is
:func:`position_ids`'s business, one rule for every case: disjoint per data-parallel rank, continued
from the position saved in the checkpoint; the ranks that share a data-parallel rank (tensor,
pipeline, context parallel) read the same samples.

No torch here (numpy only, imported when data is opened): the jax case reads staged data from its
own virtualenv through this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

INDEX = "index.json"
TOKENIZER = "tokenizer.json"
FORMAT = "dtcase-shards/1"
DTYPES = {"uint16": 2, "uint32": 4}  # name: bytes per token
VERIFY = ("sha256", "size")
# Separator tokens tried, in order, between jsonl documents (the first the tokenizer knows).
EOS_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>")


class StagedDataError(ValueError):
    """One line, naming the file, that says what is wrong with the staged data."""


def position_ids(position: int, rank: int, local_batch: int) -> list[int]:
    """Global sample indices read by data-parallel ``rank`` in the step that starts at data position
    ``position`` (global samples consumed before it): ``position + rank * local_batch + b``."""
    first = position + rank * local_batch
    return list(range(first, first + local_batch))


def _numpy():
    try:
        import numpy
    except ImportError:
        raise StagedDataError("--dataset staged needs the Python package 'numpy' (memory-mapped shards); "
                              "install it beside torch") from None
    return numpy


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def layout(path: str | Path) -> str:
    """``shards`` or ``jsonl``: what the directory holds, or one line saying it holds neither."""
    root = Path(path)
    if not str(path):
        raise StagedDataError("--dataset staged needs --data-path DIR (the directory stage_data filled)")
    if not root.is_dir():
        raise StagedDataError(f"{root}: no such directory (stage the data first: playbooks/stage_data.yml)")
    if (root / INDEX).is_file():
        return "shards"
    if any(root.glob("*.jsonl")):
        return "jsonl"
    raise StagedDataError(f"{root / INDEX}: missing (the shard index python -m dtcase.prepare writes; "
                          f"or stage *.jsonl with a {TOKENIZER})")


def read_index(path: str | Path) -> dict:
    """The index, checked for shape: one line naming index.json when it is not what prepare writes."""
    index_path = Path(path) / INDEX
    try:
        index = json.loads(index_path.read_text())
    except FileNotFoundError:
        raise StagedDataError(f"{index_path}: missing (python -m dtcase.prepare writes it)") from None
    except (OSError, ValueError) as exc:
        raise StagedDataError(f"{index_path}: not a readable JSON index ({exc})") from None
    try:
        if index["format"] != FORMAT:
            raise StagedDataError(f"{index_path}: format {index['format']!r}, expected {FORMAT!r}")
        if index["dtype"] not in DTYPES:
            raise StagedDataError(f"{index_path}: dtype {index['dtype']!r}, expected one of {sorted(DTYPES)}")
        index["vocab_size"] = int(index["vocab_size"])
        for shard in index["shards"]:
            if not isinstance(shard["file"], str) or "/" in shard["file"] or shard["file"].startswith("."):
                raise StagedDataError(f"{index_path}: shard file {shard['file']!r} is not a plain file name")
            shard["tokens"] = int(shard["tokens"])
            if not isinstance(shard["sha256"], str):
                raise TypeError(f"sha256 of {shard['file']} is not a string")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, StagedDataError):
            raise
        raise StagedDataError(f"{index_path}: malformed index ({type(exc).__name__}: {exc})") from None
    if not index["shards"]:
        raise StagedDataError(f"{index_path}: lists no shards")
    return index


def check_shards(path: str | Path, verify: str = "sha256") -> dict:
    """The index, once every shard it lists is there with its size (and sha256: ``verify``)."""
    if verify not in VERIFY:
        raise ValueError(f"unknown verify mode {verify!r}: expected one of {VERIFY}")
    root = Path(path)
    index = read_index(root)
    width = DTYPES[index["dtype"]]
    for shard in index["shards"]:
        file = root / shard["file"]
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            raise StagedDataError(f"{file}: missing (listed in {root / INDEX})") from None
        expected = int(shard["tokens"]) * width
        if size != expected:
            what = "truncated" if size < expected else "longer than indexed"
            raise StagedDataError(f"{file}: {size} bytes, the index says {shard['tokens']} {index['dtype']} "
                                  f"tokens ({expected} bytes): {what}")
        if verify == "sha256":
            actual = file_sha256(file)
            if actual != shard["sha256"]:
                raise StagedDataError(f"{file}: sha256 {actual[:16]}... differs from the index's "
                                      f"{str(shard['sha256'])[:16]}...")
    return index


def load_tokenizer(path: str | Path):
    """The ``tokenizers`` Tokenizer of ``path`` (a tokenizer.json), or one line saying why not."""
    file = Path(path)
    if not file.is_file():
        raise StagedDataError(f"{file}: missing (jsonl text needs the tokenizer staged beside it)")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise StagedDataError(f"{file}: reading it needs the Python package 'tokenizers', which this "
                              f"interpreter cannot import; install it, or pre-tokenize with "
                              f"python -m dtcase.prepare --tokenizer {file}") from None
    try:
        return Tokenizer.from_file(str(file))
    except Exception as exc:  # the Rust side raises its own exception type
        raise StagedDataError(f"{file}: not a tokenizer.json the tokenizers package reads ({exc})") from None


def eos_id(tokenizer) -> int | None:
    for token in EOS_CANDIDATES:
        found = tokenizer.token_to_id(token)
        if found is not None:
            return found
    return None


def jsonl_texts(file: Path):
    """The ``text`` field of every line of a jsonl file; one line naming file:line when one is bad."""
    with open(file, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
                if not isinstance(text, str):
                    raise TypeError("text is not a string")
            except (ValueError, KeyError, TypeError) as exc:
                raise StagedDataError(f"{file}:{number}: not a JSON object with a string 'text' "
                                      f"({type(exc).__name__})") from None
            yield text


class StagedTokens:
    """The token windows of a staged dataset, for :class:`dtcase.data.TokenBatches`."""

    def __init__(self, path: str | Path, *, seq_len: int, vocab_size: int, verify: str = "sha256"):
        np = _numpy()
        self.layout = layout(path)
        root = Path(path)
        if self.layout == "shards":
            index = check_shards(root, verify)
            dtype = np.dtype(index["dtype"])
            self.vocab = int(index["vocab_size"])
            # mode "r": read-only pages shared with every rank on the node through the page cache.
            self.arrays = [np.memmap(root / s["file"], dtype=dtype, mode="r", shape=(int(s["tokens"]),))
                           for s in index["shards"] if int(s["tokens"])]
            where = root / INDEX
        else:
            tokenizer = load_tokenizer(root / TOKENIZER)
            self.vocab = tokenizer.get_vocab_size()
            sep = eos_id(tokenizer)
            ids: list[int] = []
            for file in sorted(root.glob("*.jsonl")):
                for text in jsonl_texts(file):
                    ids += tokenizer.encode(text, add_special_tokens=False).ids
                    if sep is not None:
                        ids.append(sep)
            self.arrays = [np.asarray(ids, dtype=np.uint32)]
            where = root / TOKENIZER
        if self.vocab > vocab_size:
            raise StagedDataError(f"{where}: vocabulary of {self.vocab} tokens, the model embeds "
                                  f"{vocab_size}: pick a model with a larger vocabulary or re-tokenize")
        self.seq_len = seq_len
        self.windows = [max(0, (len(a) - 1) // seq_len) for a in self.arrays]
        self.total = sum(self.windows)
        if self.total == 0:
            tokens = sum(len(a) for a in self.arrays)
            raise StagedDataError(f"{where}: {tokens} tokens, fewer than one sample of seq_len + 1 = "
                                  f"{seq_len + 1} in any shard")
        self.starts = []  # first global window of each shard
        first = 0
        for count in self.windows:
            self.starts.append(first)
            first += count

    def describe(self) -> dict:
        """What the start event records about the data."""
        return {"layout": self.layout, "shards": len(self.arrays), "tokens": sum(len(a) for a in self.arrays),
                "samples": self.total, "vocab_size": self.vocab}

    def window(self, index: int):
        """seq_len + 1 tokens (int64 numpy array) of global sample ``index`` (wrapping around)."""
        w = index % self.total
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:  # the last shard whose first window is <= w
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= w:
                lo = mid
            else:
                hi = mid - 1
        start = (w - self.starts[lo]) * self.seq_len
        return self.arrays[lo][start:start + self.seq_len + 1].astype("int64")

    def rows_at(self, position: int, rank: int, local_batch: int):
        """(local_batch, seq_len + 1) int64 rows of data-parallel ``rank`` in the step that starts at
        data position ``position``: inputs are ``rows[:, :-1]``, labels ``rows[:, 1:]``."""
        np = _numpy()
        return np.stack([self.window(g) for g in position_ids(position, rank, local_batch)])


def open_staged(args, *, vocab_size: int, prog: str) -> StagedTokens | None:
    """The staged data ``args`` names (``--dataset staged --data-path DIR --data-verify MODE``), opened
    and checked; None for any other dataset. Data that cannot be read is one line ``prog: <file>: why``
    on stderr and exit status 2: call it before joining the process group, so that every rank stops
    at once, before step 1."""
    if getattr(args, "dataset", None) != "staged":
        return None
    try:
        return StagedTokens(args.data_path, seq_len=args.seq_len, vocab_size=vocab_size,
                            verify=args.data_verify)
    except StagedDataError as exc:
        print(f"{prog}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def write_shards(token_chunks, out: str | Path, *, vocab_size: int, shard_tokens: int,
                 tokenizer: str) -> dict:
    """Write token arrays (an iterable of integer sequences) as shards of ``shard_tokens`` tokens plus
    index.json (last, atomically: a directory with an index is complete). Returns the index."""
    np = _numpy()
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    dtype = "uint16" if vocab_size <= 1 << 16 else "uint32"
    shards: list[dict] = []
    pending: list = []
    held = 0

    def flush(final: bool) -> None:
        nonlocal pending, held
        while held >= shard_tokens or (final and held):
            flat = np.concatenate(pending) if len(pending) > 1 else pending[0]
            part, rest = flat[:shard_tokens], flat[shard_tokens:]
            name = f"shard-{len(shards):05d}.bin"
            data = part.astype(dtype).tobytes()
            (root / name).write_bytes(data)
            shards.append({"file": name, "tokens": int(part.size),
                           "sha256": hashlib.sha256(data).hexdigest()})
            pending, held = ([rest] if rest.size else []), int(rest.size)

    for chunk in token_chunks:
        array = np.asarray(chunk, dtype=np.int64)
        if array.size and (array.min() < 0 or array.max() >= vocab_size):
            bad = int(array.min()) if array.min() < 0 else int(array.max())
            raise StagedDataError(f"token id {bad} outside the tokenizer's vocabulary of {vocab_size}")
        pending.append(array)
        held += int(array.size)
        flush(final=False)
    flush(final=True)
    index = {"format": FORMAT, "dtype": dtype, "vocab_size": vocab_size, "tokenizer": tokenizer,
             "tokens": sum(s["tokens"] for s in shards), "shards": shards}
    tmp = root / f".{INDEX}.tmp"
    tmp.write_text(json.dumps(index, indent=1) + "\n")
    os.replace(tmp, root / INDEX)
    return index
