"""The jax case: two JAX processes on 127.0.0.1 with the environment the launcher's command mode
gives each node (MASTER_ADDR/MASTER_PORT, NNODES, NODE_RANK; set here by hand) train one model
data-parallel over gloo, and both write the common metrics events.

JAX runs from the case's own virtualenv (.state/testcase_envs/jax, what roles/testcase_env builds
and tests/integration/test_testcase_env.py keeps; built here with the manifest's pins when
missing), never from the collection's venv. The GPU path (NCCL between GPUs) cannot run here. The
case writes the common events itself, so there are no JAX log lines to adapt. Its command line comes
from the manifest's parameters (dtcase.params), staged as testcase.json beside a copy of the code
as the launcher stages it: the case's venv has no YAML parser.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from staged_fixtures import shards

from helpers import free_port, run_local_processes

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "test_cases" / "jax" / "src"
ENV = REPO / ".state" / "testcase_envs" / "jax"
sys.path.insert(0, str(SRC))

from jaxlm.data import Corpus, Staged  # noqa: E402  (NumPy only: importable without JAX)

from dtcase.staged import StagedTokens  # noqa: E402

ARGS = ["--model", "tiny", "--seq-len", "64", "--global-batch-size", "16", "--steps", "10", "--lr", "0.003"]


def test_processes_together_read_the_global_batch_and_labels_are_the_next_tokens():
    corpus = Corpus(seq_len=32)
    whole_in, whole_lab = corpus.process_batch(3, global_batch=8, process=0, processes=1)
    parts = [corpus.process_batch(3, global_batch=8, process=p, processes=2) for p in range(2)]
    assert np.array_equal(np.concatenate([p[0] for p in parts]), whole_in)
    assert np.array_equal(np.concatenate([p[1] for p in parts]), whole_lab)
    assert np.array_equal(whole_in[:, 1:], whole_lab[:, :-1])
    assert whole_in.shape == (8, 32) and whole_in.max() < 256
    # Deterministic: a sample depends on its index only.
    assert np.array_equal(Corpus(seq_len=32).sample(17), corpus.sample(17))


def test_staged_data_is_split_over_processes_by_the_rule_of_every_case(tmp_path):
    data = StagedTokens(shards(tmp_path / "shards"), seq_len=32, vocab_size=256)
    staged = Staged(data)
    seen = []
    for step in (1, 2, 3):
        whole_in, whole_lab = staged.process_batch(step, global_batch=8, process=0, processes=1)
        parts = [staged.process_batch(step, global_batch=8, process=p, processes=2) for p in range(2)]
        assert np.array_equal(np.concatenate([p[0] for p in parts]), whole_in)
        assert np.array_equal(whole_in[:, 1:], whole_lab[:, :-1]) and whole_in.dtype == np.int32
        # Process 1 reads the second half of the step's 8 samples, as dtcase.data's ranks do.
        assert np.array_equal(parts[1][0][0], data.window((step - 1) * 8 + 4)[:-1])
        seen += [tuple(row) for part in parts for row in part[0]]
    assert len(seen) == len(set(seen)) == 24  # no sample read twice


@pytest.fixture(scope="module")
def jax_python() -> Path:
    python = ENV / "bin" / "python"
    pins = yaml.safe_load((REPO / "test_cases/jax/testcase.yml").read_text())["environment"]["requirements"]
    probe = [str(python), "-c",
             "import jax, jaxlib; print(f'jax=={jax.__version__} jaxlib=={jaxlib.__version__}')"]
    found = python.exists() and subprocess.run(probe, capture_output=True, text=True,
                                               check=False).stdout.split()
    if found != pins:
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(ENV)], check=True)
        subprocess.run([str(ENV / "bin" / "pip"), "install", "--disable-pip-version-check", *pins],
                       check=True, capture_output=True)
    assert subprocess.run(probe, capture_output=True, text=True, check=True).stdout.split() == pins
    return python


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    """The case's code and its testcase.json, laid out as the launcher stages them (code/jax/...)."""
    from dtcase.params import stage

    case = tmp_path_factory.mktemp("code") / "jax"
    shutil.copytree(SRC, case / "src", ignore=shutil.ignore_patterns("__pycache__"))
    stage(REPO / "test_cases/jax/testcase.yml", case)
    return case / "src"


