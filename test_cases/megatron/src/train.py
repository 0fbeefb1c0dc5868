"""A GPT trained with megatron-core's public API (run by torchrun, one process per GPU).

megatron-core's own pieces: parallel_state (tensor x data parallel groups), TransformerConfig,
GPTModel with the local (no Transformer Engine) layer spec, its tensor-parallel RNG. Ours: the data
(the project's byte-level corpus, or the data the user staged through dtcase.staged: same batch on
the ranks of one tensor-parallel group, a different one per data-parallel rank), plain torch AdamW
(gradients of a data-parallel group averaged by one all-reduce per step; tensor-parallel layers
reduce their own) and the metrics events (dtcase.metrics). megatron-core needs CUDA
(docs/test_cases/megatron.md): `check`, `plan`, `staged_batch` and the staged-data check are what
runs without it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import time

from dtcase.params import manifest_parser
from dtcase.staged import open_staged

PEAK_BF16 = 989e12  # H100 / H200 dense bf16 FLOP/s: MFU is against this
VOCAB = 256  # byte tokens of the corpus; divisible by every tensor-parallel size it allows
MODELS = {  # layers, hidden, heads, ffn
    "tiny": (2, 128, 4, 512),
    "small": (12, 768, 12, 3072),
    "gpt-1b": (24, 2048, 16, 8192),
}


def check(args: argparse.Namespace, world_size: int) -> str | None:
    """Why these arguments cannot run on `world_size` ranks (one line), or None."""
    heads = MODELS[args.model][2]
    if world_size % args.tp:
        return f"tensor parallel size {args.tp} does not divide the {world_size} ranks"
    if heads % args.tp or VOCAB % args.tp:
        return f"tensor parallel size {args.tp} does not divide the {heads} attention heads of {args.model}"
    if args.global_batch_size % (world_size // args.tp):
        return (f"global batch {args.global_batch_size} is not a multiple of the data-parallel size "
                f"{world_size // args.tp}")
    return None


def plan(args: argparse.Namespace, world_size: int, rank: int) -> dict:
    """Where a rank stands: its data-parallel rank (megatron-core's order: tensor-parallel ranks are
    neighbours), its batch and the tokens it reads per step, and the model's FLOPs per token."""
    layers, hidden, _heads, ffn = MODELS[args.model]
    dp = world_size // args.tp
    micro = args.global_batch_size // dp
    params = layers * (4 * hidden * hidden + 2 * hidden * ffn) + VOCAB * hidden
    # 6 N per token for the weights plus the attention scores (12 L h s), as dtcase.flops counts.
    flops_per_token = 6 * params + 12 * layers * hidden * args.seq_len
    return {"dp_size": dp, "dp_rank": rank // args.tp, "micro_batch": micro,
            # The ranks of a tensor-parallel group share one batch.
            "tokens_per_step_per_device": micro * args.seq_len / args.tp,
            "flops_per_token": flops_per_token}


def batch(tokens, step: int, dp_rank: int, micro: int, seq_len: int, device):
    """(inputs, labels) of one step for one data-parallel rank, read from the corpus in order."""
    import torch

    span = seq_len + 1
    n = (len(tokens) - 1) // span
    rows = [((step * micro * 1_000_003) + (dp_rank * micro + i)) % n for i in range(micro)]
    x = torch.stack([tokens[r * span:(r + 1) * span] for r in rows]).to(device)
    return x[:, :-1].contiguous(), x[:, 1:].contiguous()


def staged_batch(staged, step: int, dp_rank: int, micro: int, dp_size: int, device):
    """(inputs, labels) of one step for one data-parallel rank, read from staged data by the rule of
    every case (dtcase.staged.position_ids): step s reads global samples [(s-1)*G, s*G), G = micro x dp."""
    import torch

    rows = torch.from_numpy(staged.rows_at((step - 1) * micro * dp_size, dp_rank, micro)).to(device)
    return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


def clip_grad_norm(params: list, max_norm: float, tp_group) -> float:
    """Clip by the norm of the whole model's gradient: the shards of tensor-parallel weights are summed
    over the tensor-parallel group, replicated weights (norms, biases of row-parallel layers) counted
    once, so every rank of a group scales by the same factor (torch's clip_grad_norm_ would not).
    ``max_norm`` 0 measures the norm and leaves the gradients alone (no clipping), as in fsdp."""
    import torch
    import torch.distributed as dist

    grads = [(p.grad, getattr(p, "tensor_model_parallel", False)) for p in params if p.grad is not None]
    device = grads[0][0].device
    sharded = torch.zeros((), device=device)
    replicated = torch.zeros((), device=device)
    for g, is_sharded in grads:
        if is_sharded:
            sharded += g.float().pow(2).sum()
        else:
            replicated += g.float().pow(2).sum()
    dist.all_reduce(sharded, group=tp_group)
    total = (sharded + replicated).sqrt()
    if max_norm > 0:
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g, _sharded in grads:
            g.mul_(scale)
    return total.item()


