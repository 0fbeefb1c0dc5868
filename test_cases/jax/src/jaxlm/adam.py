"""Adam, written out (optax is not among the case's pinned requirements)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def init(params: dict) -> dict:
    zeros = jax.tree.map(jnp.zeros_like, params)
    return {"m": zeros, "v": jax.tree.map(jnp.zeros_like, params), "t": jnp.zeros((), jnp.int32)}


def update(params: dict, grads: dict, state: dict, *, lr: float, b1: float = 0.9, b2: float = 0.95,
           eps: float = 1e-8) -> tuple[dict, dict]:
    t = state["t"] + 1
    m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state["m"], grads)
    v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state["v"], grads)
    # Bias correction folded into the step size.
    step = lr * jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    params = jax.tree.map(lambda p, m, v: p - step * m / (jnp.sqrt(v) + eps), params, m, v)
    return params, {"m": m, "v": v, "t": t}
