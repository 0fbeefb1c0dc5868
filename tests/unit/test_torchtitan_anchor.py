"""scripts/torchtitan_anchor.py: reading torchtitan's log into the anchor figures.

torchtitan itself only runs on the GPU machine (docs/performance.md); these lines are copied from
its log there (torchtitan 0.2.2, two ranks printing each step).
"""
from pathlib import Path

import pytest

from helpers import load_module

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "torchtitan_anchor.py"
anchor = load_module(SCRIPT)

LOG = """\
[titan] 2026-11-28 08:09:03,079 - root - WARNING - Error running lspci: fallback to use device_name
[titan] 2026-11-28 08:09:03,079 - root - INFO - step:  1  loss: 12.27436  grad_norm: 36.3903  memory: 62.03GiB(44.37%)  tps: 596  tflops: 34.53  mfu: 3.49%
[titan] 2026-11-28 08:09:12,587 - root - INFO - step: 11  loss:  5.66745  grad_norm: 33.5035  memory: 80.97GiB(57.92%)  tps: 8,725  tflops: 505.30  mfu: 51.09%
[titan] 2026-11-28 08:09:12,587 - root - INFO - step: 11  loss:  5.66745  grad_norm: 33.5035  memory: 80.97GiB(57.92%)  tps: 8,723  tflops: 505.20  mfu: 51.08%
[titan] 2026-11-28 08:09:13,530 - root - INFO - step: 12  loss:  4.89492  grad_norm: 28.7308  memory: 80.97GiB(57.92%)  tps: 8,695  tflops: 503.49  mfu: 50.91%
"""  # noqa: E501 (log lines as torchtitan writes them)


def test_step_lines_are_read_with_their_thousands_separators():
    steps = anchor.parse_steps(LOG)
    assert sorted(steps) == [1, 11, 12]
    assert steps[11] == {"loss": 5.66745, "reserved_gib": 80.97, "mfu": 51.08, "tps": 8723.0, "tflops": 505.2}


def test_summary_averages_the_window_and_leaves_out_warm_up():
    out = anchor.summarize(anchor.parse_steps(LOG), last=12)
    assert out["tokens_per_s_per_device"] == round((8723 + 8695) / 2)   # step 1 (596) is outside 11-12
    assert out["mfu_pct"] == pytest.approx((51.08 + 50.91) / 2, abs=0.01)
    assert out["peak_reserved_gib"] == 80.97
    assert (out["loss_first"], out["loss_last"]) == (12.27436, 4.89492)


def test_a_log_without_steps_in_the_window_has_no_figures():
    out = anchor.summarize(anchor.parse_steps(LOG.splitlines()[1]), last=40)
    assert out["steps_logged"] == 1 and "tokens_per_s_per_device" not in out


def test_float8_options_name_torchtitans_converter_and_keep_the_output_layer_in_bf16():
    assert anchor.float8_args("none") == []
    tensorwise = anchor.float8_args("tensorwise")
    assert tensorwise[:4] == ["--model.converters", "quantize.linear.float8",
                              "--quantize.linear.float8.filter_fqns", "output"]
    assert {"--quantize.linear.float8.enable_fsdp_float8_all_gather",
            "--quantize.linear.float8.precompute_float8_dynamic_scale_for_fsdp"} <= set(tensorwise)
    rowwise = anchor.float8_args("rowwise")
    assert rowwise[-2:] == ["--quantize.linear.float8.recipe_name", "rowwise"]
    assert not any("all_gather" in a for a in rowwise)  # torchao allows float8 all-gather for tensorwise only
    with pytest.raises(ValueError, match="unknown float8 recipe 'mx'"):
        anchor.float8_args("mx")
