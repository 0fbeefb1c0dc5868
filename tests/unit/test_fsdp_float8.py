"""fsdp's float8 plumbing: which linears convert, the refusals, the trainer's one-line preflight, the
manifest's preset, and the conversion with its bf16 warm-up and the float8 all-gather that follows it
(two gloo ranks) through torchao's float8 emulation on CPU (torchao's own option for machines without
float8 tensor cores). Real float8 GEMMs need a GPU of compute capability >= 8.9, which this machine
lacks: they run on the GPU machine (docs/performance.md, "float8")."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest
import torch
import torchao.float8

from ansible_collections.awsome.distributed_training.plugins.module_utils.testcase import (
    load_manifest,
    resolve,
)
from dtcase.model import MODEL_CONFIGS, Transformer
from dtcase.trainer import base_parser, parse_args
from helpers import REPO, gloo_rank_envs, load_module, run_local_processes

FSDP_SRC = REPO / "test_cases" / "fsdp" / "src"
sys.path.insert(0, str(FSDP_SRC))
import float8 as float8_module  # noqa: E402
from float8 import (  # noqa: E402
    apply_float8,
    float8_gather_switch_error,
    float8_linear_names,
    float8_request_error,
    switch_on_at,
)
from float8_gather_ranks import EmulatedConfig  # noqa: E402  (its ranks' float8 emulation)
from parallelize import parallelize  # noqa: E402

fsdp_train = load_module(FSDP_SRC / "train.py", "fsdp_train")


def test_every_block_projection_converts_and_the_output_head_does_not():
    model = Transformer(MODEL_CONFIGS["tiny"], 16)
    names = float8_linear_names(model)
    per_block = ["attention.wq", "attention.wk", "attention.wv", "attention.wo",
                 "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"]
    assert names == [f"layers.{b}.{p}" for b in range(4) for p in per_block]
    assert "output" not in names and all(n.startswith("layers.") for n in names)


@pytest.mark.parametrize(("skip", "kept_in_bf16"), [
    (["*.w2"], [f"layers.{b}.feed_forward.w2" for b in range(4)]),
    (["layers.0.*", "layers.3.*"], [n for n in float8_linear_names(Transformer(MODEL_CONFIGS["tiny"], 16))
                                    if n.startswith(("layers.0.", "layers.3."))]),
    (["*.nothing"], []),
])
def test_skip_patterns_keep_exactly_the_matching_linears_in_bf16(skip, kept_in_bf16):
    model = Transformer(MODEL_CONFIGS["tiny"], 16)
    every = float8_linear_names(model)
    assert float8_linear_names(model, skip) == [n for n in every if n not in kept_in_bf16]


def test_a_bf16_warm_up_switches_every_converted_linear_to_float8_once_at_its_step():
    float8 = object()
    linears = [SimpleNamespace(config=float8), SimpleNamespace(config=float8), SimpleNamespace(config=float8)]
    bf16 = object()
    before_step = switch_on_at(linears, 11, bf16)
    for step in range(1, 11):
        before_step(step)
        assert all(m.config is bf16 for m in linears), step
    before_step(11)
    assert all(m.config is float8 for m in linears)
    for m in linears:      # switched once: later steps leave the configuration alone
        m.config = "untouched"
    before_step(12)
    assert all(m.config == "untouched" for m in linears)


def test_a_run_resumed_past_the_switch_computes_in_float8_from_its_first_step():
    linears = [SimpleNamespace(config="float8")]
    before_step = switch_on_at(linears, 11, "bf16")
    assert linears[0].config == "bf16"
    before_step(31)   # resumed at step 30
    assert linears[0].config == "float8"


def test_apply_float8_runs_bf16_until_its_step_then_float8_and_leaves_skipped_linears_alone(monkeypatch):
    monkeypatch.setattr(torchao.float8, "Float8LinearConfig", EmulatedConfig)
    torch.manual_seed(0)
    plain = Transformer(MODEL_CONFIGS["tiny"], 16)
    plain.init_weights()
    model = Transformer(MODEL_CONFIGS["tiny"], 16)
    model.load_state_dict(plain.state_dict())
    hooks = apply_float8(model, "tensorwise", False, ["*.w2"], True, from_step=3)
    assert hooks.after_optimizer_step is None   # scales are precomputed only for float8 all-gather
    kinds = {name: type(m).__name__ for name, m in model.named_modules() if name.startswith("layers.0.")}
    assert kinds["layers.0.feed_forward.w2"] == "Linear" and kinds["layers.0.attention.wq"] == "Float8Linear"
    tokens = torch.randint(0, 512, (2, 16))
    expected = plain(tokens)
    expected.sum().backward()
    for step in (1, 2):   # the warm-up: bit for bit the plain model, forward and backward
        hooks.before_step(step)
        out = model(tokens)
        assert torch.equal(out, expected), step
        model.zero_grad()
        out.sum().backward()
        wq, plain_wq = model.layers["0"].attention.wq, plain.layers["0"].attention.wq
        assert torch.equal(wq.weight.grad, plain_wq.weight.grad)
    hooks.before_step(3)  # float8 from here: close to the plain model, not equal
    out = model(tokens)
    assert not torch.equal(out, expected)
    assert torch.allclose(out, expected, rtol=0.1, atol=0.1)


def test_float8_all_gather_starts_at_the_switch_computes_what_casting_does_and_resumes(tmp_path):
    """Two gloo ranks (tests/unit/float8_gather_ranks.py): the same FSDP2 model with float8 from
    step 3, its weights gathered as they are and cast in the linears (``cast``) or, from the switch,
    gathered in float8 (``gather``); and ``gather`` resumed from its checkpoint of step 4."""
    cmd = [sys.executable, str(REPO / "tests" / "unit" / "float8_gather_ranks.py"), str(tmp_path)]
    codes, logs = run_local_processes(cmd, gloo_rank_envs(2, REPO / "test_cases" / "common", FSDP_SRC))
    assert codes == [0, 0], "\n".join(logs)[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())
    plain, cast, gather, resumed = (report[k] for k in ("plain", "cast", "gather", "resumed"))
    # FSDP2 hands the linear float8 weights from the switch on, and only with float8 all-gather.
    assert gather["seen"] == ["plain", "plain", "float8", "float8", "float8"]
    assert cast["seen"] == plain["seen"] == ["plain"] * 5
    # The bf16 warm-up is the plain model's training, bit for bit; float8 then moves the loss.
    assert gather["losses"][:2] == cast["losses"][:2] == plain["losses"][:2]
    assert all(g != p for g, p in zip(gather["losses"][2:], plain["losses"][2:], strict=True))
    # Gathering float8 casts what casting after the gather casts, with the same scale: same losses.
    assert gather["losses"] == cast["losses"]
    # Resumed past the switch (from step 4), the run gathers float8 at once and continues the same.
    assert resumed["from"] == 4 and resumed["seen"] == ["float8"]
    assert resumed["losses"] == gather["losses"][4:]


def test_a_torch_whose_fsdp2_keeps_other_state_is_refused_before_the_first_step(one_rank_group, monkeypatch):
    """The switch renews FSDP2 state that torch keeps privately: a torch that keeps it otherwise must
    stop the run as it is set up, in one line, not at its switch (step 10 of the preset)."""
    monkeypatch.setattr(torchao.float8, "Float8LinearConfig", EmulatedConfig)
    setup = {"ac": "none", "compile_blocks": False, "device_type": "cpu", "world_size": 1,
             "param_dtype": torch.float32, "float8": "tensorwise", "float8_all_gather": True}
    model = Transformer(MODEL_CONFIGS["tiny"], 16)
    parallelize(model, **setup, float8_from_step=3)
    assert float8_gather_switch_error(model) is None
    # A torch whose FSDP2 parameters lack one piece of that state (here: one more name asked for).
    asked = (*float8_module.FSDP_PARAM_STATE, "_renamed")
    monkeypatch.setattr(float8_module, "FSDP_PARAM_STATE", asked)
    expected = ("float8 all-gather after a bf16 warm-up needs FSDP2's per-parameter state as torch "
                f"2.11-2.13 keep it; torch {torch.__version__} differs (_renamed): use float8_from_step 1 "
                "or float8_all_gather false")
    assert float8_gather_switch_error(model) == expected
    with pytest.raises(RuntimeError) as refused:
        parallelize(Transformer(MODEL_CONFIGS["tiny"], 16), **setup, float8_from_step=3)
    assert str(refused.value) == expected
    # float8 all-gather from the first step is torchao's own path: nothing of FSDP2's is renewed.
    parallelize(Transformer(MODEL_CONFIGS["tiny"], 16), **setup, float8_from_step=1)


def test_no_float8_leaves_the_model_alone_and_needs_no_torchao():
    model = Transformer(MODEL_CONFIGS["tiny"], 16)
    before = [type(m) for m in model.modules()]
    assert apply_float8(model, "none", False) == (None, None)
    assert [type(m) for m in model.modules()] == before


BAD_REQUESTS = [  # (recipe, all_gather, skip, fast_accum), the one line that refuses it
    (("rowwise", True, [], True), "float8 all-gather needs tensorwise scaling, got 'rowwise'"),
    (("none", True, [], True), "float8 all-gather needs tensorwise scaling, got 'none'"),
    (("mxfp8", False, [], True), "unknown float8 recipe 'mxfp8'"),
    (("rowwise", False, [], False), "float8 without fast accumulation is a tensorwise option, got 'rowwise'"),
    (("none", False, ["*.w2"], True), "float8 skip patterns \\*.w2 need a float8 recipe, got 'none'"),
    (("none", False, [], True, 11), "float8 from step 11 needs a float8 recipe, got 'none'"),
]


@pytest.mark.parametrize(("request_", "message"), BAD_REQUESTS)
def test_bad_float8_requests_are_refused_before_anything_converts(request_, message):
    model = Transformer(MODEL_CONFIGS["tiny"], 16)
    before = [type(m) for m in model.modules()]
    with pytest.raises(ValueError, match=message):
        apply_float8(model, *request_)
    assert [type(m) for m in model.modules()] == before


def trainer_refusal(capsys, *flags: str) -> list[str]:
    """The fsdp trainer's preflight (parse_args, then check_request), run in this process: the
    `error:` lines it printed as it exited 2. Nothing else in the trainer has run by then."""
    parser = base_parser("fsdp", str(FSDP_SRC / "train.py"))
    parser.prog = "train.py"
    with pytest.raises(SystemExit) as stopped:
        args = parse_args(parser, [*flags, "--output-dir", "unused"])
        fsdp_train.check_request(parser, args, fsdp_train.float8_skip_patterns(args))
    assert stopped.value.code == 2
    return [line for line in capsys.readouterr().err.splitlines() if "error:" in line]


@pytest.mark.parametrize(("flags", "message"), [
    (["--float8", "rowwise", "--float8-all-gather"],
     "float8 all-gather needs tensorwise scaling, got 'rowwise'"),
    (["--float8-skip", "*.w2"], "float8 skip patterns *.w2 need a float8 recipe, got 'none'"),
    (["--float8", "rowwise", "--no-float8-fast-accum"],
     "float8 without fast accumulation is a tensorwise option, got 'rowwise'"),
    (["--n-layers", "5"], "--n-layers 5: tiny has 4 blocks"),
])
def test_the_trainer_refuses_a_bad_request_in_one_line_before_starting(capsys, flags, message):
    assert trainer_refusal(capsys, *flags) == [f"train.py: error: {message}"]


def test_the_trainer_names_the_missing_package_in_one_line_before_starting(capsys, monkeypatch):
    # A None entry in sys.modules is how Python marks a module as not importable (find_spec answers
    # None), whether or not this Python has torchao.
    monkeypatch.setitem(sys.modules, "torchao", None)
    error = trainer_refusal(capsys, "--float8", "tensorwise", "--float8-all-gather")
    assert len(error) == 1 and "needs the Python package 'torchao'" in error[0], error
    assert sys.executable in error[0]


def test_the_manifest_preset_asks_for_tensorwise_float8_gathered_in_float8_after_a_bf16_warm_up():
    manifest = load_manifest(str(REPO / "test_cases"), "fsdp")
    plan = resolve(manifest, preset="h200-llama3-8b-fp8", hosts=["gpu1"], target="all")
    params = plan["params"]
    assert params["float8"] == "tensorwise" and params["float8_from_step"] == 10
    assert params["float8_from_step"] <= params["warmup_steps"]  # the recompile stays out of steps 11-40
    args = plan["args"]
    assert args[args.index("--float8") + 1] == "tensorwise" and "--float8-all-gather" in args
    assert args[args.index("--float8-from-step") + 1] == "10"
    refusal = float8_request_error(params["float8"], params["float8_all_gather"], [],
                                   params["float8_fast_accum"], params["float8_from_step"])
    assert refusal is None
    assert plan["params"]["model"] == "llama3-8b" and plan["accelerator"] == "cuda"
    bf16 = resolve(manifest, preset="h100-llama3-8b", hosts=["gpu1"], target="all")
    args = bf16["args"]
    assert args[args.index("--float8") + 1] == "none" and "--no-float8-all-gather" in args
