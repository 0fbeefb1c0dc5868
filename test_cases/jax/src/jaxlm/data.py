"""Deterministic byte-level training text, NumPy only (the case's venv has no torch).

Sample ``i`` is drawn from a fixed Markov chain over a made-up lexicon, seeded by ``i`` alone, so
any process can make any sample: process ``p`` of ``P`` reads the contiguous ``1/P`` of step
``s``'s global samples ``[(s-1)*G, s*G)``.
"""

from __future__ import annotations

import numpy as np

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
        per = global_batch // processes
        first = (step - 1) * global_batch + process * per
        rows = np.stack([self.sample(first + i) for i in range(per)])
        return rows[:, :-1], rows[:, 1:]
