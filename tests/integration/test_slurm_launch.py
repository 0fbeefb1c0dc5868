"""The launcher's slurm mode on the simulated cluster with Slurm (cluster_slurm=true: one munged,
slurmctld in node1's namespaces, slurmd in each node's): sbatch + srun start torchrun per node, and
results are collected exactly as in the ssh mode."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from test_faults import CLUSTER_STATE, start_until_step
from test_launcher import assert_trained_on_every_node, faulty, no_job_left, results_of, summary_of

from helpers import ansible_env, leaked, munge_key_forms, run, run_playbook

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
    # Slurm's view of the job came back with the head node's results; nothing was lost.
    s = summary_of(run_dir)
    assert s["slurm_job"] == int(job.group(1)) and s["lost_nodes"] == [], s["node_status"]
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


def kill_slurm_node(node: str) -> None:
    """`node` goes away under Slurm: its slurmd and its job (slurmstepd and the ranks below it) are
    killed. Its sshd and the holder of its namespaces stay, so it is Slurm, not ssh, that finds it
    gone. The simulated nodes share this machine's process table: a node's processes are those in
    its network namespace."""
    run = CLUSTER_STATE / "run"
    holder = int((run / f"{node}.holder.pid").read_text())
    sshd = int((run / f"{node}.sshd.pid").read_text())
    netns = os.readlink(f"/proc/{holder}/ns/net")

    def under_sshd(pid: int) -> bool:  # the launcher's own ssh sessions to the node stay
        while pid > 1:
            if pid == sshd:
                return True
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        return False

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == holder:
            continue
        with contextlib.suppress(OSError, ValueError):  # gone already
            if os.readlink(entry / "ns" / "net") == netns and not under_sshd(int(entry.name)):
                os.kill(int(entry.name), signal.SIGKILL)


def scontrol(*args: str) -> str:
    env = ansible_env(SLURM_CONF=str(CLUSTER_STATE / "slurm" / "slurm.conf"))
    return run(["scontrol", *args], env=env, check=True).stdout


def test_a_node_lost_under_slurm_is_drained_and_the_run_resumes_as_a_job_without_it(slurm_cluster):
    """node2's slurmd and job die at step ~12 of a 2-node run that checkpoints every 8 steps: Slurm
    finds it gone, the first line names it lost, the launcher drains it and the next attempt is a
    new Slurm job that excludes it and resumes on node1 from the step-8 checkpoint."""
    steps, every = 24, 8
    proc = None
    try:
        cmd, proc, _run_root = start_until_step(slurm_cluster, "-e", "mode=slurm", steps=steps, every=every)
        kill_slurm_node("node2")
        out, _unused = proc.communicate(timeout=900)
        node2 = scontrol("show", "node", "--oneliner", "node2")
        run_dir = results_of(subprocess.CompletedProcess(cmd, 0, out))
        s = summary_of(run_dir)
        jobs = [scontrol("show", "job", "--oneliner", str(a["slurm_job"])) for a in s.get("attempts", [])]
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        # node2 comes back (its slurmd) and into service (drained nodes resumed) for the tests after.
        back = run_playbook("playbooks/local_cluster.yml", "-e", "cluster_state=present",
                            "-e", "cluster_nodes=2", "-e", "cluster_slurm=true", timeout=600)
        assert back.returncode == 0, back.stdout[-3000:]

    assert proc.returncode == 0, out[-5000:]
    said = " ".join(out.split())  # the play output wraps long messages
    assert "restart 1 of 1" in said and "node2 drained in Slurm" in said
    assert s["status"] == "passed" and s["nodes"] == ["node1"] and s["ranks_reported"] == [0]
    first, second = s["attempts"]
    # The first line is Slurm's finding, not a symptom on node1 (its gloo peer gone).
    assert first["lost_nodes"] == ["node2"] and first["failure"].startswith("node2 lost at step"), first
    assert "(Slurm: " in first["failure"] and "NOT_RESPONDING" in first["failure"], first
    assert first["failure"] in said, first
    # Two Slurm jobs: the second excluded node2, which stays drained with the launcher's reason.
    assert first["slurm_job"] != second["slurm_job"] == s["slurm_job"]
    assert "<th>Slurm job</th>" in (run_dir / "report.html").read_text()
    assert re.search(r" ExcNodeList=node2 ", jobs[1]) and re.search(r" NodeList=node1 ", jobs[1]), jobs[1]
    assert re.search(r" State=\S*DRAIN", node2), node2
    assert f"Reason=awsome: lost at step {first['last_step']} in run {first['run_id']}" in node2, node2
    # From the last complete checkpoint: at most one interval trained again, every step done, and
    # the loss goes on from where the checkpoint left it.
    assert second["resumed_from_step"] >= every and 0 <= second["steps_redone"] <= every
    assert second["last_step"] == steps
    assert s["loss_first"] < 5.0 and s["loss_last"] < s["loss_first"]
    assert "State=IDLE " in scontrol("show", "node", "--oneliner", "node2")  # back in service
    no_job_left(slurm_cluster)
