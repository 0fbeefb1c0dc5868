"""Per-rank data sharding and the two data sources (dtcase.data)."""

from __future__ import annotations

import pytest
import torch

from dtcase.data import CORPUS_CHUNK_BYTES, TokenBatches, corpus_tokens, sample_ids


def _loader(rank: int, world: int, source: str = "corpus", **kw) -> TokenBatches:
    opts = {"seq_len": 32, "local_batch": 3, "vocab_size": 512, "total_steps": 20, "seed": 0} | kw
    return TokenBatches(source, rank=rank, world_size=world, **opts)


@pytest.mark.parametrize("world", [2, 3, 8])
def test_no_two_ranks_or_steps_read_the_same_sample(world):
    seen = [i for step in range(1, 21) for rank in range(world) for i in sample_ids(step, rank, world, 3)]
    assert len(seen) == len(set(seen)) == 20 * world * 3
    assert sorted(seen) == list(range(len(seen)))  # and none is skipped


def test_ranks_get_disjoint_corpus_windows_and_labels_are_inputs_shifted():
    world = 4
    loaders = [_loader(r, world) for r in range(world)]
    rows = set()
    for step in (1, 2, 7):
        for loader in loaders:
            inputs, labels = loader.batch(step)
            assert inputs.shape == labels.shape == (3, 32)
            assert torch.equal(inputs[:, 1:], labels[:, :-1])
            rows.update(tuple(r.tolist()) for r in inputs)
    assert len(rows) == 3 * world * 3


def test_batches_are_deterministic_and_synthetic_depends_on_the_seed():
    assert torch.equal(_loader(1, 2).batch(5)[0], _loader(1, 2).batch(5)[0])
    a = _loader(1, 2, "synthetic", vocab_size=1000).batch(5)[0]
    assert torch.equal(a, _loader(1, 2, "synthetic", vocab_size=1000).batch(5)[0])
    assert not torch.equal(a, _loader(1, 2, "synthetic", vocab_size=1000, seed=1).batch(5)[0])
    assert int(a.max()) < 1000 and int(a.min()) >= 0


def test_corpus_is_ascii_text_and_its_prefix_does_not_depend_on_its_length():
    short, long = corpus_tokens(100), corpus_tokens(CORPUS_CHUNK_BYTES + 1)
    assert short.numel() == CORPUS_CHUNK_BYTES and long.numel() == 2 * CORPUS_CHUNK_BYTES
    assert torch.equal(short, long[:CORPUS_CHUNK_BYTES])
    text = bytes(short[:2000].tolist()).decode("ascii")
    assert ". " in text and text.count(" ") > 200
    assert not torch.equal(long[:1000], long[CORPUS_CHUNK_BYTES:CORPUS_CHUNK_BYTES + 1000])


def test_bad_sources_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="unknown dataset 'web'"):
        _loader(0, 1, "web")
    with pytest.raises(ValueError, match="vocab_size 100 is too small"):
        _loader(0, 1, vocab_size=100)
