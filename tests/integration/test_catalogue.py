"""Framework cases of the catalogue through the one launcher on the 2-node simulated cluster.

jax: command mode (one process per node, jax.distributed over gloo), from its own virtualenv on the
nodes (built by playbooks/testcase_env.yml; the collection's venv has no JAX). picotron: our 4D
parallel case, dp2 x pp2 x tp2 over 8 ranks on two nodes.
"""

from __future__ import annotations

import json

import pytest
from test_launcher import results_of, summary_of

from helpers import REPO, run_playbook

pytestmark = pytest.mark.slow
# Shared with tests/integration/test_testcase_env.py: the nodes share this file system, so the
# virtualenv it builds is the one every simulated node runs.
ENVS = REPO / ".state" / "testcase_envs"


def test_jax_trains_in_its_own_environment_one_process_per_node(local_cluster):
    # Built from the machine itself (the simulated nodes have no route to a package index, and share
    # its file system: the environment is then on every node).
    env = run_playbook("playbooks/testcase_env.yml", "-e", "test_case=jax", "-e", f"testcase_env_root={ENVS}",
                       "-e", "target=localhost", "-e", "ansible_python_interpreter=/usr/bin/python3",
                       inventory=local_cluster, timeout=1200)
    assert env.returncode == 0, env.stdout[-3000:]
    proc = run_playbook("playbooks/run_jax.yml", "-e", "preset=cpu-tiny", "-e", f"launcher_envs_root={ENVS}",
                        "-e", json.dumps({"params": {"steps": 12}}), inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-4000:]
    s = summary_of(results_of(proc))
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


def test_picotron_trains_dp_pp_tp_across_both_nodes(local_cluster):
    proc = run_playbook("playbooks/run_picotron.yml", "-e", "preset=cpu-2x4",
                        "-e", json.dumps({"params": {"steps": 8}}), inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-4000:]
    s = summary_of(results_of(proc))
    assert s["status"] == "passed" and s["world_size"] == 8 and s["ranks_reported"] == list(range(8))
    assert s["loss_last"] < s["loss_first"]
