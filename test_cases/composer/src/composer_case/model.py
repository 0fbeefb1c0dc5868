"""A small causal LM (byte tokens) as a ComposerModel (its data: composer_case.data)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from composer.models import ComposerModel
from torch import nn

VOCAB = 256  # byte tokens of dtcase's corpus
CONFIGS = {
    "tiny": {"dim": 64, "layers": 2, "heads": 4},
    "small": {"dim": 512, "layers": 8, "heads": 8},
}


class CausalLM(nn.Module):
    def __init__(self, *, dim: int, layers: int, heads: int, seq_len: int):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.pos = nn.Embedding(seq_len, dim)
        block = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, VOCAB, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        seq = ids.shape[1]
        x = self.embed(ids) + self.pos(torch.arange(seq, device=ids.device))
        mask = nn.Transformer.generate_square_subsequent_mask(seq, device=ids.device)
        return self.head(self.norm(self.blocks(x, mask=mask, is_causal=True)))


class ComposerCausalLM(ComposerModel):
    """Composer's contract: forward(batch) -> outputs, loss(outputs, batch) -> scalar."""

    def __init__(self, net: CausalLM):
        super().__init__()
        self.net = net

    def forward(self, batch):
        inputs, _labels = batch
        return self.net(inputs)

    def loss(self, outputs, batch, *args, **kwargs):
        _inputs, labels = batch
        return F.cross_entropy(outputs.flatten(0, 1), labels.flatten())