def main() -> int:
    args = manifest_parser(__file__, "GPT with megatron-core (tensor x data parallel)").parse_args()
    # Staged data that cannot be read stops every rank here, in one line naming the file.
    staged = open_staged(args, vocab_size=VOCAB, prog="megatron")
    import torch
    import torch.distributed as dist
    from megatron.core import parallel_state
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.models.gpt.gpt_model import GPTModel
    from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed
    from megatron.core.transformer.transformer_config import TransformerConfig

    from dtcase.data import corpus_tokens
    from dtcase.metrics import MetricsWriter

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    problem = check(args, world)
    if problem:
        raise SystemExit(f"megatron: {problem}")
    local = int(os.environ.get("LOCAL_RANK", 0))
    torch.cuda.set_device(local)
    device = torch.device("cuda", local)
    dist.init_process_group("nccl", device_id=device)
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=args.tp)
    model_parallel_cuda_manual_seed(args.seed)
    torch.manual_seed(args.seed)
    where = plan(args, world, rank)
    layers, hidden, heads, ffn = MODELS[args.model]
    # fp32 parameters and optimizer state; bf16 compute through autocast.
    config = TransformerConfig(num_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                               ffn_hidden_size=ffn, tensor_model_parallel_size=args.tp,
                               params_dtype=torch.float32, pipeline_dtype=torch.float32,
                               use_cpu_initialization=True)
    model = GPTModel(config=config, transformer_layer_spec=get_gpt_layer_local_spec(), vocab_size=VOCAB,
                     max_sequence_length=args.seq_len, position_embedding_type="rope").to(device)
    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    dp_group = parallel_state.get_data_parallel_group()
    tp_group = parallel_state.get_tensor_model_parallel_group()
    params = list(model.parameters())
    tokens = corpus_tokens((args.seq_len + 1) * args.global_batch_size * 64) if staged is None else None
    position_ids = torch.arange(args.seq_len, device=device).unsqueeze(0).expand(where["micro_batch"], -1)
    causal = torch.triu(torch.ones(args.seq_len, args.seq_len, dtype=torch.bool, device=device), 1).view(
        1, 1, args.seq_len, args.seq_len)  # True = masked, as megatron-core's attention takes it
    with MetricsWriter(args.output_dir, rank, world) as metrics:
        metrics.write("start", tp=args.tp, dp=where["dp_size"], model=args.model,
                      megatron_core=importlib.metadata.version("megatron-core"),
                      **({"data": staged.describe()} if staged is not None else {}))
        last = time.perf_counter()
        for step in range(1, args.steps + 1):
            lr = args.lr * min(1.0, step / max(1, args.warmup_steps))
            for group in optim.param_groups:
                group["lr"] = lr
            if staged is not None:
                inputs, labels = staged_batch(staged, step, where["dp_rank"], where["micro_batch"],
                                              where["dp_size"], device)
            else:
                inputs, labels = batch(tokens, step, where["dp_rank"], where["micro_batch"], args.seq_len,
                                       device)
            # GPTModel returns the per-token loss when given labels ([batch, seq]).
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.bf16):
                loss = model(inputs, position_ids, causal, labels=labels).float().mean()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            if where["dp_size"] > 1:
                for p in params:
                    if p.grad is not None:
                        dist.all_reduce(p.grad, op=dist.ReduceOp.AVG, group=dp_group)
            grad_norm = clip_grad_norm(params, args.grad_clip, tp_group)
            optim.step()
            # The loss of the whole step: every data-parallel rank's batch.
            reported = loss.detach().clone()
            if where["dp_size"] > 1:
                dist.all_reduce(reported, op=dist.ReduceOp.AVG, group=dp_group)
            value = reported.item()
            now = time.perf_counter()
            dt, last = now - last, now
            tps = where["tokens_per_step_per_device"] / dt
            tflops = tps * where["flops_per_token"] / 1e12
            metrics.write("step", step=step, loss=value if math.isfinite(value) else str(value), lr=lr,
                          grad_norm=round(grad_norm, 6),
                          step_time_s=round(dt, 6), tokens_per_s_per_device=round(tps, 3),
                          tflops_per_device=round(tflops, 3), mfu=round(tflops * 1e12 / PEAK_BF16, 6),
                          peak_mem_gib=round(torch.cuda.max_memory_allocated() / 2**30, 3))
        metrics.write("end", steps=args.steps)
    parallel_state.destroy_model_parallel()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
