"""Composer's logged metrics -> the common metrics events (docs/development.md, "Metrics").

Composer reports everything through ``Logger.log_metrics({name: value}, step=batch)``; its own
FileLogger writes each call as ``[metric][batch=N]: <name>: <value>`` lines. The case hands the
same calls to a destination that feeds them here, so the events and Composer's own log file carry
the same numbers; ``events_from_log`` reads such a file (a run of any Composer script) the same way.

Composer 0.32 labels a batch's training loss with the batch counter before the batch counts
(``loss/train/total`` of the first batch is logged at ``batch=0``), and what BATCH_END logs
(SpeedMonitor's throughput, LRMonitor's rate) with the counter after: the loss at label ``b`` is
step ``b + 1``'s, the rest at label ``b`` step ``b``'s (1-based, like every case's step events).

Standard library only: the collection's Python (no Composer, newer torch) unit-tests it.
"""

from __future__ import annotations

import re
from typing import Any

# Composer's names (its Trainer, SpeedMonitor and LRMonitor) -> the common step fields.
LOSS_PREFIX = "loss/train/"
LOSS = "loss/train/total"                               # all-reduced over ranks by the Trainer
TOKENS_PER_DEVICE = "throughput/device/tokens_per_sec"  # SpeedMonitor, over its window of batches
BATCHES_PER_SEC = "throughput/batches_per_sec"
FLOPS_PER_DEVICE = "throughput/device/flops"             # only when the model declares flops_per_batch
MFU = "throughput/device/mfu"
_LR = re.compile(r"^lr-[^/]+/group0$")
_LINE = re.compile(r"^\[metric\]\[batch=(\d+)\]: (\S+): (\S+)\s*$")


def parse_line(line: str) -> tuple[int, str, float] | None:
    """(batch, metric name, value) of one FileLogger metric line; None for any other line."""
    match = _LINE.match(line.strip())
    if not match:
        return None
    try:
        value = float(match.group(3))
    except ValueError:  # a string or tensor-shaped value: not a number the events carry
        return None
    return int(match.group(1)), match.group(2), value


def step_event(step: int, metrics: dict[str, float]) -> dict[str, Any] | None:
    """The fields of one common ``step`` event from the metrics Composer logged at batch ``step``.

    None when the batch logged no training loss (an evaluation-only or empty batch)."""
    if LOSS not in metrics:
        return None
    event: dict[str, Any] = {"step": step, "loss": metrics[LOSS]}
    if TOKENS_PER_DEVICE in metrics:
        event["tokens_per_s_per_device"] = metrics[TOKENS_PER_DEVICE]
    if metrics.get(BATCHES_PER_SEC):
        # Composer counts a batch once for all ranks (they step together): one step takes 1 / rate.
        event["step_time_s"] = round(1.0 / metrics[BATCHES_PER_SEC], 6)
    if FLOPS_PER_DEVICE in metrics:
        event["tflops_per_device"] = metrics[FLOPS_PER_DEVICE] / 1e12
    if MFU in metrics:
        event["mfu"] = metrics[MFU]
    lr = next((v for k, v in metrics.items() if _LR.match(k)), None)
    if lr is not None:
        event["lr"] = lr
    return {k: v for k, v in event.items() if v is not None}


class StepEvents:
    """Collects Composer's metrics per batch and hands out the step events of finished batches."""

    def __init__(self) -> None:
        self._batches: dict[int, dict[str, float]] = {}

    def add(self, batch: int, metrics: dict[str, float]) -> None:
        """Metrics Composer logged with step label ``batch``."""
        for name, value in metrics.items():
            step = int(batch) + 1 if name.startswith(LOSS_PREFIX) else int(batch)
            self._batches.setdefault(step, {})[name] = float(value)

    def done(self, up_to: int | None = None) -> list[dict[str, Any]]:
        """Step events of every batch <= ``up_to`` (all when None), in order; they are then forgotten."""
        ready = sorted(b for b in self._batches if up_to is None or b <= up_to)
        events = [step_event(b, self._batches.pop(b)) for b in ready]
        return [e for e in events if e is not None]


def events_from_log(text: str) -> list[dict[str, Any]]:
    """Step events from a Composer FileLogger file."""
    steps = StepEvents()
    for line in text.splitlines():
        parsed = parse_line(line)
        if parsed:
            steps.add(parsed[0], {parsed[1]: parsed[2]})
    return steps.done()
