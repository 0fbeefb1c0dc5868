"""A small causal LM trained by MosaicML Composer's Trainer (DDP), one process per rank.

Started by Composer's own launcher (``python -m composer.cli.launcher``), which the test case's
command mode runs once per node with the launch contract (MASTER_ADDR, NODE_RANK, WORLD_SIZE, ...):
it spawns the node's ranks with RANK/LOCAL_RANK set, and the Trainer joins them (gloo on CPU, NCCL
on GPUs). Composer's own FileLogger writes ``composer-rank<R>.log``; the same metrics, turned into
the common events by composer_case.adapter, go to ``metrics-rank<R>.jsonl``.
See docs/test_cases/composer.md.
"""

from __future__ import annotations

import argparse
import sys
import time

import composer
import torch
from composer import Trainer
from composer.callbacks import LRMonitor, SpeedMonitor
from composer.core import DataSpec
from composer.loggers import FileLogger, LoggerDestination
from composer.optim import DecoupledAdamW
from composer.utils import dist
from composer_case.adapter import StepEvents
from composer_case.data import CorpusWindows, RankSamples, StagedWindows
from composer_case.model import CONFIGS, VOCAB, CausalLM, ComposerCausalLM

from dtcase.metrics import MetricsWriter
from dtcase.params import manifest_parser
from dtcase.staged import open_staged


class MetricsEvents(LoggerDestination):
    """A Composer logger destination that writes the common step events of each finished batch.

    Events are written at BATCH_CHECKPOINT, the event after BATCH_END, when SpeedMonitor and
    LRMonitor have logged the batch's figures too."""

    def __init__(self, writer: MetricsWriter):
        super().__init__()
        self.writer = writer
        self.steps = StepEvents()

    def log_metrics(self, metrics, step=None):
        if step is not None:
            self.steps.add(step, {k: v.item() if isinstance(v, torch.Tensor) else v
                                  for k, v in metrics.items() if isinstance(v, int | float | torch.Tensor)})

    def _flush(self, up_to=None):
        for event in self.steps.done(up_to):
            self.writer.write("step", **event)

    def batch_checkpoint(self, state, logger):
        self._flush(int(state.timestamp.batch))

    def fit_end(self, state, logger):
        self._flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # The manifest's parameters (testcase.json, staged by the launcher) are the only declarations.
    return manifest_parser(__file__, __doc__.splitlines()[0]).parse_args(argv)


def main() -> int:
    args = parse_args()
    # Before the Trainer joins the process group: staged data that cannot be read stops every rank in
    # one line naming the file.
    staged = open_staged(args, vocab_size=VOCAB, prog="composer")
    torch.manual_seed(args.seed)
    gpu = torch.cuda.is_available()
    # The Trainer initialises the process group itself; before that, the launcher's variables say who we are.
    rank, world = dist.get_global_rank(), dist.get_world_size()
    if args.global_batch_size % world:
        print(f"composer: global_batch_size ({args.global_batch_size}) must divide evenly by the {world} "
              f"ranks", file=sys.stderr, flush=True)
        return 2
    local_batch = args.global_batch_size // world
    cfg = CONFIGS[args.model]
    model = ComposerCausalLM(CausalLM(**cfg, seq_len=args.seq_len))
    dataset = (StagedWindows(staged) if staged is not None
               else CorpusWindows(args.seq_len, args.steps * args.global_batch_size))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=local_batch, drop_last=True,
        sampler=RankSamples(dataset, steps=args.steps, global_batch=args.global_batch_size, rank=rank,
                            world_size=world))
    writer = MetricsWriter(args.output_dir, rank, world)
    writer.write("start", device="cuda" if gpu else "cpu",
                 device_name=torch.cuda.get_device_name() if gpu else "cpu", peak_tflops=None,
                 config=vars(args), params=sum(p.numel() for p in model.parameters()),
                 framework=f"composer {composer.__version__}", torch=torch.__version__,
                 **({"data": staged.describe()} if staged is not None else {}))
    started = time.time()
    trainer = Trainer(
        model=model,
        train_dataloader=DataSpec(loader, get_num_tokens_in_batch=lambda batch: batch[0].numel()),
        max_duration=f"{args.steps}ba",
        optimizers=DecoupledAdamW(model.parameters(), lr=args.lr, weight_decay=0.0),
        device="gpu" if gpu else "cpu",
        precision="amp_bf16" if gpu else "fp32",
        seed=args.seed,
        loggers=[FileLogger(filename=f"{args.output_dir}/composer-rank{{rank}}.log", flush_interval=1,
                            capture_stdout=False, capture_stderr=False, overwrite=True),
                 MetricsEvents(writer)],
        callbacks=[SpeedMonitor(window_size=args.speed_window), LRMonitor()],
        progress_bar=False,
        log_to_console=False,
        save_folder=None,
    )
    trainer.fit()
    writer.write("end", status="ok", steps=int(trainer.state.timestamp.batch),
                 wall_s=round(time.time() - started, 3))
    writer.close()
    trainer.close()
    # Leaving the gloo group to interpreter exit held each rank for seconds after its last step.
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