def _run(python: Path, src: Path, out: Path, nodes: int, *extra: str, env: dict | None = None):
    port = str(free_port())
    cmd = [str(python), str(src / "train.py"), *ARGS, *extra, "--output-dir", str(out)]
    # The launch contract of command mode: one process per node.
    return run_local_processes(cmd, [
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "NNODES": str(nodes), "NODE_RANK": str(node),
         "NPROC_PER_NODE": "1", "WORLD_SIZE": str(nodes), "OMP_NUM_THREADS": "1",
         "PYTHONPATH": f"{REPO / 'test_cases' / 'common'}:{src}", **(env or {})} for node in range(nodes)])


@pytest.mark.slow
def test_two_processes_train_one_model_and_both_report(jax_python, staged, tmp_path):
    codes, logs = _run(jax_python, staged, tmp_path / "out", 2)
    assert codes == [0, 0], "\n".join(logs)[-4000:]
    files = [tmp_path / "out" / f"metrics-rank{r}.jsonl" for r in range(2)]
    ranks = [[json.loads(line) for line in f.read_text().splitlines()] for f in files]
    for rank, records in enumerate(ranks):
        assert [r["event"] for r in records] == ["start"] + ["step"] * 10 + ["end"]
        assert all(r["rank"] == rank and r["world_size"] == 2 for r in records)
        start = records[0]
        # Values the command line left out are the manifest's defaults (no second set in train.py).
        assert start["config"]["seed"] == 0 and start["config"]["log_every"] == 1
        assert start["processes"] == 2 and start["devices"] == 2 and start["framework"] == "jax 0.10.2"
        assert records[-1]["status"] == "ok"
        assert all(r["tokens_per_s_per_device"] > 0 for r in records if r["event"] == "step")
    losses = [[r["loss"] for r in recs if r["event"] == "step"] for recs in ranks]
    # One replicated loss of the global batch: the same on both processes (gradients all-reduced).
    assert losses[0] == losses[1]
    assert losses[0][-1] < losses[0][0] - 1.0, losses[0]


@pytest.mark.slow
def test_case_code_runs_without_torch(jax_python):
    code = ("import sys; import dtcase.metrics, dtcase.params, dtcase.staged, jaxlm.data, jaxlm.model, "
            "jaxlm.adam; "
            "print('torch' in sys.modules); import importlib.util as u; print(u.find_spec('torch') is None)\n"
            "try:\n    dtcase.params.load_parameters(sys.argv[1])\nexcept SystemExit as e:\n    print(e)")
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'test_cases' / 'common'}:{SRC}")
    out = subprocess.run([str(jax_python), "-c", code, str(SRC / "train.py")], text=True, capture_output=True,
                         check=True, env=env).stdout.splitlines()
    assert out[:2] == ["False", "True"]  # nothing imported torch, and the case's venv has none
    # Run by hand without a staged testcase.json: one line that says how to stage it.
    assert out[2].startswith(f"{REPO / 'test_cases/jax/testcase.yml'}: no YAML parser in ")
    assert out[2].endswith(f"python -m dtcase.params {REPO / 'test_cases/jax/testcase.yml'} {SRC}")


@pytest.mark.slow
def test_a_batch_the_devices_cannot_split_fails_in_one_line(jax_python, staged, tmp_path):
    codes, logs = _run(jax_python, staged, tmp_path / "out", 1, "--global-batch-size", "3",
                       env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert codes == [2]
    assert logs[0].strip() == ("jax: global_batch_size (3) must divide evenly by the 2 devices of the "
                               "1 process(es)")


@pytest.mark.slow
def test_a_cut_shard_stops_both_processes_in_one_line_before_they_join(jax_python, staged, tmp_path):
    data = shards(tmp_path / "shards")
    cut = data / json.loads((data / "index.json").read_text())["shards"][0]["file"]
    cut.write_bytes(cut.read_bytes()[:1000])
    codes, logs = _run(jax_python, staged, tmp_path / "out", 2, "--dataset", "staged",
                       "--data-path", str(data))
    assert codes == [2, 2] and not (tmp_path / "out").exists()
    line = f"jax: {cut}: 1000 bytes, the index says 4000 uint16 tokens (8000 bytes): truncated"
    assert [log.strip() for log in logs] == [line, line]
