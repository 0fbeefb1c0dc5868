#!/usr/bin/env python3
"""torchtitan on the same machine, as the anchor for the fsdp preset (docs/performance.md).

Runs torchtitan's own trainer (``python -m torchtitan.train``) with the configuration of the issue's
reference: Llama-3 8B, seq 8192, local batch 1, FSDP2 over all local GPUs, bf16 params with fp32
reduce, selective (per-op) activation checkpointing, compiled model and loss. The machine has no
network, so the tokenizer and the data are made here from the project's corpus (byte-level text):
the model keeps Llama-3's 128,256-entry vocabulary, which is all the throughput depends on.
Prints the mean tokens/s/GPU, TFLOPS, MFU and peak reserved memory over steps 11-40 as JSON.
``--float8 tensorwise`` adds torchtitan's float8 converter (torchao): the block linears in float8 with
dynamic tensorwise scaling, float8 FSDP all-gather with precomputed scales, the output layer in bf16;
``--float8 rowwise`` uses torchao's rowwise recipe instead (no float8 all-gather: torchao refuses it).

  python3 scripts/torchtitan_anchor.py OUT_DIR [--gpus 4] [--steps 40] [--float8 none|tensorwise|rowwise]
                                       [--extra torchtitan args...]
Needs torchtitan 0.2.2 importable (and torchao 0.17 for --float8); on the offline GPU machine carry
their wheels with the others: torchtitan==0.2.2 torchao==0.17.0 torchdata datasets dill multiprocess
tyro docstring-parser typeguard tomli.
Writes OUT_DIR/anchor.json (not summary.json: that name is the launcher's run summary).
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test_cases" / "common"))
# The parser of torchtitan's log lines is the launcher's metrics adapter (one copy).
sys.path.insert(0, str(REPO / "plugins" / "module_utils"))
from metrics_adapters import parse_steps  # noqa: E402

from dtcase.data import corpus_tokens  # noqa: E402

# torchtitan's float8 options are the torchtitan case's (one copy).
sys.path.insert(0, str(REPO / "test_cases" / "torchtitan" / "src"))
from titan_train import float8_args  # noqa: E402


def write_assets(out: Path, n_tokens: int) -> tuple[Path, Path]:
    """A byte-level tokenizer (256 byte tokens + BOS/EOS) and a one-file text dataset."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok_dir, data_dir = out / "tokenizer", out / "data"
    tok_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|begin_of_text|>", "<|end_of_text|>"])
    tok.save(str(tok_dir / "tokenizer.json"))
    (tok_dir / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "add_bos_token": True}))
    text = bytes(corpus_tokens(n_tokens).tolist()).decode("latin-1")
    with (data_dir / "train.jsonl").open("w") as f:
        for i in range(0, len(text), 20000):
            f.write(json.dumps({"text": text[i:i + 20000]}) + "\n")
    return tok_dir, data_dir


def summarize(steps: dict[int, dict[str, float]], last: int, first: int = 11) -> dict:
    """Means over steps first..last, as the launcher's summary does for our runs; peak memory overall."""
    window = [steps[s] for s in range(first, last + 1) if s in steps]
    out = {"steps_logged": len(steps), "window": [first, last]}
    if window:
        mean = {k: sum(w[k] for w in window) / len(window) for k in ("tps", "tflops", "mfu")}
        out.update(tokens_per_s_per_device=round(mean["tps"]), tflops_per_device=round(mean["tflops"], 1),
                   mfu_pct=round(mean["mfu"], 2),
                   peak_reserved_gib=max(w["reserved_gib"] for w in steps.values()),
                   loss_first=steps[min(steps)]["loss"], loss_last=steps[max(steps)]["loss"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--gpus", type=int, default=4)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--flavor", default="8B")
    ap.add_argument("--seq-len", type=int, default=8192)
    ap.add_argument("--float8", default="none", choices=["none", "tensorwise", "rowwise"])
    # Logging syncs the host with the GPUs: compare with our presets at the same log frequency.
    ap.add_argument("--log-freq", type=int, default=1)
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[])
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    tok_dir, data_dir = write_assets(a.out, a.seq_len * a.gpus * (a.steps + 2) * 2)
    args = [
        "--model.name", "llama3", "--model.flavor", a.flavor, "--model.hf_assets_path", str(tok_dir),
        "--training.dataset", "c4_test", "--training.dataset_path", str(data_dir),
        "--training.local_batch_size", "1", "--training.seq_len", str(a.seq_len),
        "--training.steps", str(a.steps), "--training.max_norm", "1.0",
        "--training.mixed_precision_param", "bfloat16", "--training.mixed_precision_reduce", "float32",
        "--parallelism.data_parallel_shard_degree", "-1",
        "--activation_checkpoint.mode", "selective", "--activation_checkpoint.selective_ac_option", "op",
        "--compile.enable", "--optimizer.lr", "3e-4", "--lr_scheduler.warmup_steps", "10",
        "--metrics.log_freq", str(a.log_freq), "--metrics.disable_color_printing",
        "--checkpoint.no-enable", "--job.dump_folder", str(a.out / "dump"), *float8_args(a.float8), *a.extra,
    ]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(a.gpus),
           "-m", "torchtitan.train", *args]
    env = {**os.environ, "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "NCCL_NVLS_ENABLE": "0",
           "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    log = a.out / "torchtitan.log"
    with log.open("w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, check=False).returncode
    steps = parse_steps(log.read_text(errors="replace"))
    summary = {"rc": rc, "float8": a.float8, "log_freq": a.log_freq, **summarize(steps, a.steps),
               "log": str(log)}
    (a.out / "anchor.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))
    if rc != 0 or "tokens_per_s_per_device" not in summary:
        sys.exit(f"torchtitan failed (rc={rc}, {summary['steps_logged']} steps logged): see {log}")


if __name__ == "__main__":
    main()
