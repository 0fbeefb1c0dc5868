"""A tiny Llama (RMSNorm, RoPE, grouped-query attention, SwiGLU) split for one rank of the 4D mesh.

Every rank draws the same full weights from the seed and keeps its part: the layers of its pipeline
stage, sliced for its tensor-parallel rank. So any layout starts from the weights a single process
starts from, which is what lets the tests compare the loss of a layout with the 1-process loss.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from picotron4d.cp import causal_mask, gather_sequence
from picotron4d.layout import Groups
from picotron4d.tp import ColumnParallelLinear, RowParallelLinear


@dataclass(frozen=True)
class ModelConfig:
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    vocab_size: int = 256  # byte tokens of the corpus
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def as_dict(self) -> dict:
        return asdict(self)


MODEL_CONFIGS = {
    # Divisible by 2 on every axis: 4 layers (pp2 -> 2 per stage), 4 heads and 2 kv heads (tp2).
    "tiny": ModelConfig(dim=64, n_layers=4, n_heads=4, n_kv_heads=2, ffn_dim=192),
    # For GPUs: still small, but enough work per rank for NCCL timings to mean something.
    "small": ModelConfig(dim=1024, n_layers=8, n_heads=16, n_kv_heads=8, ffn_dim=2816),
}


def full_weights(cfg: ModelConfig, seed: int) -> dict[str, torch.Tensor]:
    """All weights of the unsplit model, drawn in a fixed order from ``seed`` (CPU, fp32)."""
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape: int, std: float) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * std

    hd, out = cfg.head_dim, {}
    out["embed"] = normal(cfg.vocab_size, cfg.dim, std=1.0)
    for i in range(cfg.n_layers):
        depth_std = 0.02 / math.sqrt(2 * (i + 1))
        out[f"{i}.wq"] = normal(cfg.n_heads * hd, cfg.dim, std=0.02)
        out[f"{i}.wk"] = normal(cfg.n_kv_heads * hd, cfg.dim, std=0.02)
        out[f"{i}.wv"] = normal(cfg.n_kv_heads * hd, cfg.dim, std=0.02)
        out[f"{i}.wo"] = normal(cfg.dim, cfg.n_heads * hd, std=depth_std)
        out[f"{i}.w1"] = normal(cfg.ffn_dim, cfg.dim, std=0.02)
        out[f"{i}.w3"] = normal(cfg.ffn_dim, cfg.dim, std=depth_std)
        out[f"{i}.w2"] = normal(cfg.dim, cfg.ffn_dim, std=depth_std)
    out["output"] = normal(cfg.vocab_size, cfg.dim, std=cfg.dim ** -0.5)
    return out


def rope_tables(head_dim: int, seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) of x (batch, seq, heads, head_dim); cos/sin are (seq, head_dim/2)."""
    even, odd = x[..., 0::2], x[..., 1::2]
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(3)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


class Block(nn.Module):
    """One decoder layer; attention heads and feed-forward width split over the tp group."""

    def __init__(self, cfg: ModelConfig, w: dict[str, torch.Tensor], i: int, groups: Groups):
        super().__init__()
        tp, rank, group = groups.size("tp"), groups.coord["tp"], groups.groups["tp"]
        self.heads, self.kv_heads, self.head_dim = cfg.n_heads // tp, cfg.n_kv_heads // tp, cfg.head_dim
        self.cp_group, self.cp_rank, self.cp = groups.groups["cp"], groups.coord["cp"], groups.size("cp")
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.wq = ColumnParallelLinear(w[f"{i}.wq"], group, rank, tp)
        self.wk = ColumnParallelLinear(w[f"{i}.wk"], group, rank, tp)
        self.wv = ColumnParallelLinear(w[f"{i}.wv"], group, rank, tp)
        self.wo = RowParallelLinear(w[f"{i}.wo"], group, rank, tp)
        self.w1 = ColumnParallelLinear(w[f"{i}.w1"], group, rank, tp)
        self.w3 = ColumnParallelLinear(w[f"{i}.w3"], group, rank, tp)
        self.w2 = RowParallelLinear(w[f"{i}.w2"], group, rank, tp)

    def attention(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        bsz, chunk, _unused = x.shape
        q = apply_rope(self.wq(x).view(bsz, chunk, self.heads, self.head_dim), cos, sin)
        k = apply_rope(self.wk(x).view(bsz, chunk, self.kv_heads, self.head_dim), cos, sin)
        v = self.wv(x).view(bsz, chunk, self.kv_heads, self.head_dim)
        k, v = gather_sequence(k, self.cp_group), gather_sequence(v, self.cp_group)
        repeats = self.heads // self.kv_heads
        k, v = k.repeat_interleave(repeats, dim=2), v.repeat_interleave(repeats, dim=2)
        mask = causal_mask(chunk, self.cp_rank, self.cp, x.device)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                             attn_mask=mask)
        return self.wo(out.transpose(1, 2).reshape(bsz, chunk, -1))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), cos, sin)
        y = self.ffn_norm(h)
        return h + self.w2(F.silu(self.w1(y)) * self.w3(y))


class Stage(nn.Module):
    """This rank's pipeline stage: embedding on the first, layers [lo, hi), norm and head on the last."""

    def __init__(self, cfg: ModelConfig, seq_len: int, groups: Groups, seed: int):
        super().__init__()
        w = full_weights(cfg, seed)
        pp, stage = groups.size("pp"), groups.coord["pp"]
        per_stage = cfg.n_layers // pp
        self.layer_ids = list(range(stage * per_stage, (stage + 1) * per_stage))
        self.first, self.last = groups.first_stage, groups.last_stage
        self.embed = nn.Embedding.from_pretrained(w["embed"], freeze=False) if self.first else None
        self.layers = nn.ModuleList(Block(cfg, w, i, groups) for i in self.layer_ids)
        if self.last:
            self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
            # Vocabulary split over tp; the logits are gathered whole for the loss.
            self.output = ColumnParallelLinear(w["output"], groups.groups["tp"], groups.coord["tp"],
                                               groups.size("tp"), gather_output=True)
        # RoPE angles of this cp rank's positions only.
        chunk = seq_len // groups.size("cp")
        cos, sin = rope_tables(cfg.head_dim, seq_len, cfg.rope_theta)
        start = groups.coord["cp"] * chunk
        self.register_buffer("cos", cos[start:start + chunk].clone(), persistent=False)
        self.register_buffer("sin", sin[start:start + chunk].clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids (first stage) or hidden states in; hidden states or full-vocab logits out."""
        h = self.embed(x) if self.first else x
        for layer in self.layers:
            h = layer(h, self.cos, self.sin)
        return self.output(self.norm(h)) if self.last else h
