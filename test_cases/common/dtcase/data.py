"""Training data with per-rank sharding; nothing is downloaded at run time.

Three sources:
- ``corpus``: byte-level tokens (0..255) of English-like text that this module generates
  deterministically (a word-level Markov chain over a made-up lexicon). It has structure a model
  can learn, so the loss falls within a few dozen steps.
- ``synthetic``: uniformly random token ids, deterministic per sample (speed runs; loss stays flat).
- ``staged``: what the user staged on the nodes (``data_path``): pre-tokenized shards, memory-mapped,
  or jsonl text with its tokenizer.json (dtcase.staged).

Sharding (dtcase.staged.position_ids, the one rule every case uses): a step starts at the data
position ``p`` (global samples consumed before it; the trainer saves it in every checkpoint) and rank
``r`` reads samples ``p + r * local_batch + b``, so within one pass over the data no two ranks (and
no two steps) read the same sample, and a resumed run (even on another number of ranks) continues
with the first sample its predecessor had not trained on.
A fixed world size gives ``p = (step - 1) * world_size * local_batch``.
"""

from __future__ import annotations

import random

import torch

from dtcase.staged import position_ids

SOURCES = ("corpus", "synthetic", "staged")
CORPUS_CHUNK_BYTES = 1 << 20
CORPUS_MAX_BYTES = 16 << 20  # beyond this, sample windows wrap around (a new epoch)
_SYLLABLES = ["ka", "ri", "to", "men", "sa", "lo", "ve", "dra", "nu", "pi", "shi", "gor", "el", "tan",
              "mo", "ber", "qui", "za", "fen", "ul", "os", "tri", "ham", "wy"]


def _lexicon(rng: random.Random, size: int = 400) -> list[str]:
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES) for _unused in range(1 + int(rng.random() * 3))))
    return sorted(words)


def _corpus_chunk(index: int) -> bytes:
    """Chunk ``index`` of the corpus; each chunk depends on its index only (any prefix is stable)."""
    lex_rng = random.Random(1234)  # the same lexicon and grammar in every chunk
    words = _lexicon(lex_rng)
    successors = [[int(lex_rng.random() * len(words)) for _unused in range(4)] for _unused in words]
    rng = random.Random(1_000_003 * (index + 1))
    out: list[str] = []
    size = 0
    word = int(rng.random() * len(words))
    sentence_len = 0
    while size < CORPUS_CHUNK_BYTES:
        r = rng.random()
        # Skewed successor choice: 1st successor half of the time, 4th rarely.
        word = successors[word][0 if r < 0.5 else 1 if r < 0.75 else 2 if r < 0.9 else 3]
        text = words[word].capitalize() if sentence_len == 0 else words[word]
        sentence_len += 1
        if sentence_len >= 5 + word % 7:
            text += ". "
            sentence_len = 0
        else:
            text += " "
        out.append(text)
        size += len(text)
    return "".join(out).encode("ascii")[:CORPUS_CHUNK_BYTES]


def corpus_tokens(n_tokens: int) -> torch.Tensor:
    """The first ``n_tokens`` (rounded up to whole chunks, capped) byte tokens of the corpus, int64."""
    chunks = -(-min(n_tokens, CORPUS_MAX_BYTES) // CORPUS_CHUNK_BYTES)
    data = b"".join(_corpus_chunk(i) for i in range(chunks))
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()


def sample_ids(step: int, rank: int, world_size: int, local_batch: int) -> list[int]:
    """Global sample indices read by ``rank`` at 1-based ``step`` (a fixed world size from step 1)."""
    return position_ids((step - 1) * world_size * local_batch, rank, local_batch)


class TokenBatches:
    """Deterministic (inputs, labels) batches of shape (local_batch, seq_len) for one rank."""

    def __init__(self, source: str, *, seq_len: int, local_batch: int, rank: int, world_size: int,
                 vocab_size: int, total_steps: int, seed: int = 0, data_path: str = "",
                 verify: str = "sha256", staged=None):
        if source not in SOURCES:
            raise ValueError(f"unknown dataset {source!r}: expected one of {', '.join(SOURCES)}")
        if source == "corpus" and vocab_size < 256:
            raise ValueError(f"the corpus uses byte tokens 0..255: vocab_size {vocab_size} is too small")
        self.source, self.seq_len, self.local_batch = source, seq_len, local_batch
        self.rank, self.world_size, self.vocab_size, self.seed = rank, world_size, vocab_size, seed
        if source == "corpus":
            needed = total_steps * world_size * local_batch * seq_len + seq_len + 1
            self.tokens = corpus_tokens(needed)
            self.windows = (self.tokens.numel() - 1) // seq_len
        if source == "staged":  # ``staged``: the StagedTokens the trainer's check already opened
            from dtcase.staged import StagedTokens

            self.staged = staged or StagedTokens(data_path, seq_len=seq_len, vocab_size=vocab_size,
                                                 verify=verify)

    @property
    def per_step(self) -> int:
        """Global samples one step consumes (the data position advances by this much)."""
        return self.world_size * self.local_batch

    def _sample(self, index: int) -> torch.Tensor:
        """seq_len + 1 tokens of global sample ``index``."""
        if self.source == "synthetic":
            gen = torch.Generator().manual_seed(self.seed * 1_000_000_007 + index)
            return torch.randint(0, self.vocab_size, (self.seq_len + 1,), generator=gen)
        if self.source == "staged":
            return torch.from_numpy(self.staged.window(index))
        start = (index % self.windows) * self.seq_len
        return self.tokens[start:start + self.seq_len + 1]

    def batch_at(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels) of the step that starts at data position ``position``."""
        rows = torch.stack([self._sample(i) for i in position_ids(position, self.rank, self.local_batch)])
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels) of 1-based ``step`` of a run on this world size from step 1."""
        return self.batch_at((step - 1) * self.per_step)
