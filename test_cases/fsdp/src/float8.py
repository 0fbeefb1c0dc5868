"""float8 linears (torchao) for the Llama model's blocks: which linears convert, the refusals, the
bf16 warm-up and the float8 all-gather that may follow it. Applied before activation checkpointing,
torch.compile and FSDP2 (parallelize.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from typing import NamedTuple

import torch

from dtcase.model import Transformer

FLOAT8_RECIPES = ("none", "tensorwise", "rowwise", "rowwise_with_gw_hp")
FLOAT8_PACKAGE = "torchao"


def float8_linear_names(model: Transformer, skip: Sequence[str] = ()) -> list[str]:
    """The linears float8 training converts: every projection inside the transformer blocks whose
    dimensions are multiples of 16 (the float8 tensor cores' granularity), less those matching a
    ``skip`` pattern (fnmatch, e.g. ``*.w2`` or ``layers.0.*``). The output head stays bf16 (its
    logits feed the loss), as do attention itself (SDPA) and the loss."""
    fits = [f"layers.{name}" for name, mod in model.layers.named_modules()
            if isinstance(mod, torch.nn.Linear) and all(d % 16 == 0 for d in mod.weight.shape)]
    return [fqn for fqn in fits if not any(fnmatchcase(fqn, pattern) for pattern in skip)]


class StepHooks(NamedTuple):
    """What the training loop runs around each step for float8 (either may be None)."""
    before_step: Callable[[int], None] | None = None   # given the step about to run
    after_optimizer_step: Callable[[], None] | None = None


def float8_request_error(recipe: str, all_gather: bool, skip: Sequence[str], fast_accum: bool,
                         from_step: int = 1) -> str | None:
    """Why this combination of float8 options cannot run (one line), or None."""
    if recipe not in FLOAT8_RECIPES:
        return f"unknown float8 recipe {recipe!r}: expected one of {FLOAT8_RECIPES}"
    if all_gather and recipe != "tensorwise":
        return f"float8 all-gather needs tensorwise scaling, got {recipe!r}"
    if not fast_accum and recipe != "tensorwise":
        return f"float8 without fast accumulation is a tensorwise option, got {recipe!r}"
    if skip and recipe == "none":
        return f"float8 skip patterns {', '.join(skip)} need a float8 recipe, got 'none'"
    if from_step > 1 and recipe == "none":
        return f"float8 from step {from_step} needs a float8 recipe, got 'none'"
    return None


def _bf16_config():
    """A Float8Linear configuration that casts nothing: the linears compute in bf16."""
    from torchao.float8.config import CastConfig, Float8LinearConfig, ScalingType

    off = CastConfig(scaling_type=ScalingType.DISABLED)
    return Float8LinearConfig(cast_config_input=off, cast_config_weight=off, cast_config_grad_output=off)


def switch_on_at(modules: list[torch.nn.Module], from_step: int, bf16,
                 then: Callable[[], None] | None = None) -> Callable[[int], None]:
    """Run ``modules`` with the ``bf16`` configuration until ``from_step``, then with their own (float8)
    one, and call ``then`` once, after switching; a run resumed past ``from_step`` switches at its
    first step. The compiled blocks see a new configuration object at the switch and recompile once."""
    configs = [m.config for m in modules]
    for m in modules:
        m.config = bf16
    switched = False

    def before_step(step: int) -> None:
        nonlocal switched
        if not switched and step >= from_step:
            for m, config in zip(modules, configs, strict=True):
                m.config = config
            if then is not None:
                then()
            switched = True

    return before_step


# The FSDP2 state gather_in_float8 renews: private, as torch 2.11 and 2.13 keep it per parameter.
FSDP_PARAM_STATE = ("sharded_param", "_module_info", "_sharded_param_data", "all_gather_outputs",
                    "_unsharded_inner_tensors")


def _fsdp_params(model: torch.nn.Module) -> list:
    """FSDP2's record of every sharded parameter of the model."""
    from torch.distributed.fsdp import FSDPModule

    groups = [m._get_fsdp_state()._fsdp_param_group for m in model.modules() if isinstance(m, FSDPModule)]
    return [param for group in groups if group is not None for param in group.fsdp_params]


def float8_gather_switch_error(model: torch.nn.Module) -> str | None:
    """Why this torch's FSDP2 could not turn float8 all-gather on after a bf16 warm-up (one line), or
    None: asked before the first step, so that such a run stops there and not at its switch."""
    try:
        from torch.distributed.fsdp._fully_shard._fsdp_param import ExtensionsData  # noqa: F401

        params = _fsdp_params(model)
        missing = sorted({name for p in params for name in FSDP_PARAM_STATE if not hasattr(p, name)})
    except (ImportError, AttributeError) as exc:
        params, missing = [], [str(exc)]
    if params and not missing:
        return None
    return (f"float8 all-gather after a bf16 warm-up needs FSDP2's per-parameter state as torch 2.11-2.13 "
            f"keep it; torch {torch.__version__} differs ({', '.join(missing) or 'no FSDP2 parameters'}): "
            "use float8_from_step 1 or float8_all_gather false")


def gather_in_float8(model: torch.nn.Module, linears: list[torch.nn.Module]) -> None:
    """From the next all-gather on, FSDP2 gathers these Float8Linears' weights in float8, as torchao's
    ``enable_fsdp_float8_all_gather`` makes it do from the start: each weight's shard becomes torchao's
    float8-casting tensor, and FSDP2 forgets the bf16 buffers and gathered parameter it built at its
    first all-gather (it keeps them for the whole run and has no public way to renew them:
    ``FSDP_PARAM_STATE``), so that the next one builds float8 ones. Call between steps, when every
    weight is sharded; all their scales then take one all-reduce."""
    from torch.distributed.fsdp._fully_shard._fsdp_param import ExtensionsData
    from torchao.float8 import precompute_float8_dynamic_scale_for_fsdp
    from torchao.float8.fsdp_utils import WeightWithDynamicFloat8CastTensor

    chosen = {id(m) for m in linears}
    for param in _fsdp_params(model):
        linear = param._module_info.module
        if id(linear) not in chosen or param._module_info.param_name != "weight":
            continue
        sharded = param.sharded_param
        sharded._local_tensor = WeightWithDynamicFloat8CastTensor(
            sharded._local_tensor, linear.linear_mm_config, linear.config.cast_config_weight.target_dtype)
        # As fully_shard leaves a weight that torchao wrapped before it (its lazy init checks this).
        param._sharded_param_data = sharded._local_tensor.view(-1)
        param._extensions_data = ExtensionsData()
        param.all_gather_outputs = []
        param._unsharded_inner_tensors = []
        if hasattr(param, "_unsharded_param"):
            del param._unsharded_param
    precompute_float8_dynamic_scale_for_fsdp(model)


def apply_float8(model: Transformer, recipe: str, all_gather: bool, skip: Sequence[str] = (),
                 fast_accum: bool = True, from_step: int = 1) -> StepHooks:
    """Swap the block linears for torchao's Float8Linear (dynamic scaling, ``recipe``). With
    ``all_gather`` (tensorwise only) FSDP2 all-gathers the weights in float8, and the hook run after
    every optimizer step computes all their scales in one all-reduce. ``fast_accum=False`` makes the
    forward GEMM accumulate as the backward ones do (tensorwise). ``from_step`` > 1: the steps before
    it compute in bf16 and gather bf16 weights (a bf16 warm-up), switched by the hook run before each
    step (with ``all_gather``, the switch also turns the float8 all-gather on)."""
    error = float8_request_error(recipe, all_gather, skip, fast_accum, from_step)
    if error:
        raise ValueError(error)
    if recipe == "none":
        return StepHooks()
    from torchao.float8 import (
        Float8LinearConfig,
        convert_to_float8_training,
        precompute_float8_dynamic_scale_for_fsdp,
    )
    from torchao.float8.config import Float8GemmConfig

    if recipe == "tensorwise":
        # After a bf16 warm-up, the switch (gather_in_float8) turns the float8 all-gather on.
        config = Float8LinearConfig(enable_fsdp_float8_all_gather=all_gather and from_step == 1,
                                    gemm_config_output=Float8GemmConfig(use_fast_accum=fast_accum))
    else:
        config = Float8LinearConfig.from_recipe_name(recipe)
        # Inductor must round the rowwise casts as eager does (pytorch/pytorch#150859), as torchtitan sets.
        torch._inductor.config.emulate_precision_casts = True
    chosen = set(float8_linear_names(model, skip))
    convert_to_float8_training(model, config=config, module_filter_fn=lambda _mod, fqn: fqn in chosen)
    converted = [m for fqn, m in model.named_modules() if fqn in chosen]
    gather = (lambda: gather_in_float8(model, converted)) if all_gather else None
    before = switch_on_at(converted, from_step, _bf16_config(), then=gather) if from_step > 1 else None
    # Until a bf16 warm-up's switch no weight is gathered in float8: this finds none to scale.
    after = (lambda: precompute_float8_dynamic_scale_for_fsdp(model)) if all_gather else None
    return StepHooks(before_step=before, after_optimizer_step=after)
