"""Llama-3 family decoder in plain PyTorch (torchtitan layout, no parallelism in here).

RMSNorm, rotary embeddings (theta 500000), grouped-query attention through
F.scaled_dot_product_attention(is_causal=True), SwiGLU feed-forward, untied output head.
Parallelism (FSDP2, DDP, activation checkpointing, compile) is applied from outside.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelArgs:
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    vocab_size: int
    norm_eps: float = 1e-5
    rope_theta: float = 500000.0

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def as_dict(self) -> dict:
        return asdict(self)


MODEL_CONFIGS: dict[str, ModelArgs] = {
    # Byte-level corpus tokens fit in 512; small enough to train on one shared CPU core.
    "tiny": ModelArgs(dim=128, n_layers=4, n_heads=4, n_kv_heads=2, ffn_dim=384, vocab_size=512),
    # Llama 3.2 1B shape (with an untied head).
    "llama3-1b": ModelArgs(dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, ffn_dim=8192, vocab_size=128256),
    "llama3-8b": ModelArgs(dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, ffn_dim=14336, vocab_size=128256),
}


def rope_tables(head_dim: int, seq_len: int, theta: float, device=None) -> torch.Tensor:
    """cos/sin of the rotary angles, shape (seq_len, head_dim // 2, 2), fp32 (a complex64 in disguise)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    return torch.stack((angles.cos(), angles.sin()), dim=-1)


def apply_rope(x: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) of x (batch, seq, heads, head_dim) by the angles in tables.

    Eager: one complex multiply (few kernels). Compiled: real arithmetic, which inductor fuses into
    one kernel (it does not generate code for complex tensors). On 4x H100, llama3-8b, each form was
    the faster one in its mode.
    """
    seq = x.shape[1]
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    if not torch.compiler.is_compiling():
        rot = torch.view_as_complex(tables[:seq]).view(1, seq, 1, -1)
        return torch.view_as_real(torch.view_as_complex(pairs) * rot).flatten(3).type_as(x)
    cos = tables[:seq, :, 0].view(1, seq, 1, -1)
    sin = tables[:seq, :, 1].view(1, seq, 1, -1)
    real, imag = pairs[..., 0], pairs[..., 1]
    return torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1).flatten(3).type_as(x)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The fused kernel (fp32 accumulation inside) rather than a chain of elementwise ops.
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = args.n_heads, args.n_kv_heads, args.head_dim
        self.wq = nn.Linear(args.dim, args.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * self.head_dim, args.dim, bias=False)

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        bsz, seq, _unused = x.shape
        q = apply_rope(self.wq(x).view(bsz, seq, self.n_heads, self.head_dim), rope)
        k = apply_rope(self.wk(x).view(bsz, seq, self.n_kv_heads, self.head_dim), rope)
        v = self.wv(x).view(bsz, seq, self.n_kv_heads, self.head_dim)
        # Repeat kv heads explicitly (as torchtitan does) so every SDPA backend applies.
        repeats = self.n_heads // self.n_kv_heads
        if repeats > 1:
            k = k.repeat_interleave(repeats, dim=2)
            v = v.repeat_interleave(repeats, dim=2)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                             is_causal=True)
        return self.wo(out.transpose(1, 2).reshape(bsz, seq, -1))

    def reset_parameters(self, out_std: float) -> None:
        for lin in (self.wq, self.wk, self.wv):
            nn.init.trunc_normal_(lin.weight, mean=0.0, std=0.02)
        nn.init.trunc_normal_(self.wo.weight, mean=0.0, std=out_std)


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))

    def reset_parameters(self, out_std: float) -> None:
        nn.init.trunc_normal_(self.w1.weight, mean=0.0, std=0.02)
        for lin in (self.w2, self.w3):
            nn.init.trunc_normal_(lin.weight, mean=0.0, std=out_std)


class TransformerBlock(nn.Module):
    def __init__(self, layer_id: int, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, args.ffn_dim)
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)
        # Depth-scaled init of the output projections (torchtitan's default).
        self.out_std = 0.02 / math.sqrt(2 * (layer_id + 1))

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), rope)
        return h + self.feed_forward(self.ffn_norm(h))

    def reset_parameters(self) -> None:
        self.attention.reset_parameters(self.out_std)
        self.feed_forward.reset_parameters(self.out_std)
        self.attention_norm.reset_parameters()
        self.ffn_norm.reset_parameters()


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs, max_seq_len: int):
        super().__init__()
        self.args, self.max_seq_len = args, max_seq_len
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        # A ModuleDict keeps parameter names stable when blocks get wrapped (AC, compile).
        self.layers = nn.ModuleDict({str(i): TransformerBlock(i, args) for i in range(args.n_layers)})
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        rope = rope_tables(args.head_dim, max_seq_len, args.rope_theta)
        self.register_buffer("rope", rope, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.tok_embeddings(tokens)
        for layer in self.layers.values():
            h = layer(h, self.rope)
        return self.output(self.norm(h))

    @torch.no_grad()
    def init_weights(self) -> None:
        """(Re)initialise every parameter and buffer in place; works after meta-device construction."""
        self.rope.copy_(rope_tables(self.args.head_dim, self.max_seq_len, self.args.rope_theta,
                                    device=self.rope.device))
        nn.init.normal_(self.tok_embeddings.weight)
        # modules() also reaches blocks hidden inside activation-checkpoint wrappers.
        for module in self.modules():
            if isinstance(module, TransformerBlock):
                module.reset_parameters()
        self.norm.reset_parameters()
        cutoff = 3 * self.args.dim ** -0.5
        nn.init.trunc_normal_(self.output.weight, mean=0.0, std=self.args.dim ** -0.5, a=-cutoff, b=cutoff)


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(all parameters, parameters excluding the token embedding table); works on meta tensors."""
    total = sum(p.numel() for p in model.parameters())
    return total, total - model.tok_embeddings.weight.numel()
