"""FLOPs per token, the peak table and MFU (dtcase.flops) against hand computations."""

from __future__ import annotations

import pytest
import torch

from dtcase.flops import cuda_peak_tflops, device_peak, flops_per_token, measure_cpu_tflops, mfu
from dtcase.model import MODEL_CONFIGS, Transformer, param_counts


def test_llama3_8b_at_seq_8192_by_hand():
    """N = 8,030,261,248 - 128,256*4,096 = 7,504,924,672.
    6N = 45,029,548,032; 12*L*H*Q*T = 12*32*32*128*8192 = 12,884,901,888; sum 57,914,449,920.
    torchtitan's 8,350 tokens/s/GPU on H100 is then 483.6 TFLOPS, 48.9 % of 989.4."""
    with torch.device("meta"):
        model = Transformer(MODEL_CONFIGS["llama3-8b"], 8)
    _unused, non_embedding = param_counts(model)
    assert non_embedding == 7_504_924_672
    fpt = flops_per_token(non_embedding, 32, 32, 128, 8192)
    assert fpt == 57_914_449_920
    tflops = 8350 * fpt / 1e12
    assert tflops == pytest.approx(483.586, abs=1e-3)
    assert mfu(tflops, cuda_peak_tflops("NVIDIA H100 80GB HBM3")) == pytest.approx(0.48877, abs=1e-4)


@pytest.mark.parametrize(("name", "peak"), [
    ("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H200", 989.4), ("NVIDIA H100 PCIe", 756.0),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA L40S", 362.0), ("NVIDIA A10G", 70.0), ("NVIDIA L4", 121.0),
    ("NVIDIA GeForce GTX 1080", None),
])
def test_peak_table_picks_the_most_specific_name(name, peak):
    assert cuda_peak_tflops(name) == peak


def test_unknown_peak_gives_no_mfu_and_cpu_peak_is_measured():
    assert mfu(100.0, None) is None
    name, peak, source = device_peak(torch.device("cpu"))
    assert name == "cpu" and source.startswith("measured")
    # Bounded by physics above (threads x 5 GHz x 64 fp32 flops per cycle: two AVX-512 FMA units) and
    # below by what any CPU of the last decade does on its best of a few 384x384 matmuls (1 GFLOPS;
    # this 2-core machine measures ~70 GFLOPS). A wrong flop count or timer fails one side.
    ceiling = torch.get_num_threads() * 5e9 * 64 / 1e12
    assert 1e-3 < peak <= ceiling, (peak, ceiling)
    # A small size: it times a matmul, not an empty loop (above), and is a number at all (below: one
    # 64x64 matmul is 0.5 MFLOP, which a scheduler's time slice on a loaded machine can stretch to
    # milliseconds, so only 1 MFLOPS is safe to ask).
    assert 1e-6 < measure_cpu_tflops(size=64, repeats=2) <= ceiling
