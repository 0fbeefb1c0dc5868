"""The launcher's slurm mode on the simulated cluster with Slurm (cluster_slurm=true: one munged,
slurmctld in node1's namespaces, slurmd in each node's): sbatch + srun start torchrun per node, and
results are collected exactly as in the ssh mode."""

from __future__ import annotations

import re

import pytest
import yaml
from test_launcher import assert_trained_on_every_node, faulty, results_of, summary_of

from helpers import leaked, munge_key_forms, run_playbook

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm_cluster(local_cluster):
    """The session cluster with Slurm added, configured by the munge and slurm roles: the slurm.conf
    every daemon reads is the slurm role's, written from the nodes as inventory hosts. A second run
    changes nothing (no key, file or daemon touched). The munge key it made never shows in the output."""
    args = ("-e", "cluster_state=present", "-e", "cluster_nodes=2", "-e", "cluster_slurm=true")
    outputs = []
    for _run in ("first", "again"):
        proc = run_playbook("playbooks/local_cluster.yml", *args, timeout=600)
        assert proc.returncode == 0, proc.stdout[-6000:]
        outputs.append(proc.stdout)
    key = (local_cluster.parent / "slurm" / "munge.key").read_bytes()
    assert len(key) >= 32 and not leaked(munge_key_forms(key), *outputs)
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\s", proc.stdout), proc.stdout[-4000:]
    inventory = yaml.safe_load(local_cluster.read_text())["all"]["children"]
    assert list(inventory["slurm_compute"]["hosts"]) == ["node1", "node2"]
    conf = (local_cluster.parent / "slurm" / "slurm.conf").read_text()
    assert "Rendered by awsome.distributed_training.slurm" in conf  # the role's template
    # node1's address from slurm_node_addr; %n paths for the slurmd that share this file system.
    assert re.search(r"^SlurmctldHost=node1\(10\.77\.0\.11\)$", conf, re.M), conf
    assert re.search(r"^NodeName=node2 NodeAddr=10\.77\.0\.12 CPUs=\d+ ", conf, re.M), conf
    assert "SlurmdPidFile=" + str(local_cluster.parent / "slurm" / "%n" / "slurmd.pid") in conf
    assert "PartitionName=compute Nodes=node1,node2 Default=YES" in conf
    return local_cluster


def test_fsdp_cpu_tiny_through_slurm(slurm_cluster):
    proc = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", "-e", "mode=slurm",
                        inventory=slurm_cluster)
    assert proc.returncode == 0, proc.stdout[-4000:]
    job = re.search(r"Slurm job (\d+) on node1,node2", proc.stdout)
    assert job, proc.stdout[-4000:]
    run_dir = results_of(proc)
    assert_trained_on_every_node(run_dir, steps=summary_of(run_dir)["params"]["steps"])
    assert (run_dir / "nodes" / "node1" / f"slurm-{job.group(1)}.out").is_file()
    # The cluster's munge key is in no play output, log or result of a Slurm run.
    key = (slurm_cluster.parent / "slurm" / "munge.key").read_bytes()
    results = [p.read_text(errors="replace") for p in run_dir.rglob("*")
               if p.is_file() and p.suffix != ".png"]
    assert not leaked(munge_key_forms(key), proc.stdout, *results)


def test_a_node_failing_under_slurm_fails_the_play_with_its_log(slurm_cluster):
    proc = faulty(slurm_cluster, "-e", "mode=slurm", params={"fail_rank": 1})
    assert proc.returncode != 0
    assert "node2: exited 1: " in proc.stdout and "injected failure on rank 1" in proc.stdout
    assert summary_of(results_of(proc))["status"] == "failed"
