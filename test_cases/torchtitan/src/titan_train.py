"""One rank of torchtitan's own trainer (``torchtitan.train``) under the launcher.

torchrun (launch.command of ../testcase.yml) starts this file once per device. It runs torchtitan's
entry point unchanged (runpy, as ``python -m torchtitan.train``) after three things torchtitan's
options cannot say:
- the launcher's ``--output-dir`` becomes ``--job.dump_folder`` (torchtitan's parser refuses unknown
  options);
- ``--config NAME`` picks one of the TOML job files in ../config;
- the nodes have no network: a byte-level tokenizer (256 byte tokens + BOS/EOS) and a text dataset
  are written from the project's corpus into the output directory (the model keeps its own
  vocabulary size, which is all the throughput depends on), as scripts/torchtitan_anchor.py does;
- ``--dataset staged --data-path DIR`` trains on the user's staged jsonl text (``{"text": ...}`` per
  line) with the ``tokenizer.json`` staged beside it (docs/stage_data.md) instead: torchtitan's own
  options take them (``--model.hf_assets_path``: a directory with tokenizer.json;
  ``--training.dataset_path`` for its ``c4_test`` loader, which reads a local directory of jsonl
  files). Both point at links into DIR (torchtitan would read tokenizer.json as one more data
  file). The data is checked first (one line naming the file, before torchtitan starts).
``--float8`` and ``--compile`` become torchtitan's converter and compile options. Every other
argument (``--training.steps 20``, from the manifest's parameters with a ``flag``) goes to torchtitan
as it is. torchtitan writes no metrics file: the launcher's report reads its log lines through the
torchtitan metrics adapter (plugins/module_utils/metrics_adapters.py).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import sys
from pathlib import Path

CONFIGS = Path(__file__).resolve().parent.parent / "config"
CORPUS_BYTES = 4 << 20  # torchtitan loops over its training data: a few MB feed any number of steps


def float8_args(recipe: str) -> list[str]:
    """torchtitan's float8 converter (torchao): block linears in float8, the output layer in bf16."""
    if recipe == "none":
        return []
    base = ["--model.converters", "quantize.linear.float8", "--quantize.linear.float8.filter_fqns", "output"]
    if recipe == "tensorwise":
        return [*base, "--quantize.linear.float8.enable_fsdp_float8_all_gather",
                "--quantize.linear.float8.precompute_float8_dynamic_scale_for_fsdp"]
    if recipe == "rowwise":
        # torchao allows the float8 all-gather for tensorwise scaling only.
        return [*base, "--quantize.linear.float8.recipe_name", "rowwise"]
    raise ValueError(f"unknown float8 recipe {recipe!r}: expected none, tensorwise or rowwise")


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our options, and torchtitan's (everything else, in order)."""
    ap = argparse.ArgumentParser(prog="titan_train.py", allow_abbrev=False, add_help=False)
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--config", default="debug_model")
    ap.add_argument("--float8", default="none", choices=["none", "tensorwise", "rowwise"])
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--dataset", default="corpus", choices=["corpus", "staged"])
    ap.add_argument("--data-path", default="")
    ours, rest = ap.parse_known_args(argv)
    if not (CONFIGS / f"{ours.config}.toml").is_file():
        known = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.toml")))
        ap.error(f"unknown torchtitan config {ours.config!r} (known: {known})")
    return ours, rest


def check_staged(path: str) -> list[Path]:
    """The jsonl files of a staged directory torchtitan can read, each line checked; one line naming
    the file (dtcase.staged.StagedDataError) when it cannot."""
    from dtcase.staged import INDEX, TOKENIZER, StagedDataError, jsonl_texts, layout

    root = Path(path)
    if layout(path) == "shards":
        raise StagedDataError(f"{root / INDEX}: pre-tokenized shards; torchtitan tokenizes text itself: "
                              f"stage *.jsonl with its {TOKENIZER} for this case")
    if not (root / TOKENIZER).is_file():
        raise StagedDataError(f"{root / TOKENIZER}: missing (jsonl text needs the tokenizer staged "
                              f"beside it)")
    files = sorted(root.glob("*.jsonl"))
    for file in files:  # every line is {"text": ...}: a file cut mid-line is refused here
        for _unused in jsonl_texts(file):
            continue
    return files


def link_staged(out: Path, path: str) -> Path:
    """<out>/staged-assets/{tokenizer,data}: links to the staged tokenizer (and tokenizer_config.json
    when staged) and to the jsonl files, made once per node like write_assets."""
    files = check_staged(path)
    final = out / "staged-assets"
    if final.is_dir():
        return final
    root = Path(path).resolve()
    tmp = out / f".staged-assets-{os.getpid()}"
    (tmp / "tokenizer").mkdir(parents=True, exist_ok=True)
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (root / name).is_file():
            (tmp / "tokenizer" / name).symlink_to(root / name)
    for file in files:
        (tmp / "data" / file.name).symlink_to(root / file.name)
    try:
        tmp.rename(final)
    except OSError:  # another rank of this node was first
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def titan_argv(ours: argparse.Namespace, rest: list[str], assets: Path) -> list[str]:
    """torchtitan's command line: the job file, then our paths and switches, then the run's options
    (last, so they win over the file)."""
    argv = ["--job.config_file", str(CONFIGS / f"{ours.config}.toml"),
            "--job.dump_folder", str(Path(ours.output_dir) / "torchtitan"),
            "--model.hf_assets_path", str(assets / "tokenizer"),
            "--training.dataset_path", str(assets / "data")]
    if ours.compile:
        argv.append("--compile.enable")
    return [*argv, *float8_args(ours.float8), *rest]


def write_assets(out: Path, n_bytes: int = CORPUS_BYTES) -> Path:
    """<out>/assets/{tokenizer,data}, written once per node: every rank builds its own copy in a
    private directory and renames it into place; the first rename wins, the others are dropped."""
    final = out / "assets"
    if final.is_dir():
        return final
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from dtcase.data import corpus_tokens

    tmp = out / f".assets-{os.getpid()}"
    (tmp / "tokenizer").mkdir(parents=True, exist_ok=True)
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|begin_of_text|>", "<|end_of_text|>"])
    tok.save(str(tmp / "tokenizer" / "tokenizer.json"))
    (tmp / "tokenizer" / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "add_bos_token": True}))
    text = bytes(corpus_tokens(n_bytes).tolist()).decode("latin-1")
    with (tmp / "data" / "train.jsonl").open("w") as fh:
        for i in range(0, len(text), 20000):
            fh.write(json.dumps({"text": text[i:i + 20000]}) + "\n")
    try:
        tmp.rename(final)
    except OSError:  # another rank of this node was first
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def main(argv: list[str] | None = None) -> None:
    ours, rest = parse(sys.argv[1:] if argv is None else argv)
    out = Path(ours.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if ours.dataset == "staged":
        from dtcase.staged import StagedDataError

        try:
            assets = link_staged(out, ours.data_path)
        except StagedDataError as exc:
            print(f"torchtitan: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
    else:
        assets = write_assets(out)
    sys.argv = ["torchtitan.train", *titan_argv(ours, rest, assets)]
    if os.environ.get("RANK", "0") == "0":
        print("torchtitan " + " ".join(sys.argv[1:]), flush=True)
    runpy.run_module("torchtitan.train", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
