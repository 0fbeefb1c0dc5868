"""Model FLOPs per token, device peak throughput and MFU (computed once, here)."""

from __future__ import annotations

import time

import torch

# Dense bf16 tensor-core peaks (TFLOPS, no sparsity), matched against torch.cuda.get_device_name().
# The longest key contained in the name wins ("A100" over "A10", "H100 PCIe" over "H100").
CUDA_BF16_PEAK_TFLOPS: list[tuple[str, float]] = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),   # SXM5 (e.g. "NVIDIA H100 80GB HBM3")
    ("H200", 989.4),
    ("H20", 148.0),
    ("GH200", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("L4", 121.0),
]


def flops_per_token(non_embedding_params: int, n_layers: int, n_heads: int, head_dim: int,
                    seq_len: int) -> int:
    """Training FLOPs per token: 6*N for the matmuls (fwd + bwd) plus 12*L*H*Q*T for attention."""
    return 6 * non_embedding_params + 12 * n_layers * n_heads * head_dim * seq_len


def cuda_peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of a CUDA device by name, or None when the device is not in the table."""
    matches = [(key, peak) for key, peak in CUDA_BF16_PEAK_TFLOPS if key in device_name]
    if not matches:
        return None
    return max(matches, key=lambda kv: len(kv[0]))[1]


def measure_cpu_tflops(size: int = 384, repeats: int = 6) -> float:
    """Best observed fp32 matmul rate of this process on the CPU (threads as configured), in TFLOPS."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _unused in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e12


def device_peak(device: torch.device) -> tuple[str, float | None, str]:
    """(device name, peak TFLOPS or None, how the peak was obtained) for the start event."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return name, cuda_peak_tflops(name), "table: dense bf16"
    return "cpu", measure_cpu_tflops(), "measured: fp32 matmul on this process's CPU threads"


def mfu(tflops_achieved: float, peak_tflops: float | None) -> float | None:
    return tflops_achieved / peak_tflops if peak_tflops else None
