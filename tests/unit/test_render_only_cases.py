"""The render-only cases of the catalogue: NeMo 2.0, NeMo 1.0, BioNeMo ESM-2, neuronx-distributed.

None of them can run here (NVIDIA's containers from nvcr.io and GPUs, or Trainium); what is tested
is the project's side: a real launch is refused in one line saying why, the image is the pin of
stack/versions.yml, every preset renders the framework's own command line exactly, and that line
passes the CLI check the plan applies (`check_cli`). The CLI each manifest declares was read from
the framework's source at the pinned release; tests/fixtures/render_only holds every key/option of
the configs and parsers that can be listed statically (NeMo 1.0's megatron_gpt_config, NxDT's
hf_llama3_8B_config, BioNeMo's train_esm2 parser), and the declared lists must be part of them.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.awsome.distributed_training.plugins.module_utils.job_launch import shell_words
from ansible_collections.awsome.distributed_training.plugins.module_utils.testcase import (
    ManifestError,
    check_cli,
    load_manifest,
    resolve,
)

REPO = Path(__file__).resolve().parents[2]
CASES = str(REPO / "test_cases")
FIXTURES = REPO / "tests" / "fixtures" / "render_only"
RENDER_ONLY = ["nemo2", "nemo1", "bionemo_esm2", "neuronx_distributed"]
HOSTS = [f"node{i}" for i in range(1, 5)]
TORCHRUN = ('python3 -m torch.distributed.run --nnodes "${NNODES}" --nproc-per-node "${NPROC_PER_NODE}" '
            '--node-rank "${NODE_RANK}" --master-addr "${MASTER_ADDR}" --master-port "${MASTER_PORT}" ')


def plan_of(case: str, preset: str, **kw) -> dict:
    return resolve(load_manifest(CASES, case), preset=preset, hosts=HOSTS, target="cluster",
                   render_only=True, **kw)


def framework_line(plan: dict) -> str:
    """What each node runs, with `python` as the image's python3 (the launcher's rank_argv)."""
    return shell_words(["python3", *plan["command"][1:], *plan["args"]])


@pytest.mark.parametrize("case", RENDER_ONLY)
def test_a_real_launch_is_refused_in_one_line_and_a_render_is_planned(case):
    manifest = load_manifest(CASES, case)
    for preset in manifest["presets"]:
        with pytest.raises(ManifestError) as err:
            resolve(manifest, preset=preset, hosts=HOSTS, target="cluster")
        message = str(err.value)
        assert message.startswith(f"{case} is render-only here: ") and "\n" not in message
        assert message.endswith("(-e render_only=true writes every node's launch under "
                                "results/<run-id>/rendered/)")
        plan = plan_of(case, preset)
        assert plan["render_only"] and plan["launch_mode"] == "command" and plan["output_dir_arg"] is False
    # `-e render_only=true` reaches the module as a string.
    assert resolve(manifest, preset=next(iter(manifest["presets"])), hosts=HOSTS, target="cluster",
                   render_only="true")["render_only"]


def test_images_are_the_pins_of_the_versions_manifest():
    pins = yaml.safe_load((REPO / "stack" / "versions.yml").read_text())["stack_images"]
    want = {"nemo2": "nvcr.io#nvidia/nemo:25.04", "nemo1": "nvcr.io#nvidia/nemo:24.03.framework",
            "bionemo_esm2": "nvcr.io#nvidia/clara/bionemo-framework:2.7",
            "neuronx_distributed": "public.ecr.aws#neuron/pytorch-training-neuronx:"
                                   "2.7.0-neuronx-py310-sdk2.25.0-ubuntu22.04"}
    for case in RENDER_ONLY:
        plan = plan_of(case, next(iter(load_manifest(CASES, case)["presets"])))
        assert plan["container"]["image"] == pins[case]["image"] == want[case]
    # The Neuron image is the SDK the node stack pins.
    sdk = yaml.safe_load((REPO / "stack" / "versions.yml").read_text())["stack_versions"]["neuron_sdk"]
    assert f"-sdk{sdk}-" in want["neuronx_distributed"]


@pytest.mark.parametrize(("case", "preset", "nodes", "procs", "line"), [
    ("nemo2", "p5-2node", 2, 8, TORCHRUN + '--no-python nemo llm pretrain --factory llama3_8b --yes --direct '
     'trainer.num_nodes="${NNODES}" trainer.devices="${NPROC_PER_NODE}" log.log_dir="${AWSOME_OUTPUT_DIR}" '
     "trainer.strategy.context_parallel_size=2 data.global_batch_size=256 data.micro_batch_size=1 "
     "trainer.strategy.pipeline_model_parallel_size=1 data.seq_length=8192 trainer.max_steps=50 "
     "trainer.strategy.tensor_model_parallel_size=1"),
    ("nemo1", "p5-2node", 2, 8, TORCHRUN
     + "/opt/NeMo/examples/nlp/language_modeling/megatron_gpt_pretraining.py "
     "--config-path=/opt/NeMo/examples/nlp/language_modeling/conf --config-name=megatron_gpt_config "
     'trainer.num_nodes="${NNODES}" trainer.devices="${NPROC_PER_NODE}" '
     'exp_manager.exp_dir="${AWSOME_OUTPUT_DIR}" '
     "model.data.data_impl=mock 'model.data.data_prefix=[]' model.global_batch_size=512 "
     "model.hidden_size=4096 model.tokenizer.merge_file=/fsx/tokenizers/gpt2/merges.txt "
     "model.micro_batch_size=2 "
     "model.num_attention_heads=32 model.num_layers=24 model.pipeline_model_parallel_size=1 "
     "trainer.precision=bf16 "
     "model.encoder_seq_length=2048 trainer.max_steps=50 model.tensor_model_parallel_size=2 "
     "model.tokenizer.vocab_file=/fsx/tokenizers/gpt2/vocab.json"),
    ("bionemo_esm2", "gpu-8", 1, 8, TORCHRUN + '--no-python train_esm2 --num-nodes "${NNODES}" '
     '--num-gpus "${NPROC_PER_NODE}" --result-dir "${AWSOME_OUTPUT_DIR}" --experiment-name awsome '
     "--create-tflops-callback --lr 0.0004 --max-seq-length 1024 --micro-batch-size 16 "
     "--precision bf16-mixed "
     "--num-steps 100 --tensor-model-parallel-size 1 --train-cluster-path /fsx/esm2/train_clusters.parquet "
     "--train-database-path /fsx/esm2/train.db --val-check-interval 1000 "
     "--valid-cluster-path /fsx/esm2/valid_clusters.parquet --valid-database-path /fsx/esm2/validation.db"),
    ("neuronx_distributed", "trn1-4node", 4, 32, TORCHRUN
     + "/nxdt/training_orchestrator.py --config-path=/nxdt/conf "
     '--config-name=hf_llama3_8B_config trainer.devices="${NPROC_PER_NODE}" trainer.num_nodes="${NNODES}" '
     'exp_manager.explicit_log_dir="${AWSOME_OUTPUT_DIR}" data.global_batch_size=1024 '
     "data.micro_batch_size=1 model.model_config=/fsx/models/llama3-8b/config.json "
     "distributed_strategy.pipeline_model_parallel_size=1 "
     "model.encoder_seq_length=8192 trainer.max_steps=50 distributed_strategy.tensor_model_parallel_size=32 "
     "data.train_dir=/fsx/data/wikicorpus_llama3_tokenized_8k"),
])
def test_each_case_renders_the_frameworks_own_command_line(case, preset, nodes, procs, line):
    plan = plan_of(case, preset)
    assert (len(plan["nodes"]), plan["procs_per_node"]) == (nodes, procs)
    assert framework_line(plan) == line


@pytest.mark.parametrize("case", RENDER_ONLY)
def test_every_preset_passes_the_cli_check_and_a_foreign_word_does_not(case):
    manifest = load_manifest(CASES, case)
    for preset in manifest["presets"]:
        plan = plan_of(case, preset)
        check_cli(manifest, [*plan["command"], *plan["args"]])
    bad = copy.deepcopy(manifest)
    name, spec = next(iter(bad["parameters"].items()))
    spec["flag"] = "--no-such-option" if not spec["flag"].endswith("=") else "no.such.key="
    refused = rf"^{case}: .* does not accept '(--no-such-option|no\.such\.key=)"
    with pytest.raises(ManifestError, match=refused):
        resolve(bad, preset=next(iter(bad["presets"])), hosts=HOSTS, target="cluster", render_only=True)


def _listed(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize(("case", "fixture"), [("nemo1", "nemo1_megatron_gpt_config.keys"),
                                               ("neuronx_distributed", "neuronx_hf_llama3_8B_config.keys")])
def test_declared_hydra_keys_are_keys_of_the_frameworks_config(case, fixture):
    declared = load_manifest(CASES, case)["render_only"]["cli"]["keys"]
    assert set(declared) <= set(_listed(FIXTURES / fixture)), set(declared) - set(_listed(FIXTURES / fixture))


def test_declared_train_esm2_options_are_its_parsers_with_the_same_arity():
    real = dict(reversed(line.split()) for line in _listed(FIXTURES / "bionemo_train_esm2.options"))
    cli = load_manifest(CASES, "bionemo_esm2")["render_only"]["cli"]
    assert {o: real.get(o) for o in cli["options"]} == dict.fromkeys(cli["options"], "option")
    assert {f: real.get(f) for f in cli["flags"]} == dict.fromkeys(cli["flags"], "flag")


def test_cli_check_rules():
    manifest = {"name": "x", "render_only": {"why": "w", "cli": {
        "program": ["tool", "run"], "flags": ["--yes"], "options": ["--factory"], "keys": ["a.b"]}}}
    check_cli(manifest, ["torchrun", "--nnodes", "2", "tool", "run", "--factory", "f(n=2)", "--yes", "a.b=1",
                         "--factory=g"])
    for argv, word in ((["tool", "run", "a.c=1"], "'a.c=1'"), (["tool", "run", "--yes=1"], "'--yes=1'"),
                       (["tool", "run", "stray"], "'stray'")):
        with pytest.raises(ManifestError, match=f"^x: tool run does not accept {word}"):
            check_cli(manifest, argv)
    with pytest.raises(ManifestError, match="^x: option '--factory' needs a value$"):
        check_cli(manifest, ["tool", "run", "--factory"])
    with pytest.raises(ManifestError, match="^x: the command does not run tool run$"):
        check_cli(manifest, ["tool", "--factory", "f"])


def test_an_image_pin_missing_from_the_versions_manifest_is_refused(tmp_path):
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "versions.yml").write_text("stack_images: {other: {image: 'r#i:1'}}\n")
    case = tmp_path / "test_cases" / "demo"
    case.mkdir(parents=True)
    manifest = yaml.safe_load((REPO / "test_cases" / "nemo2" / "testcase.yml").read_text())
    manifest["name"] = "demo"
    (case / "testcase.yml").write_text(yaml.safe_dump(manifest))
    refused = r"container.image_pin 'nemo2' is not in stack_images of .* \(known: other\)$"
    with pytest.raises(ManifestError, match=refused):
        load_manifest(str(tmp_path / "test_cases"), "demo")
