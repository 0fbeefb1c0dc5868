"""A small pre-norm transformer LM as pure functions over a parameter pytree (plain JAX, no Flax).

RMSNorm, rotary embeddings, causal multi-head attention, SwiGLU feed-forward, untied output head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp


@dataclass(frozen=True)
class Config:
    dim: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    vocab_size: int = 256  # byte tokens
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def as_dict(self) -> dict:
        return asdict(self)


CONFIGS = {
    "tiny": Config(dim=64, n_layers=2, n_heads=4, ffn_dim=192),
    "small": Config(dim=1024, n_layers=8, n_heads=16, ffn_dim=2816),
}


def init_params(cfg: Config, key: jax.Array) -> dict:
    keys = iter(jax.random.split(key, 2 + 7 * cfg.n_layers))

    def normal(shape: tuple[int, ...], std: float) -> jax.Array:
        return jax.random.normal(next(keys), shape, jnp.float32) * std

    out_std = 0.02 / (2 * cfg.n_layers) ** 0.5
    layers = [{
        "attn_norm": jnp.ones((cfg.dim,)), "ffn_norm": jnp.ones((cfg.dim,)),
        "wq": normal((cfg.dim, cfg.dim), 0.02), "wk": normal((cfg.dim, cfg.dim), 0.02),
        "wv": normal((cfg.dim, cfg.dim), 0.02), "wo": normal((cfg.dim, cfg.dim), out_std),
        "w1": normal((cfg.dim, cfg.ffn_dim), 0.02), "w3": normal((cfg.dim, cfg.ffn_dim), 0.02),
        "w2": normal((cfg.ffn_dim, cfg.dim), out_std),
    } for _unused in range(cfg.n_layers)]
    return {"embed": normal((cfg.vocab_size, cfg.dim), 1.0), "layers": layers,
            "norm": jnp.ones((cfg.dim,)), "output": normal((cfg.dim, cfg.vocab_size), cfg.dim ** -0.5)}


def param_count(params: dict) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(params))


def _rms_norm(x: jax.Array, weight: jax.Array, eps: float = 1e-5) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def _rope(x: jax.Array, theta: float) -> jax.Array:
    """Rotate pairs (x[2i], x[2i+1]) of x (batch, seq, heads, head_dim) by position."""
    seq, head_dim = x.shape[1], x.shape[-1]
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    angles = jnp.arange(seq, dtype=jnp.float32)[:, None] * inv_freq[None, :]
    cos, sin = jnp.cos(angles)[None, :, None, :], jnp.sin(angles)[None, :, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    return jnp.stack((even * cos - odd * sin, even * sin + odd * cos), axis=-1).reshape(x.shape)


def _attention(cfg: Config, p: dict, x: jax.Array) -> jax.Array:
    bsz, seq, _unused = x.shape
    heads = (bsz, seq, cfg.n_heads, cfg.head_dim)
    q = _rope((x @ p["wq"]).reshape(heads), cfg.rope_theta)
    k = _rope((x @ p["wk"]).reshape(heads), cfg.rope_theta)
    v = (x @ p["wv"]).reshape(heads)
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(cfg.head_dim).astype(x.dtype)
    causal = jnp.tril(jnp.ones((seq, seq), dtype=bool))
    scores = jnp.where(causal[None, None], scores, jnp.finfo(scores.dtype).min)
    out = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
    return out.reshape(bsz, seq, cfg.dim) @ p["wo"]


def forward(cfg: Config, params: dict, tokens: jax.Array) -> jax.Array:
    """Logits (batch, seq, vocab) for token ids (batch, seq)."""
    h = params["embed"][tokens]
    for p in params["layers"]:
        h = h + _attention(cfg, p, _rms_norm(h, p["attn_norm"]))
        y = _rms_norm(h, p["ffn_norm"])
        h = h + (jax.nn.silu(y @ p["w1"]) * (y @ p["w3"])) @ p["w2"]
    return _rms_norm(h, params["norm"]) @ params["output"]


def loss_fn(cfg: Config, params: dict, inputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean next-token cross-entropy over the (global) batch."""
    logits = forward(cfg, params, inputs).astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[..., None], axis=-1))
