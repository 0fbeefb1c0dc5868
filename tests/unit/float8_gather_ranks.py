"""One gloo rank of test_fsdp_float8.py's float8 all-gather checks (run as two processes, CPU only).

Four FSDP2 copies of the tiny model, same weights, trained five steps on the same tokens:
``plain`` (no float8), ``cast`` (float8 from step 3, weights gathered as they are and cast inside the
linears), ``gather`` (float8 from step 3, then gathered in float8) and ``resumed`` (``gather`` saved
after step 4 and loaded into a fresh copy, past its switch). Float8 GEMMs run through torchao's CPU
emulation. Rank 0 writes each copy's losses and the kind of weight its first linear saw in each
forward to report.json in the directory named by the first argument (its checkpoints too).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchao.float8
from float8 import StepHooks, apply_float8
from parallelize import apply_fsdp
from torchao.float8.float8_training_tensor import Float8TrainingTensor

from dtcase import checkpoint
from dtcase.model import MODEL_CONFIGS, Transformer


@dataclass(frozen=True)
class EmulatedConfig(torchao.float8.Float8LinearConfig):
    """torchao's configuration with its CPU emulation of float8 GEMMs on by default."""
    emulate: bool = True


STEPS, SWITCH, SAVED_AFTER = 5, 3, 4


def build(state: dict, float8: bool, all_gather: bool) -> tuple[torch.nn.Module, StepHooks, list[str]]:
    model = Transformer(MODEL_CONFIGS["tiny"], 16)
    model.load_state_dict(state)
    hooks = apply_float8(model, "tensorwise", all_gather, from_step=SWITCH) if float8 else StepHooks()
    apply_fsdp(model, "cpu", dist.get_world_size(), torch.float32)
    seen: list[str] = []   # what FSDP handed the first linear in each forward
    model.layers["0"].attention.wq.register_forward_pre_hook(
        lambda mod, _args: seen.append("float8" if isinstance(mod.weight, Float8TrainingTensor) else "plain"))
    return model, hooks, seen


def train(model, hooks: StepHooks, steps: range, tokens,
          optimizer=None) -> tuple[list[float], torch.optim.Optimizer]:
    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)
    losses = []
    for step in steps:
        if hooks.before_step:
            hooks.before_step(step)
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if hooks.after_optimizer_step:
            hooks.after_optimizer_step()
        losses.append(loss.item())
    return losses, optimizer


def main() -> None:
    out = Path(sys.argv[1])
    torchao.float8.Float8LinearConfig = EmulatedConfig   # apply_float8 imports it when it converts
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    reference = Transformer(MODEL_CONFIGS["tiny"], 16)
    reference.init_weights()
    state = reference.state_dict()
    tokens = torch.randint(0, MODEL_CONFIGS["tiny"].vocab_size, (2, 17),
                           generator=torch.Generator().manual_seed(1 + dist.get_rank()))
    report = {}
    for name, float8, all_gather in (("plain", False, False), ("cast", True, False), ("gather", True, True)):
        model, hooks, seen = build(state, float8, all_gather)
        first, optimizer = train(model, hooks, range(1, SAVED_AFTER + 1), tokens)
        if name == "gather":
            path, _unused = checkpoint.save(out / "checkpoints", SAVED_AFTER, model, optimizer)
        rest, _unused = train(model, hooks, range(SAVED_AFTER + 1, STEPS + 1), tokens, optimizer)
        report[name] = {"losses": first + rest, "seen": seen}
    model, hooks, seen = build(state, True, True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)
    resumed_at, _unused = checkpoint.load(path, model, optimizer)
    losses, _unused = train(model, hooks, range(resumed_at + 1, STEPS + 1), tokens, optimizer)
    report["resumed"] = {"losses": losses, "seen": seen, "from": resumed_at}
    if dist.get_rank() == 0:
        (out / "report.json").write_text(json.dumps(report))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
