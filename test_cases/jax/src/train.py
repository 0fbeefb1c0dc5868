"""Data-parallel training of a small transformer LM in plain JAX, one process per node.

Started by the launcher's command mode (once per node): MASTER_ADDR:MASTER_PORT is the coordinator
of jax.distributed, NNODES the number of processes and NODE_RANK this process's id. Each process
feeds its share of the global batch (jax.make_array_from_process_local_data) to one jit-compiled
step over a global device mesh; XLA inserts the gradient all-reduce (gloo between CPU processes).
Writes the common metrics events. See docs/test_cases/jax.md.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxlm import adam
from jaxlm.data import Corpus, Staged
from jaxlm.model import CONFIGS, init_params, loss_fn, param_count

from dtcase.metrics import MetricsWriter
from dtcase.params import manifest_parser
from dtcase.staged import open_staged


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # The manifest's parameters (testcase.json, staged by the launcher) are the only declarations.
    args = manifest_parser(__file__, __doc__.splitlines()[0]).parse_args(argv)
    if args.model not in CONFIGS:  # the manifest's choices and the model table must agree
        raise SystemExit(f"jax: model {args.model!r} has no configuration "
                         f"(known: {', '.join(sorted(CONFIGS))})")
    return args


def join() -> tuple[int, int]:
    """(process id, process count); joins jax.distributed when the launcher started several nodes."""
    processes, process = int(os.environ.get("NNODES", "1")), int(os.environ.get("NODE_RANK", "0"))
    if processes > 1:
        # Gloo is the default in the pinned JAX; set it so another default cannot change it silently.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}",
                                   num_processes=processes, process_id=process)
    return process, processes


def main() -> int:
    args = parse_args()
    # Staged data that cannot be read stops every process here, in one line naming the file, before
    # jax.distributed is joined.
    staged = open_staged(args, vocab_size=CONFIGS[args.model].vocab_size, prog="jax")
    process, processes = join()
    devices = jax.devices()
    if args.global_batch_size % len(devices):
        print(f"jax: global_batch_size ({args.global_batch_size}) must divide evenly by the {len(devices)} "
              f"devices of the {processes} process(es)", file=sys.stderr, flush=True)
        return 2
    cfg = CONFIGS[args.model]
    mesh = Mesh(np.array(devices), ("data",))
    replicated, by_batch = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    # Built inside jit with replicated outputs: the same weights on every device, no host copy.
    params = jax.jit(functools.partial(init_params, cfg), out_shardings=replicated)(jax.random.key(args.seed))
    opt_state = jax.jit(adam.init, out_shardings=replicated)(params)

    @functools.partial(jax.jit, donate_argnums=(0, 1), out_shardings=(replicated, replicated, replicated))
    def train_step(params, opt_state, inputs, labels):
        loss, grads = jax.value_and_grad(functools.partial(loss_fn, cfg))(params, inputs, labels)
        params, opt_state = adam.update(params, grads, opt_state, lr=args.lr)
        return params, opt_state, loss

    data = Staged(staged) if staged is not None else Corpus(args.seq_len)
    global_shape = (args.global_batch_size, args.seq_len)
    global_tokens = args.global_batch_size * args.seq_len
    metrics = MetricsWriter(args.output_dir, process, processes)
    device = devices[0]
    metrics.write("start", device=device.platform, device_name=device.device_kind, peak_tflops=None,
                  config={**vars(args), "model_config": cfg.as_dict()}, params=param_count(params),
                  parallelism="data", framework=f"jax {jax.__version__}", processes=processes,
                  devices=len(devices), local_devices=jax.local_device_count(),
                  **({"data": staged.describe()} if staged is not None else {}))
    started = time.time()
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        local_in, local_lab = data.process_batch(step, global_batch=args.global_batch_size,
                                                 process=process, processes=processes)
        inputs = jax.make_array_from_process_local_data(by_batch, local_in, global_shape)
        labels = jax.make_array_from_process_local_data(by_batch, local_lab, global_shape)
        params, opt_state, loss = train_step(params, opt_state, inputs, labels)
        loss = float(np.asarray(loss.addressable_data(0)))  # replicated: every process holds it
        dt = time.perf_counter() - t0
        if step % args.log_every == 0 or step == args.steps:
            metrics.write("step", step=step, loss=loss, lr=args.lr, step_time_s=round(dt, 4),
                          tokens_per_s_per_device=global_tokens / dt / len(devices))
    metrics.write("end", status="ok", steps=args.steps, wall_s=round(time.time() - started, 3))
    metrics.close()
    if processes > 1:
        jax.distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
