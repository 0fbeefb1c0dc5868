"""Framework cases of the catalogue through the one launcher on the 2-node simulated cluster.

jax: command mode (one process per node, jax.distributed over gloo), from its own virtualenv on the
nodes (built by playbooks/testcase_env.yml; the collection's venv has no JAX). picotron: our 4D
parallel case, dp2 x pp2 x tp2 over 8 ranks on two nodes. composer: Composer's own launcher per node
from its own venv (torch 2.7.0). nemo2: a render-only case, refused and rendered (Slurm + Pyxis).
jax, picotron and composer train on staged data (`dataset: staged`): the public-domain texts of
tests/fixtures/staged_data as byte shards (python -m dtcase.prepare), in a directory every simulated
node reads through the shared disk, as a staged FSx directory is read on a cluster.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from staged_fixtures import shards
from test_launcher import records, results_of, summary_of

from helpers import REPO, run_playbook

pytestmark = pytest.mark.slow
# Shared with tests/integration/test_testcase_env.py: the nodes share this file system, so the
# virtualenv it builds is the one every simulated node runs.
ENVS = REPO / ".state" / "testcase_envs"


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> dict:
    """The run request's staged-data parameters, and what every rank's start event must record."""
    path = shards(tmp_path_factory.mktemp("staged") / "shards")
    tokens = json.loads((path / "index.json").read_text())["shards"]
    return {"params": {"dataset": "staged", "data_path": str(path)},
            "data": lambda seq: {"layout": "shards", "shards": len(tokens), "vocab_size": 256,
                                 "tokens": sum(t["tokens"] for t in tokens),
                                 "samples": sum((t["tokens"] - 1) // seq for t in tokens)}}


def assert_read_staged(results, expected: dict) -> None:
    starts = [e for e in records(results) if e["event"] == "start"]
    assert starts and all(e["data"] == expected for e in starts), starts


def test_jax_trains_in_its_own_environment_one_process_per_node(local_cluster, staged):
    # Built from the machine itself (the simulated nodes have no route to a package index, and share
    # its file system: the environment is then on every node).
    env = run_playbook("playbooks/testcase_env.yml", "-e", "test_case=jax", "-e", f"testcase_env_root={ENVS}",
                       "-e", "target=localhost", "-e", "ansible_python_interpreter=/usr/bin/python3",
                       inventory=local_cluster, timeout=1200)
    assert env.returncode == 0, env.stdout[-3000:]
    proc = run_playbook("playbooks/run_jax.yml", "-e", "preset=cpu-tiny", "-e", f"launcher_envs_root={ENVS}",
                        "-e", json.dumps({"params": {"steps": 12, **staged["params"]}}),
                        inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-4000:]
    s = summary_of(results_of(proc))
    assert_read_staged(results_of(proc), staged["data"](64))
    assert s["launch_mode"] == "command" and s["status"] == "passed"
    assert s["nodes"] == ["node1", "node2"] and s["ranks_reported"] == [0, 1]
    assert s["steps"] == 12 and s["loss_last"] < s["loss_first"]
    # The framework came from the case's environment, as the preflight imported it on each node.
    assert all(v["framework_version"] == "0.10.2" for v in s["node_environment"].values())


def test_a_case_whose_environment_is_missing_is_refused_in_one_line(local_cluster, tmp_path):
    proc = run_playbook("playbooks/run_jax.yml", "-e", "preset=cpu-tiny",
                        "-e", f"launcher_envs_root={tmp_path}", inventory=local_cluster)
    assert proc.returncode != 0
    assert (f"node1: {tmp_path}/jax/bin/python cannot import jax" in proc.stdout
            and "build it: ansible-playbook playbooks/testcase_env.yml -i <inventory> -e test_case=jax"
            in proc.stdout), proc.stdout[-3000:]


def test_picotron_trains_dp_pp_tp_across_both_nodes(local_cluster, staged):
    proc = run_playbook("playbooks/run_picotron.yml", "-e", "preset=cpu-2x4",
                        "-e", json.dumps({"params": {"steps": 8, **staged["params"]}}),
                        inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-4000:]
    s = summary_of(results_of(proc))
    assert_read_staged(results_of(proc), staged["data"](64))
    assert s["status"] == "passed" and s["world_size"] == 8 and s["ranks_reported"] == list(range(8))
    assert s["loss_last"] < s["loss_first"]


def test_composer_trains_with_its_own_launcher_and_torch(local_cluster, staged, tmp_path):
    """Composer (mosaicml 0.32.1 on torch 2.7.0, its own venv: the collection's torch is too new for
    it) on two nodes: Composer's launcher once per node, DDP over gloo, on the staged shards; the
    metrics come from Composer's logged metrics through the case's adapter. The venv build is the
    long part (a 5.4 GB venv: PyPI's torch wheel brings the CUDA libraries); a second build changes
    nothing. A cut shard is then refused by the entry point in that venv in one line (Composer
    cannot be imported anywhere else)."""
    env = run_playbook("playbooks/testcase_env.yml", "-e", "test_case=composer",
                       "-e", f"testcase_env_root={ENVS}", "-e", "target=localhost",
                       "-e", "ansible_python_interpreter=/usr/bin/python3",
                       inventory=local_cluster, timeout=1800)
    assert env.returncode == 0, env.stdout[-3000:]
    proc = run_playbook("playbooks/run_composer.yml", "-e", "preset=cpu-tiny",
                        "-e", f"launcher_envs_root={ENVS}",
                        "-e", json.dumps({"params": {"steps": 12, **staged["params"]}}),
                        inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-4000:]
    results = results_of(proc)
    s = summary_of(results)
    assert_read_staged(results, staged["data"](64))
    assert s["launch_mode"] == "command" and s["status"] == "passed"
    assert s["nodes"] == ["node1", "node2"] and s["ranks_reported"] == [0, 1]
    assert s["steps"] == 12 and s["loss_last"] < s["loss_first"]
    assert all(v["framework_version"] == "0.32.1" for v in s["node_environment"].values())
    # Every rank's events carry what Composer logged: the all-reduced loss (the same on both ranks),
    # its learning rate and, after SpeedMonitor's 2-batch window, throughput and step time.
    steps = [e for e in records(results) if e["event"] == "step"]
    assert len(steps) == 24 and all(e["lr"] == 0.003 for e in steps)
    assert all(e["tokens_per_s_per_device"] > 0 and e["step_time_s"] > 0 for e in steps if e["step"] >= 3)
    by_rank = {r: [e["loss"] for e in steps if e["rank"] == r] for r in (0, 1)}
    assert by_rank[0] == by_rank[1]

    cut = tmp_path / "cut"
    shutil.copytree(staged["params"]["data_path"], cut)
    (cut / "shard-00001.bin").write_bytes(b"\0" * 10)
    src = REPO / "test_cases" / "composer" / "src"
    refused = subprocess.run([str(ENVS / "composer" / "bin" / "python"), str(src / "train.py"),
                              "--dataset", "staged", "--data-path", str(cut),
                              "--output-dir", str(tmp_path / "out")],
                             capture_output=True, text=True, timeout=300, check=False,
                             env={"PYTHONPATH": f"{REPO / 'test_cases' / 'common'}:{src}"})
    assert refused.returncode == 2 and refused.stderr.splitlines() == [
        f"composer: {cut / 'shard-00001.bin'}: 10 bytes, the index says 4000 uint16 tokens (8000 bytes): "
        "truncated"], refused.stderr[-3000:]


def test_a_render_only_case_is_refused_and_renders_its_slurm_pyxis_launch(local_cluster):
    """NeMo 2.0 cannot run here (GPUs and its nvcr.io image): a real launch stops at the plan in one
    line, and `render_only` writes the sbatch (Pyxis flags with the pinned image) and each node's
    launch with NeMo-Run's command line. The other render-only cases' lines: tests/unit."""
    refused = run_playbook("playbooks/run_nemo2.yml", "-e", "preset=p5-2node", inventory=local_cluster)
    assert refused.returncode != 0
    assert "nemo2 is render-only here: NeMo 2.0 needs NVIDIA GPUs" in refused.stdout, refused.stdout[-3000:]
    proc = run_playbook("playbooks/run_nemo2.yml", "-e", "preset=p5-2node", "-e", "mode=slurm",
                        "-e", "render_only=true", inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-3000:]
    rendered = Path(proc.stdout.split("rendered: ")[1].split()[0].strip("'\""))
    sbatch = (rendered / "node1" / "sbatch.sh").read_text()
    assert "#SBATCH --nodes=2" in sbatch
    assert "--container-image=nvcr.io#nvidia/nemo:25.04" in sbatch[sbatch.index("srun "):]
    launch = (rendered / "node2" / "launch.sh").read_text()
    assert "export NNODES=2 NODE_RANK=1" in launch and "export NPROC_PER_NODE=8 WORLD_SIZE=16" in launch
    assert ('python3 -m torch.distributed.run --nnodes "${NNODES}" --nproc-per-node "${NPROC_PER_NODE}" '
            '--node-rank "${NODE_RANK}" --master-addr "${MASTER_ADDR}" --master-port "${MASTER_PORT}" '
            "--no-python nemo llm pretrain --factory llama3_8b --yes --direct "
            'trainer.num_nodes="${NNODES}" trainer.devices="${NPROC_PER_NODE}"') in launch
