"""A small decoder-only transformer LM in plain JAX: model, hand-written Adam, data (no torch)."""
