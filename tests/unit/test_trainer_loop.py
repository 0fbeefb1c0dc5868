"""The shared train loop and CLI (dtcase.trainer), in this process with a 1-rank gloo group.

Multi-rank FSDP2/DDP runs are in test_trainer_distributed.py (subprocesses).
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from dtcase.model import MODEL_CONFIGS, Transformer
from dtcase.runtime import DistContext
from dtcase.torch_profiler import PROFILED_STEPS, family
from dtcase.trainer import EXIT_NON_FINITE, GC_EVERY, TrainSetup, base_parser, parse_args, train

FSDP_ENTRY = str(Path(__file__).resolve().parents[2] / "test_cases" / "fsdp" / "src" / "train.py")
SMALL = ["--seq-len", "16", "--local-batch-size", "2", "--warmup-steps", "0"]


def _run(ctx: DistContext, argv: list[str], **hooks) -> tuple[int, list[dict]]:
    args = parse_args(base_parser("test", FSDP_ENTRY), argv)
    torch.manual_seed(args.seed)
    model = Transformer(MODEL_CONFIGS[args.model], args.seq_len)
    model.init_weights()
    code = train(TrainSetup(args=args, ctx=ctx, model=model, base=model, dtype=torch.float32, **hooks))
    lines = (Path(args.output_dir) / "metrics-rank0.jsonl").read_text()
    return code, [json.loads(line) for line in lines.splitlines()]


def test_step_events_carry_the_schema_and_consistent_throughput_math(one_rank_group, tmp_path):
    argv = [*SMALL, "--steps", "5", "--log-every", "2", "--output-dir", str(tmp_path)]
    code, recs = _run(one_rank_group, argv)
    assert code == 0
    start, steps, end = recs[0], [r for r in recs if r["event"] == "step"], recs[-1]
    assert start["event"] == "start" and start["device"] == "cpu" and start["peak_tflops"] > 0
    assert start["flops_per_token"] == 6 * start["non_embedding_params"] + 12 * 4 * 4 * 32 * 16
    assert start["config"]["steps"] == 5
    assert [s["step"] for s in steps] == [2, 4, 5]  # every 2nd step and the last one
    for s in steps:
        assert {"loss", "local_loss", "lr", "step_time_s", "tokens_per_s_per_device", "tflops_per_device",
                "mfu", "peak_mem_gib", "grad_norm"} <= s.keys()
        assert s["loss"] == pytest.approx(s["local_loss"])  # one rank: the global mean is its own loss
        assert s["tokens_per_s_per_device"] == pytest.approx(2 * 16 / s["step_time_s"], rel=1e-3)
        assert s["tflops_per_device"] == pytest.approx(
            s["tokens_per_s_per_device"] * start["flops_per_token"] / 1e12, rel=1e-3, abs=1e-6)
        assert s["mfu"] == pytest.approx(s["tflops_per_device"] / start["peak_tflops"], rel=1e-3)
        assert s["peak_mem_gib"] > 0 and s["grad_norm"] > 0
    assert end == end | {"event": "end", "status": "ok", "steps": 5, "steps_run": 5}


def test_the_step_hooks_run_around_every_step_in_order(one_rank_group, tmp_path):
    calls = []
    code, _events = _run(one_rank_group, [*SMALL, "--steps", "3", "--output-dir", str(tmp_path)],
                         before_step=lambda step: calls.append(("before", step)),
                         after_optimizer_step=lambda: calls.append(("after", None)))
    assert code == 0
    assert calls == [("before", 1), ("after", None), ("before", 2), ("after", None),
                     ("before", 3), ("after", None)]


def test_garbage_is_collected_on_the_loops_schedule_only(one_rank_group, tmp_path):
    """No automatic collection inside the loop (it would pause this rank alone): generation 1 after
    every GC_EVERY-th step, and the collector is on again afterwards."""
    seen = []

    def on_collect(phase, info):
        if phase == "start":
            seen.append(("gc", info["generation"]))

    gc.callbacks.append(on_collect)
    try:
        code, _events = _run(one_rank_group, [*SMALL, "--steps", str(2 * GC_EVERY + 3),
                                              "--output-dir", str(tmp_path)],
                             before_step=lambda step: seen.append(("step", step)))
    finally:
        gc.callbacks.remove(on_collect)
    assert code == 0 and gc.isenabled()
    in_loop = seen[seen.index(("step", 1)):]
    assert [e for e in in_loop if e[0] == "gc"] == [("gc", 1), ("gc", 1)]
    assert in_loop.index(("gc", 1)) == in_loop.index(("step", GC_EVERY)) + 1


def test_a_non_finite_loss_is_logged_and_ends_the_run_non_zero(one_rank_group, tmp_path):
    """An absurd learning rate blows the weights up after one Adam step; the loss becomes NaN."""
    code, recs = _run(one_rank_group, [*SMALL, "--steps", "6", "--lr", "1e30", "--grad-clip", "0",
                                       "--output-dir", str(tmp_path)])
    assert code == EXIT_NON_FINITE
    steps = [r for r in recs if r["event"] == "step"]
    assert steps[-1]["loss"] in ("nan", "inf", "-inf") and len(steps) < 6
    assert recs[-1]["event"] == "end" and recs[-1]["status"] == "non_finite_loss"


@pytest.mark.parametrize(("argv", "message"), [
    # Types, choices and bounds as the fsdp manifest declares them.
    (["--steps", "0"], "argument --steps: must be >= 1, got 0"),
    (["--steps", "many"], "argument --steps: must be int, got 'many'"),
    (["--lr", "-1"], "argument --lr: must be >= 1e-09, got -1.0"),
    (["--lr", "inf"], "--lr must be a finite number, got inf"),
    (["--checkpoint-every", "5"], "--checkpoint-every and --resume need --checkpoint-dir"),
    (["--resume"], "--checkpoint-every and --resume need --checkpoint-dir"),
    (["--dtype", "bf16"], "--dtype bf16 needs a CUDA device"),
    (["--model", "llama3-70b"], "invalid choice: 'llama3-70b'"),
])
def test_bad_input_exits_2_with_one_error_line_before_anything_starts(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        parse_args(base_parser("test", FSDP_ENTRY), [*argv, "--output-dir", str(tmp_path / "out")])
    assert exc.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0]
    assert not dist.is_initialized() and not (tmp_path / "out").exists()


# --torch-profiler: the family table is checked against real H100/H200 kernel names; the CUDA path itself
# ran on the GPU machine (docs/performance.md). On CPU the profile ranks operators.
@pytest.mark.parametrize(("name", "expected"), [
    ("nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_NNT", "gemm"),
    ("ncclDevKernel_AllGather_RING_LL(ncclDevKernelArgsStorage<4096ul>)", "communication"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_26", "attention"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<at::native::FusedAdam>", "optimizer"),
    ("triton_poi_fused__unsafe_view_mul_silu_silu_backward_view_0", "fused (triton)"),
    ("void at::native::detail::chunk_cat_cuda_kernel<float, c10::BFloat16>", "memory copies"),
    ("aten::mm", "gemm"),
    ("aten::rms_norm", "other"),
])
def test_kernels_fall_into_their_family(name, expected):
    assert family(name) == expected


def test_the_last_steps_are_profiled_flagged_and_summarised(one_rank_group, tmp_path):
    steps = PROFILED_STEPS + 2
    argv = [*SMALL, "--steps", str(steps), "--torch-profiler", "--output-dir", str(tmp_path)]
    code, recs = _run(one_rank_group, argv)
    assert code == 0
    flagged = [r["step"] for r in recs if r["event"] == "step" and r.get("profiled")]
    assert flagged == list(range(3, steps + 1))
    prof = json.loads((Path(tmp_path) / "profile-rank0.json").read_text())
    assert prof["steps"] == [3, steps] and prof["time_source"] == "cpu operators"
    assert prof["ms_per_step"] > 0 and prof["top"]
    assert prof["ms_per_step"] == pytest.approx(sum(prof["families_ms_per_step"].values()), rel=1e-3)
    assert prof["families_ms_per_step"]["gemm"] > 0  # the tiny model's matmuls


def test_without_profile_no_step_is_flagged_and_no_file_written(one_rank_group, tmp_path):
    code, recs = _run(one_rank_group, [*SMALL, "--steps", "3", "--output-dir", str(tmp_path)])
    assert code == 0
    assert not any(r.get("profiled") for r in recs)
    assert not (Path(tmp_path) / "profile-rank0.json").exists()
