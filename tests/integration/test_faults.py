"""A node lost mid-run on the simulated cluster: the launcher names it, drops it and resumes the run
by itself from the last complete checkpoint (max_restarts), and the report shows every attempt.

"Lost" is made real: node2's sshd and every process of its job are killed while it trains, so the
launcher can neither follow nor collect from it, exactly as with a node that went away. The test
brings node2 back afterwards (the cluster playbook restarts its sshd) for the tests that follow.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from test_launcher import FAULTY, no_job_left, results_of, summary_of

from helpers import REPO, VENV_BIN, ansible_env, run_playbook

pytestmark = pytest.mark.slow
CLUSTER_STATE = REPO / ".state" / "cluster"


def tree(pid: int) -> list[int]:
    """pid and every process below it."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], text=True, capture_output=True,
                         check=False).stdout
    return [p for child in out.split() for p in tree(int(child))] + [pid]


def kill_node(node: str, run_dir: Path) -> None:
    """node2 goes away: its sshd with every session under it, and its job."""
    sshd = int((CLUSTER_STATE / "run" / f"{node}.sshd.pid").read_text())
    job = int((run_dir / "pid").read_text().split()[0])
    for pid in tree(job) + tree(sshd):
        with contextlib.suppress(ProcessLookupError):  # gone already
            os.kill(pid, signal.SIGKILL)


def wait_for_step(metrics: Path, step: int, proc: subprocess.Popen, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists():
            steps = [json.loads(x).get("step", 0) for x in metrics.read_text().splitlines() if '"step"' in x]
            if steps and max(steps) >= step:
                return
        time.sleep(0.5)
    raise AssertionError(f"{metrics} never reached step {step} (playbook exit {proc.poll()})")


def start_until_step(inventory: Path, *extra: str, steps: int, every: int,
                     watch: tuple[str, int] = ("node2", 1)) -> tuple[list[str], subprocess.Popen, Path]:
    """Start an fsdp cpu-tiny run (2 nodes unless `extra` says otherwise) that checkpoints every `every`
    steps and may restart once; return once `watch` (node, rank) has trained half an interval past the
    first checkpoint (the moment to lose that node)."""
    work = Path(yaml.safe_load(inventory.read_text())["all"]["children"]["cluster"]["vars"]
                ["launcher_work_root"])
    before = set(work.glob("fsdp-*")) if work.exists() else set()
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/run_fsdp.yml",
           "-e", "preset=cpu-tiny", "-e", "max_restarts=1", *extra,
           "-e", json.dumps({"params": {"steps": steps, "checkpoint_every": every}})]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ansible_env(), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not (set(work.glob("fsdp-*")) - before) and time.monotonic() < deadline:
            time.sleep(0.5)
        run_root = next(iter(set(work.glob("fsdp-*")) - before))
        node, rank = watch
        wait_for_step(run_root / node / "out" / f"metrics-rank{rank}.jsonl", every + every // 2, proc)
    except BaseException:
        proc.kill()
        raise
    return cmd, proc, run_root


def lose_a_node_mid_run(inventory: Path, node: str, *extra: str, steps: int, every: int,
                        watch: tuple[str, int] = ("node2", 1)) -> tuple[str, Path]:
    """Start the run (start_until_step), take `node` away (kill_node) and wait for the play, which must
    succeed; the node comes back (its sshd) for the rest of the session whatever happened. Returns
    the play's output and the results directory of the run's last attempt."""
    proc = None
    try:
        cmd, proc, run_root = start_until_step(inventory, *extra, steps=steps, every=every, watch=watch)
        kill_node(node, run_root / node)
        out, _unused = proc.communicate(timeout=900)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        back = run_playbook("playbooks/local_cluster.yml", "-e", "cluster_state=present",
                            "-e", "cluster_nodes=2")
        assert back.returncode == 0, back.stdout[-3000:]
    assert proc.returncode == 0, out[-5000:]
    return out, results_of(subprocess.CompletedProcess(cmd, 0, out))


def test_a_lost_node_is_dropped_and_the_run_resumes_from_its_last_checkpoint(local_cluster):
    steps, every = 24, 8
    out, run_dir = lose_a_node_mid_run(local_cluster, "node2", steps=steps, every=every)
    assert "node2 lost at step" in out and "restart 1 of 1" in out
    s = summary_of(run_dir)
    assert s["status"] == "passed" and s["nodes"] == ["node1"] and s["ranks_reported"] == [0]
    first, second = s["attempts"]
    assert first["lost_nodes"] == ["node2"] and first["failure"].startswith("node2 lost at step")
    assert second["run_id"] == s["run_id"] and second["resumed_from_step"] >= every
    # Never more than one checkpoint interval trained twice, and the run ends where it was asked to.
    assert 0 <= second["steps_redone"] <= every
    assert second["last_step"] == steps
    # The loss goes on from where the checkpoint left it, not from the start.
    assert s["loss_first"] < 5.0 and s["loss_last"] < s["loss_first"]
    no_job_left(local_cluster)


def test_a_run_whose_only_node_is_lost_resumes_on_a_spare(local_cluster, tmp_path):
    """A one-node run on node1 with node2 in the inventory group `spare`: node1 goes away at step ~12,
    and the next attempt runs on the spare, from the step-8 checkpoint in the shared root."""
    spare = tmp_path / "spare.yml"
    spare.write_text("all:\n  children:\n    spare:\n      hosts:\n        node2: {}\n")
    steps, every = 24, 8
    out, run_dir = lose_a_node_mid_run(local_cluster, "node1", "-i", str(spare), "-e", "nodes=1",
                                       steps=steps, every=every, watch=("node1", 0))
    said = " ".join(out.split())  # the play output wraps long messages
    # Nothing of node1 came back (its metrics were on it), so no step is named, only the loss of it.
    assert "node1 lost (unreachable): restart 1 of 1" in said and "on node2 from the last complete" in said
    s = summary_of(run_dir)
    assert s["status"] == "passed" and s["nodes"] == ["node2"] and s["ranks_reported"] == [0]
    first, second = s["attempts"]
    assert first["nodes"] == ["node1"] and first["lost_nodes"] == ["node1"], first
    assert second["nodes"] == ["node2"] and second["resumed_from_step"] >= every
    assert second["last_step"] == steps and s["loss_last"] < s["loss_first"]
    no_job_left(local_cluster)


def test_two_runs_started_at_once_run_side_by_side(local_cluster):
    """Two runs on the same two nodes at the same time: their own directories, results and
    rendezvous ports (the plan derives one per run id), and both train."""
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(local_cluster), "playbooks/run_test_case.yml",
           "-e", "test_case=faulty", "-e", "preset=cpu-tiny", "-e", f"launcher_test_cases_dir={FAULTY}"]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=ansible_env(), text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT) for _unused in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    runs = [results_of(subprocess.CompletedProcess(cmd, 0, out)) for out in outs]
    assert runs[0] != runs[1]
    ports = set()
    for run in runs:
        s = summary_of(run)
        assert s["status"] == "passed" and s["ranks_reported"] == [0, 1]
        ports.add(s["rdzv_port"])
    assert len(ports) == 2
