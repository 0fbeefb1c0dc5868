"""Slurm mode: a node is named lost from what Slurm says about it (roles/launcher/tasks/slurm_view.yml
writes it on the head node as slurm.json), and each attempt carries its Slurm job id. The lines below
are what Slurm 22.05 printed on the simulated cluster when node2's slurmd and job were killed."""

import json

from test_run_report import PLAN, make_run

from ansible_collections.awsome.distributed_training.plugins.module_utils.run_report import (
    attempts_html,
    summarize,
)

PEER = "Traceback (most recent call last):\nRuntimeError: [gloo] Read error: Connection reset by peer\n"
NODE = ("NodeName={host} Arch=x86_64 CoresPerSocket=2  CPUAlloc=0 NodeAddr=10.77.0.12 OS=Linux 6.1 #1 SMP "
        "RealMemory=23081 State={state} ThreadsPerCore=1 Partitions=compute{reason}")


def slurm_run(tmp_path, node2_state, node1_state="IDLE", extra=(), reason=""):
    """node2's job vanished at step 12 (no exit status); node1 then lost its gloo peer (exit 1)."""
    run = make_run(tmp_path, rc=(1, None), log=PEER, steps=12)
    for rank in (0, 1):  # both ranks trained 12 steps and never wrote their end record
        path = run / "nodes" / f"node{rank + 1}" / f"metrics-rank{rank}.jsonl"
        path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:-1]))
    lines = ["job_id: 7", "job: JobId=7 JobName=fsdp JobState=COMPLETING Requeue=0 ExitCode=0:15",
             "node: " + NODE.format(host="node1", state=node1_state, reason=""),
             "node: " + NODE.format(host="node2", state=node2_state, reason=reason),
             "srun: srun: error: node1: task 0: Exited with exit code 1", *extra]
    (run / "nodes" / "node1" / "slurm.json").write_text(json.dumps({"lines": lines}))
    return str(run)


def test_a_node_slurm_found_gone_is_lost_and_named_first(tmp_path):
    s = summarize(slurm_run(tmp_path, "IDLE+COMPLETING+NOT_RESPONDING"), PLAN | {"head": "node1"})
    assert s["failures"][0] == "node2 lost at step 12 (Slurm: IDLE+COMPLETING+NOT_RESPONDING)"
    assert s["lost_nodes"] == ["node2"] and s["slurm_job"] == 7
    # Both ranks trained: they stopped, they were not silent; node1's own symptom comes after.
    assert "rank(s) 0, 1 stopped before the end (last step 12) (node node1, node2)" in s["failures"]
    assert not any("wrote nothing" in f or "no exit status" in f for f in s["failures"])

    # DOWN with Slurm's reason (its [user@time] left out), srun's node failure and a NODE_FAIL step.
    said = ["srun: srun: error: Node failure on node2", "sacct: 7.0|NODE_FAIL|0:0|node[1-2]"]
    s = summarize(slurm_run(tmp_path / "down", "DOWN+NOT_RESPONDING", extra=said,
                            reason=" Reason=Not responding [slurm@2026-12-01T01:26:40]"), PLAN)
    assert s["failures"][0] == ("node2 lost at step 12 (Slurm: DOWN+NOT_RESPONDING, Not responding; "
                                "srun: error: Node failure on node2; sacct: step 7.0 NODE_FAIL)")


def test_slurm_flags_alone_do_not_make_a_node_lost(tmp_path):
    """A node Slurm sees answering (or powered down for power saving) is not lost, and a node whose
    job ended by itself is judged by that end even while Slurm flags it."""
    s = summarize(slurm_run(tmp_path, "IDLE+POWERED_DOWN", node1_state="IDLE+NOT_RESPONDING"), PLAN)
    assert s["lost_nodes"] == [] and "node2: no exit status (job did not finish)" in s["failures"]
    assert s["died_nodes"] == ["node1"]


def test_the_attempts_table_shows_each_attempts_slurm_job():
    attempts = [{"run_id": "r1", "slurm_job": 7, "nodes": ["node1", "node2"], "status": "failed",
                 "failure": "node2 lost at step 12 (Slurm: IDLE+NOT_RESPONDING)"},
                {"run_id": "r1-r1", "slurm_job": 8, "nodes": ["node1"], "status": "passed"}]
    html = attempts_html({"attempts": attempts})
    assert "<th>Slurm job</th>" in html and ">7<" in html and ">8<" in html
    assert "Slurm job" not in attempts_html({"attempts": [a | {"slurm_job": None} for a in attempts]})
