"""The shared Llama-3 model (dtcase.model): shapes, parameter counts, RoPE, causality."""

from __future__ import annotations

import pytest
import torch

from dtcase.model import MODEL_CONFIGS, Transformer, apply_rope, param_counts, rope_tables


def _tiny(seq_len: int = 16) -> Transformer:
    torch.manual_seed(0)
    model = Transformer(MODEL_CONFIGS["tiny"], seq_len)
    model.init_weights()
    return model


def test_logits_have_batch_seq_vocab_shape_and_gqa_projections_are_narrower():
    model = _tiny()
    args = MODEL_CONFIGS["tiny"]
    tokens = torch.randint(0, args.vocab_size, (3, 16))
    assert model(tokens).shape == (3, 16, args.vocab_size)
    attn = model.layers["0"].attention
    assert attn.wq.weight.shape == (args.n_heads * args.head_dim, args.dim)
    assert attn.wk.weight.shape == (args.n_kv_heads * args.head_dim, args.dim)
    assert args.n_kv_heads < args.n_heads


@pytest.mark.parametrize(("name", "total"), [("llama3-8b", 8_030_261_248), ("llama3-1b", 1_498_482_688)])
def test_parameter_counts_match_llama3_with_untied_head(name, total):
    """8B: Meta's published 8,030,261,248. 1B: Llama 3.2 1B (1,235,814,400) plus an untied head."""
    with torch.device("meta"):
        model = Transformer(MODEL_CONFIGS[name], 8)
    args = MODEL_CONFIGS[name]
    assert param_counts(model) == (total, total - args.vocab_size * args.dim)


def test_rope_rotation_keeps_norms_and_depends_only_on_relative_position():
    tables = rope_tables(head_dim=8, seq_len=32, theta=500000.0)
    q, k = torch.randn(8), torch.randn(8)

    def at(vec, pos):  # vec placed at position pos of a (1, 32, 1, 8) sequence
        x = torch.zeros(1, 32, 1, 8)
        x[0, pos, 0] = vec
        return apply_rope(x, tables)[0, pos, 0]

    assert torch.allclose(at(q, 5).norm(), q.norm(), atol=1e-5)
    assert torch.allclose(at(q, 0), q)  # angle 0 at position 0
    assert torch.allclose(at(q, 7) @ at(k, 3), at(q, 14) @ at(k, 10), atol=1e-4)


def test_the_model_is_causal():
    model = _tiny()
    tokens = torch.randint(0, 512, (1, 16))
    changed = tokens.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 512
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-5)
    assert not torch.allclose(a[0, 10:], b[0, 10:], atol=1e-3)


def _meta_built(seed: int) -> Transformer:
    with torch.device("meta"):
        model = Transformer(MODEL_CONFIGS["tiny"], 16)
    model.to_empty(device="cpu")  # parameters and the rope buffer are now uninitialised memory
    torch.manual_seed(seed)
    model.init_weights()
    return model


def test_init_weights_is_seeded_and_rebuilds_the_rope_buffer_after_meta_construction():
    a, b, c = _meta_built(0), _meta_built(0), _meta_built(1)
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    assert all(torch.equal(x, y) for x, y in pairs)
    assert not torch.equal(a.output.weight, c.output.weight)
    assert torch.equal(a.rope, _tiny().rope)
    assert torch.equal(a.layers["1"].ffn_norm.weight, torch.ones(128))
