"""The nccl test case's own logic: nccl-tests' bandwidth formulas, the size sweep, the buffer
patterns and their check, implementation fallback, and argument validation.

Collective semantics are simulated here with plain tensors (one list entry per rank) so the check
logic is exercised for world sizes 2, 4 and 8 without starting processes; the real collectives run
in test_nccl_gloo_run.py (gloo on CPU; NCCL on GPUs cannot run on this machine).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

# the case's code is staged to nodes with test_cases/collectives/src on PYTHONPATH; do the same here
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "test_cases" / "collectives" / "src"))

import collectives  # noqa: E402
from collbench import bandwidth, ops, patterns, table  # noqa: E402

# ---------------------------------------------------------------- bandwidth (nccl-tests PERFORMANCE.md)

# factor by hand: all_reduce 2(n-1)/n; all_gather, reduce_scatter, alltoall (n-1)/n; broadcast 1
FACTORS = {  # n: (all_reduce, all_gather, reduce_scatter, alltoall, broadcast)
    2: dict(zip(bandwidth.OPS, (1.0, 0.5, 0.5, 0.5, 1.0), strict=True)),
    4: dict(zip(bandwidth.OPS, (1.5, 0.75, 0.75, 0.75, 1.0), strict=True)),
    8: dict(zip(bandwidth.OPS, (1.75, 0.875, 0.875, 0.875, 1.0), strict=True)),
}


@pytest.mark.parametrize("n", [2, 4, 8])
@pytest.mark.parametrize("op", bandwidth.OPS)
def test_bus_bandwidth_matches_hand_computed(n, op):
    # 1 GB moved in 10 ms: algbw 100 GB/s, busbw 100 * factor
    assert bandwidth.algbw_gbps(10**9, 10_000.0) == pytest.approx(100.0)
    assert bandwidth.busbw_gbps(op, 10**9, 10_000.0, n) == pytest.approx(100.0 * FACTORS[n][op])


def test_bandwidth_of_a_measured_h100_point():
    # 4x H100, all_reduce 4 GiB bf16 took 17685.97 us: algbw 242.85, busbw 364.27 GB/s
    assert bandwidth.algbw_gbps(4 << 30, 17685.97) == pytest.approx(242.85, abs=0.01)
    assert bandwidth.busbw_gbps("all_reduce", 4 << 30, 17685.97, 4) == pytest.approx(364.27, abs=0.01)


def test_size_is_the_full_buffer_rounded_to_whole_chunks():
    # all_gather: S is the gathered buffer; with 3 ranks 1024 B of fp32 (256 elements) -> 255
    s = bandwidth.op_shape("all_gather", 1024, 4, 3)
    assert (s.count, s.per_rank, s.nbytes) == (255, 85, 1020)
    s = bandwidth.op_shape("all_reduce", 1024, 2, 3)
    assert (s.count, s.per_rank, s.nbytes) == (512, 512, 1024)
    s = bandwidth.op_shape("reduce_scatter", 4 << 30, 2, 4)
    assert (s.count, s.per_rank) == (2**31, 2**29)
    # never an empty buffer: at least one element per rank
    assert bandwidth.op_shape("alltoall", 1024, 2, 1000).count == 1000
    with pytest.raises(ValueError, match="unknown collective 'gather'"):
        bandwidth.op_shape("gather", 1024, 2, 2)


def test_sweep_doubles_from_min_to_max_inclusive():
    assert bandwidth.sweep_sizes(1024, 1 << 20) == [1024 << i for i in range(11)]
    assert bandwidth.sweep_sizes(1000, 5000) == [1000, 2000, 4000]
    assert bandwidth.sweep_sizes(1024, 4 << 30)[-1] == 4 << 30
    assert len(bandwidth.sweep_sizes(1024, 4 << 30)) == 23
    with pytest.raises(ValueError, match="min_bytes <= max_bytes"):
        bandwidth.sweep_sizes(2048, 1024)


# ---------------------------------------------------------------- patterns: simulate each collective


def _simulate(op: str, inputs: list[torch.Tensor], n: int) -> list[torch.Tensor]:
    """What every rank's output holds after one correct operation (reductions summed in the dtype,
    one addition at a time, as a ring does)."""
    if op in ("all_reduce", "reduce_scatter"):
        acc = inputs[0].clone()
        for x in inputs[1:]:
            acc = acc + x
        return [acc] * n if op == "all_reduce" else list(acc.chunk(n))
    if op == "all_gather":
        return [torch.cat(inputs)] * n
    if op == "alltoall":
        return [torch.cat([inputs[s].chunk(n)[r] for s in range(n)]) for r in range(n)]
    return [inputs[patterns.ROOT].clone() for _unused in range(n)]  # broadcast


def _run_pattern(op: str, n: int, dtype: torch.dtype, nbytes: int = 4096):
    pat = patterns.Pattern(n, dtype)
    shape = bandwidth.op_shape(op, nbytes, torch.empty((), dtype=dtype).element_size(), n)
    inputs = []
    for r in range(n):
        out, inp = ops.allocate(shape, dtype, torch.device("cpu"))
        patterns.fill(inp, pat.input_fn(op, r))
        inputs.append(inp)
    return pat, shape, _simulate(op, inputs, n)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("n", [2, 4, 8])
@pytest.mark.parametrize("op", bandwidth.OPS)
def test_correct_results_pass_and_a_wrong_element_is_caught(op, n, dtype):
    pat, shape, outs = _run_pattern(op, n, dtype)
    assert pat.exact
    for r, out in enumerate(outs):
        assert patterns.matches(out, pat.expected_fn(shape, r)), f"{op} rank {r}"
    bad = outs[-1].clone()
    bad[-1] += 1
    assert not patterns.matches(bad, pat.expected_fn(shape, n - 1))


@pytest.mark.parametrize("op", ["all_gather", "alltoall", "reduce_scatter"])
def test_data_from_the_wrong_rank_is_caught(op):
    n = 4
    pat, shape, outs = _run_pattern(op, n, torch.float32)
    # rank 1's result handed to rank 2 (or chunks swapped): values must differ
    if op == "all_gather":
        swapped = torch.cat(list(reversed(outs[0].chunk(n))))
        assert not patterns.matches(swapped, pat.expected_fn(shape, 0))
    else:
        assert not patterns.matches(outs[1], pat.expected_fn(shape, 2))


def test_stale_or_zero_output_is_caught():
    pat, shape, _unused = _run_pattern("broadcast", 2, torch.bfloat16)
    assert not patterns.matches(torch.zeros(shape.count, dtype=torch.bfloat16), pat.expected_fn(shape, 1))
    assert not patterns.matches(torch.full((shape.count,), -1.0), pat.expected_fn(shape, 1))


def test_fill_and_check_work_chunk_by_chunk(monkeypatch):
    monkeypatch.setattr(patterns, "CHUNK", 100)  # 1024 elements -> 11 chunks, the last one short
    pat, shape, outs = _run_pattern("all_gather", 4, torch.float32, nbytes=4096)
    assert patterns.matches(outs[0], pat.expected_fn(shape, 0))
    outs[0][777] = 0  # inside the 8th chunk
    assert not patterns.matches(outs[0], pat.expected_fn(shape, 0))


def test_reduction_values_stay_exact_or_fall_back_to_a_tolerance():
    # bf16 holds integers exactly up to 256: the period m shrinks with n so every partial sum
    # (at most m * (n + n // 2)) stays below it; m is odd
    assert (patterns.Pattern(8, torch.bfloat16).m, patterns.Pattern(64, torch.bfloat16).m) == (21, 1)
    assert patterns.Pattern(4, torch.float32).m == 251
    assert patterns.Pattern(170, torch.bfloat16).exact
    big = patterns.Pattern(512, torch.bfloat16)
    assert (big.m, big.exact) == (1, False)
    idx = torch.arange(16)
    sums = big.reduced(idx).to(torch.bfloat16)  # 768, exact in bf16 anyway (a multiple of 4)
    assert patterns.matches(sums, big.reduced, exact=False)
    assert not patterns.matches(sums * 1.1, big.reduced, exact=False)


# ---------------------------------------------------------------- implementation choice


def test_first_supported_implementation_wins_and_unsupported_is_reported():
    def fails(*_):
        raise RuntimeError("not supported by this backend")

    seen = []
    cands = [("missing", None), ("broken", fails), ("works", lambda *a: seen.append(a))]
    impl = ops.select_impl("all_gather", lambda launch: launch("o", "i", 2, False), cands)
    assert impl is not None and impl.name == "works" and seen == [("o", "i", 2, False)]
    assert ops.select_impl("all_gather", lambda launch: launch(), [("broken", fails)]) is None
    # every op has a candidate list naming torch.distributed calls
    for op in bandwidth.OPS:
        assert ops._candidates(op)


def test_table_rows_show_results_and_unsupported_ops():
    row = {"op": "all_reduce", "dtype": "bf16", "bytes": 4 << 30, "count": 2 << 30, "time_us": 17685.97,
           "algbw_gbps": 242.85, "busbw_gbps": 364.27, "correct": True, "supported": True}
    assert table.format_row(row).split() == ["4294967296", "2147483648", "bf16", "all_reduce",
                                             "17685.97", "242.85", "364.27", "yes"]
    off = {**row, "supported": False, "correct": None}
    assert table.format_row(off).split()[-1] == "unsupported"
    assert "all_reduce: avg bus bandwidth 364.270" in table.format_footer([row, off])


# ---------------------------------------------------------------- argument validation


@pytest.mark.parametrize(("argv", "message"), [
    (["--ops", "all_reduce,gather"], "--ops: unknown collective(s) gather"),
    (["--ops", ","], "--ops: unknown collective(s) (none given)"),
    (["--ops", "broadcast,broadcast"], "--ops: repeated collective"),
    (["--min-bytes", "0"], "argument --min-bytes: must be >= 1"),  # the manifest's bounds
    (["--min-bytes", "4096", "--max-bytes", "1024"], "--max-bytes (1024) must be >= --min-bytes (4096)"),
    (["--iters", "0"], "argument --iters: must be >= 1"),
    (["--warmup-iters", "-1"], "argument --warmup-iters: must be >= 0"),
    (["--dtype", "int8"], "invalid choice: 'int8'"),
    (["--device", "cuda"], "--device cuda: no CUDA device visible"),
])
def test_bad_arguments_fail_with_one_line_before_anything_starts(
        argv, message, capsys, tmp_path, monkeypatch):
    # The no-GPU message on any machine: this process sees no CUDA device, as on a CPU node.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        collectives.parse_args([*argv, "--output-dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
    assert not any(tmp_path.iterdir())  # nothing written


def test_default_arguments_are_the_nccl_tests_ones(tmp_path):
    args = collectives.parse_args(["--output-dir", str(tmp_path)])
    assert (args.min_bytes, args.iters, args.warmup_iters) == (1024, 20, 5)
    assert args.ops == list(bandwidth.OPS)


def test_every_preset_renders_arguments_the_entrypoint_accepts(tmp_path, monkeypatch):
    from ansible_collections.awsome.distributed_training.plugins.module_utils.testcase import (
        load_manifest,
        resolve,
    )

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # h100-sweep asks for --device cuda
    manifest = load_manifest(str(Path(__file__).resolve().parents[2] / "test_cases"), "collectives")
    seen = {}
    for preset in manifest["presets"]:
        plan = resolve(manifest, preset=preset, hosts=["n1", "n2"], target="cluster")
        seen[preset] = collectives.parse_args([*plan["args"], "--output-dir", str(tmp_path)])
    assert (seen["cpu-small"].device, seen["cpu-small"].max_bytes) == ("cpu", 1 << 20)
    assert (seen["h100-sweep"].dtype, seen["h100-sweep"].max_bytes) == ("bf16", 4 << 30)
    assert seen["h100-sweep"].ops == list(bandwidth.OPS)
