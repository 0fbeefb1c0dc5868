"""Training data, NumPy only (the case's venv has no torch).

``corpus``: deterministic byte-level text; sample ``i`` is drawn from a fixed Markov chain over a
made-up lexicon, seeded by ``i`` alone, so any process can make any sample. ``staged``: the data the
user staged (dtcase.staged: memory-mapped shards, or jsonl with its tokenizer.json where the venv
has the ``tokenizers`` package). Either way process ``p`` of ``P`` reads the contiguous ``1/P`` of
step ``s``'s global samples ``[(s-1)*G, s*G)`` (dtcase.staged.position_ids, the rule of every case).
"""

from __future__ import annotations

import numpy as np

from dtcase.staged import position_ids

_SYLLABLES = ["ka", "ri", "to", "men", "sa", "lo", "ve", "dra", "nu", "pi", "shi", "gor", "el", "tan"]


class Corpus:
    def __init__(self, seq_len: int, words: int = 200):
        rng = np.random.default_rng(1234)
        pieces = (rng.choice(_SYLLABLES, size=rng.integers(1, 4)) for _unused in range(words * 2))
        lexicon = sorted({"".join(p) for p in pieces})
        self.words = [w.encode("ascii") + b" " for w in lexicon[:words]]
        # Each word has 4 possible successors, the first far more likely: text a model can learn.
        self.successors = rng.integers(0, len(self.words), size=(len(self.words), 4))
        self.seq_len = seq_len

    def sample(self, index: int) -> np.ndarray:
        """seq_len + 1 byte tokens of global sample ``index``."""
        rng = np.random.default_rng(1_000_003 * (index + 1))
        word, out = int(rng.integers(len(self.words))), bytearray()
        while len(out) < self.seq_len + 1:
            word = int(self.successors[word][rng.choice(4, p=[0.55, 0.25, 0.15, 0.05])])
            out += self.words[word]
        return np.frombuffer(bytes(out[:self.seq_len + 1]), dtype=np.uint8).astype(np.int32)

    def process_batch(self, step: int, *, global_batch: int, process: int, processes: int
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, labels) of this process at 1-based ``step``: (global_batch / processes, seq_len)."""
        ids = position_ids((step - 1) * global_batch, process, global_batch // processes)
        rows = np.stack([self.sample(i) for i in ids])
        return rows[:, :-1], rows[:, 1:]


class Staged:
    """The same batches as :class:`Corpus`, read from a dtcase.staged.StagedTokens."""

    def __init__(self, staged):
        self.staged = staged

    def process_batch(self, step: int, *, global_batch: int, process: int, processes: int
                      ) -> tuple[np.ndarray, np.ndarray]:
        rows = self.staged.rows_at((step - 1) * global_batch, process, global_batch // processes)
        rows = rows.astype(np.int32)
        return rows[:, :-1], rows[:, 1:]
