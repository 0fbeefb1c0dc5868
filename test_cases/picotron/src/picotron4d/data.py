"""The global batch of a step, and this rank's part of it.

Step ``s`` reads global samples ``[(s-1)*G, s*G)`` (G = global_batch_size): of the byte corpus in
dtcase.data, or of the data the user staged (``--dataset staged``: dtcase.staged, memory-mapped
shards or jsonl text with its tokenizer.json). A dp rank takes a contiguous 1/dp of them
(dtcase.staged.position_ids, the rule of every case), split into micro-batches; the pp and tp ranks
of one dp rank read the same samples, and a cp rank takes its contiguous 1/cp of every sequence.
Any layout therefore sees exactly the tokens one process sees.
"""

from __future__ import annotations

import torch

from dtcase.data import corpus_tokens
from dtcase.staged import position_ids


class GlobalBatches:
    def __init__(self, *, seq_len: int, global_batch: int, steps: int, staged=None):
        """``staged``: the dtcase.staged.StagedTokens to read (opened and checked before the process
        group exists); None reads the generated corpus."""
        self.seq_len, self.global_batch, self.staged = seq_len, global_batch, staged
        if staged is None:
            self.tokens = corpus_tokens(steps * global_batch * seq_len + seq_len + 1)
            self.windows = (self.tokens.numel() - 1) // seq_len

    def sample(self, index: int) -> torch.Tensor:
        if self.staged is not None:
            return torch.from_numpy(self.staged.window(index))
        start = (index % self.windows) * self.seq_len
        return self.tokens[start:start + self.seq_len + 1]

    def rank_micro_batches(self, step: int, *, dp: int, dp_rank: int, cp: int, cp_rank: int,
                           micro_batches: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, labels) per micro-batch for this rank at 1-based ``step``, each (mbs, seq_len/cp)."""
        per_dp = self.global_batch // dp
        ids = position_ids((step - 1) * self.global_batch, dp_rank, per_dp)
        rows = torch.stack([self.sample(i) for i in ids])
        inputs, labels = rows[:, :-1], rows[:, 1:]
        chunk = self.seq_len // cp
        cols = slice(cp_rank * chunk, (cp_rank + 1) * chunk)
        inputs, labels = inputs[:, cols].contiguous(), labels[:, cols].contiguous()
        return list(zip(inputs.chunk(micro_batches), labels.chunk(micro_batches), strict=True))
