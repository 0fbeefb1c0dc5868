"""What the Composer case trains on, and which samples each rank reads (torch only: no Composer import,
so it is unit-tested from the collection's venv).

``CorpusWindows``: dtcase's deterministic byte corpus. ``StagedWindows``: the data the user staged
(dtcase.staged: memory-mapped shards, or jsonl with its tokenizer.json). ``RankSamples`` gives rank
``r`` the samples of dtcase.staged.position_ids, the rule of every case: step ``s`` reads global
samples ``[(s-1)*G, s*G)``, rank ``r`` the contiguous ``r``-th ``1/world`` of them.
"""

from __future__ import annotations

import torch

from dtcase.data import corpus_tokens
from dtcase.staged import position_ids


class CorpusWindows(torch.utils.data.Dataset):
    """Sample ``i``: window ``i`` of dtcase's deterministic corpus (inputs, next-token labels)."""

    def __init__(self, seq_len: int, samples: int):
        self.seq_len = seq_len
        self.tokens = corpus_tokens(samples * seq_len + 1)
        self.samples = min(samples, (self.tokens.numel() - 1) // seq_len)

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int):
        start = (index % self.samples) * self.seq_len
        window = self.tokens[start:start + self.seq_len + 1]
        return window[:-1], window[1:]


class StagedWindows(torch.utils.data.Dataset):
    """Sample ``i``: window ``i`` of a dtcase.staged.StagedTokens (wrapping around past the end)."""

    def __init__(self, staged):
        self.staged = staged

    def __len__(self) -> int:
        return self.staged.total

    def __getitem__(self, index: int):
        window = torch.from_numpy(self.staged.window(index))
        return window[:-1], window[1:]


class RankSamples(torch.utils.data.distributed.DistributedSampler):
    """The global sample indices ``rank`` reads, step after step, for ``steps`` steps. A
    DistributedSampler by class only: Composer refuses any other sampler on more than one rank."""

    def __init__(self, dataset, *, steps: int, global_batch: int, rank: int, world_size: int):
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=False, drop_last=True)
        self.steps, self.global_batch = steps, global_batch
        self.local_batch = global_batch // world_size

    def __len__(self) -> int:
        return self.steps * self.local_batch

    def __iter__(self):
        for step in range(1, self.steps + 1):
            yield from position_ids((step - 1) * self.global_batch, self.rank, self.local_batch)
