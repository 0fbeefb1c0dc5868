"""The main job end to end: run_<case>.yml on the 2-node simulated cluster, judged by its results.

Every node is a network namespace with its own hostname and sshd; the launcher reaches them over
SSH exactly as it reaches EC2 nodes. A run passes only when every rank reported from its own node
and the loss fell; failures must carry a clear message and leave nothing running.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from statistics import mean

import pytest
import yaml

from helpers import REPO, run_playbook

pytestmark = pytest.mark.slow


def _faulty_cases() -> Path:
    """A test-cases directory holding the faulty case and the project's `common` code, as links made
    here: a link to a directory in git is one ansible-test sanity refuses."""
    cases = REPO / ".state" / "faulty_cases"
    cases.mkdir(parents=True, exist_ok=True)
    links = {"faulty": Path(__file__).parent / "faulty_case", "common": REPO / "test_cases" / "common"}
    for name, target in links.items():
        with contextlib.suppress(FileExistsError):  # another session made it first
            (cases / name).symlink_to(target, target_is_directory=True)
    return cases


FAULTY = _faulty_cases()


def results_of(proc: subprocess.CompletedProcess) -> Path:
    match = re.search(r"(passed|failed)?:? ?(/\S+/results/[^/\s]+)/report\.html", proc.stdout)
    assert match, proc.stdout[-3000:]
    return Path(match.group(2))


def losses(run_dir: Path) -> dict[int, float]:
    """Step -> global mean loss of a run (rank 0's step events in its merged metrics)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    return {r["step"]: r["loss"] for r in rows if r.get("event") == "step" and r.get("rank") == 0}


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def no_job_left(inventory: Path) -> None:
    """No live process (zombies aside: PID 1 here does not reap) still works in a run directory."""
    cluster = yaml.safe_load(inventory.read_text())["all"]["children"]["cluster"]
    work = os.path.realpath(cluster["vars"]["launcher_work_root"])
    left = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cwd = os.readlink(proc / "cwd")
        except (OSError, IndexError):
            continue
        if state != "Z" and cwd.startswith(work + "/"):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")[:120]
            left.append(f"{proc.name}: {cmdline!r}")
    assert not left, f"processes left in run directories: {left}"


def assert_trained_on_every_node(run_dir: Path, steps: int) -> dict:
    s = summary_of(run_dir)
    assert s["status"] == "passed", s["failures"]
    assert s["nodes"] == ["node1", "node2"] and s["ranks_reported"] == [0, 1]
    assert s["steps"] == steps and s["loss_last"] < s["loss_first"]
    recs = records(run_dir)
    # Each rank ran inside its own simulated node (the hostname the rank itself saw).
    assert {(r["rank"], r["node"]) for r in recs if r["event"] == "start"} == {(0, "node1"), (1, "node2")}
    for rank in (0, 1):
        rank_steps = [r for r in recs if r["event"] == "step" and r["rank"] == rank]
        assert len(rank_steps) == steps
    for png in s["plots"]:
        assert (run_dir / png).stat().st_size > 1000
    assert "passed" in (run_dir / "report.html").read_text()
    return s


def test_fsdp_cpu_tiny_trains_on_both_nodes(local_cluster):
    proc = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert re.search(r"fsdp/cpu-tiny step \d+/\d+ +loss", proc.stdout), "no progress lines shown"
    run_dir = results_of(proc)
    s = assert_trained_on_every_node(run_dir, steps=summary_of(run_dir)["params"]["steps"])
    for key in ("tokens_per_s_per_device", "tflops_per_device", "mfu", "step_time_s"):
        assert s["steady"][key] > 0, key
    assert s["peak_mem_gib_max"] > 0
    assert (REPO / "results" / "latest").resolve() == run_dir
    no_job_left(local_cluster)

    # Resume that run from its last checkpoint and train 5 more steps.
    last = s["params"]["steps"]
    assert any(c["action"] == "save" and c["step"] == last for c in s["checkpoints"]), s["checkpoints"]
    more = {"resume_from": run_dir.name, "params": {"steps": last + 5, "resume": True}}
    proc = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", "-e", json.dumps(more),
                        inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-4000:]
    resumed_dir = results_of(proc)
    resumed = summary_of(resumed_dir)
    assert {"step": last, "action": "load"}.items() <= resumed["checkpoints"][0].items()
    assert resumed["steps"] == 5 and resumed["ranks_reported"] == [0, 1]
    # Five steps are too few to judge a trend by themselves (one step against one step is noise):
    # the resumed losses are judged against the uninterrupted run's trajectory. They continue where
    # it stopped (a fresh start would be back near its first losses) and lie below its earlier window.
    before, after = losses(run_dir), losses(resumed_dir)
    assert sorted(after) == list(range(last + 1, last + 6)), after
    first, tail, earlier = (mean(before[s] for s in steps) for steps in
                            (range(1, 6), range(last - 4, last + 1), range(last - 14, last - 4)))
    now = mean(after.values())
    assert abs(now - tail) < 0.1 * (first - tail), (first, earlier, tail, now)
    assert now < earlier, (first, earlier, tail, now)


def test_ddp_cpu_tiny_trains_on_both_nodes(local_cluster):
    proc = run_playbook("playbooks/run_ddp.yml", "-e", "preset=cpu-tiny", inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-4000:]
    run_dir = results_of(proc)
    assert_trained_on_every_node(run_dir, steps=summary_of(run_dir)["params"]["steps"])


def test_collectives_cpu_small_sweeps_collectives_correctly(local_cluster):
    proc = run_playbook("playbooks/run_collectives.yml", "-e", "preset=cpu-small", inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-4000:]
    run_dir = results_of(proc)
    s = summary_of(run_dir)
    assert s["status"] == "passed" and s["ranks_reported"] == [0, 1] and s["collectives"] > 0
    rows = (run_dir / "collectives.csv").read_text().splitlines()
    assert rows[0].startswith("op,dtype,bytes") and len(rows) - 1 == s["collectives"]
    assert any(p.startswith("busbw_gbps") for p in s["plots"])


def faulty(inventory: Path, *extra: str, params: dict | None = None) -> subprocess.CompletedProcess:
    return run_playbook("playbooks/run_test_case.yml", "-e", "test_case=faulty", "-e", "preset=cpu-tiny",
                        "-e", f"launcher_test_cases_dir={FAULTY}", "-e", json.dumps({"params": params or {}}),
                        *extra, inventory=inventory)


def test_a_rank_failing_on_one_node_fails_the_play_with_that_nodes_error(local_cluster):
    proc = faulty(local_cluster, params={"fail_rank": 1})
    assert proc.returncode != 0
    assert "node2: exited 1: " in proc.stdout and "injected failure on rank 1" in proc.stdout
    s = summary_of(results_of(proc))
    assert s["status"] == "failed" and s["failures"][0].startswith("node2: exited 1: ")
    # Rank 1 trained two steps before it failed: it stopped, it was not silent.
    stopped = re.compile(r"rank\(s\) (0, )?1 stopped before the end \(last step 2\)")
    assert any(stopped.match(f) for f in s["failures"]), s["failures"]
    no_job_left(local_cluster)


def test_a_hung_job_is_stopped_at_the_timeout(local_cluster):
    proc = faulty(local_cluster, "-e", "timeout_s=8", params={"hang": True})
    assert proc.returncode != 0
    assert "timed out after 8s" in proc.stdout
    s = summary_of(results_of(proc))
    assert any("timeout after 8s" in f for f in s["failures"])
    no_job_left(local_cluster)


def test_a_flat_loss_fails_the_success_criteria(local_cluster):
    proc = faulty(local_cluster, params={"flat_loss": True})
    assert proc.returncode != 0
    assert "loss did not fall" in proc.stdout


@pytest.mark.parametrize(("extra", "message"), [
    (["-e", "test_case=nope", "-e", "preset=cpu-tiny"], "unknown test case 'nope' (known: "),
    (["-e", "test_case=fsdp", "-e", "preset=nope"], "unknown preset 'nope' for fsdp (presets: "),
    (["-e", "test_case=fsdp", "-e", "preset=cpu-tiny", "-e", "nodes=0"],
     "nodes must be between 1 and 64, got 0"),
    (["-e", "test_case=fsdp", "-e", "preset=cpu-tiny", "-e", "nodes=3"],
     "fsdp/cpu-tiny needs 3 node(s) but inventory group 'cluster' has 2: node1, node2"),
    (["-e", "test_case=fsdp", "-e", "preset=cpu-tiny", "-e", '{"params": {"steps": "many"}}'],
     "parameter 'steps' must be int, got 'many'"),
])
def test_bad_requests_are_refused_before_anything_starts(local_cluster, extra, message):
    before = set((REPO / "results").glob("*"))
    proc = run_playbook("playbooks/run_test_case.yml", *extra, inventory=local_cluster)
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout[-2000:]
    assert "PLAY [Run on the nodes]" not in proc.stdout
    assert set((REPO / "results").glob("*")) == before


def test_a_missing_inventory_is_refused(tmp_path):
    proc = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", inventory=tmp_path / "missing.yml")
    assert proc.returncode != 0
    assert "no nodes: inventory group 'cluster' is empty or missing (pass -i <inventory>)" in proc.stdout


def test_an_unreachable_node_stops_the_run_before_launch(local_cluster, tmp_path):
    inv = yaml.safe_load(local_cluster.read_text())
    # A node whose SSH port is closed (loopback, port 1): unreachable without leaving this machine.
    inv["all"]["children"]["cluster"]["hosts"]["node2"] = {"ansible_host": "127.0.0.1", "ansible_port": 1}
    bad = tmp_path / "inventory.yml"
    bad.write_text(yaml.safe_dump(inv))
    work = Path(inv["all"]["children"]["cluster"]["vars"]["launcher_work_root"])
    before = set(work.glob("*")) if work.exists() else set()
    proc = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", inventory=bad)
    assert proc.returncode != 0
    assert "unreachable node(s): node2; nothing was launched" in proc.stdout
    assert (set(work.glob("*")) if work.exists() else set()) == before
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_mistyped_resume_from_is_refused(local_cluster):
    proc = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny",
                        "-e", "resume_from=fsdp-no-such-run", "-e", '{"params": {"resume": true}}',
                        inventory=local_cluster)
    assert proc.returncode != 0
    assert re.search(r"node1: resume_from: no complete checkpoint in \S+/fsdp-no-such-run/checkpoints "
                     r"\(runs with one: [^)]*\); nothing was launched", proc.stdout), proc.stdout[-2000:]


def test_a_shared_root_that_is_not_shared_is_refused(local_cluster, tmp_path):
    inv = yaml.safe_load(local_cluster.read_text())
    # node2 keeps its "shared" checkpoints somewhere node1 never writes: as on nodes without a shared FS.
    inv["all"]["children"]["cluster"]["hosts"]["node2"]["launcher_shared_root"] = str(tmp_path / "node2-only")
    split = tmp_path / "inventory.yml"
    split.write_text(yaml.safe_dump(inv))
    proc = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", inventory=split)
    assert proc.returncode != 0
    assert (f"node2: {tmp_path / 'node2-only'} is not shared with the head node (its marker is not there)"
            in proc.stdout), proc.stdout[-2000:]
    assert "Start the job on every node" not in proc.stdout


def test_a_node_failing_its_health_check_is_refused_or_left_out(local_cluster, tmp_path):
    """The healthcheck role's program (its file, as the role installs it) with a config per node:
    node2's asks for more free disk than any machine has, a fixture of a node that fails its quick
    checks. By default the run is refused naming node2 and the check; with health_checks=skip the run
    is planned again without node2 and trains on node1 alone."""
    inv = yaml.safe_load(local_cluster.read_text())
    hosts = inv["all"]["children"]["cluster"]["hosts"]
    program = REPO / "roles/healthcheck/files/awsome_healthcheck.py"
    for node, need_gib in (("node1", 0), ("node2", 10**9)):
        cfg = tmp_path / f"{node}.json"
        cfg.write_text(json.dumps({"disk_paths": [str(tmp_path)], "disk_min_free_gib": need_gib,
                                   "mem_min_available_gib": 0, "nofile_min": 1024}))
        hosts[node].update(launcher_health_config=str(cfg), launcher_health_program=str(program))
    checked = tmp_path / "inventory.yml"
    checked.write_text(yaml.safe_dump(inv))
    params = ["-e", '{"params": {"steps": 6, "warmup_steps": 1, "checkpoint_every": 0}}']
    refused = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", *params, inventory=checked)
    assert refused.returncode != 0
    assert re.search(r"node2: health check failed: disk: \S+ [^;]*GiB free < 1e\+09 GiB", refused.stdout), \
        refused.stdout[-2000:]
    assert "node1: health check failed" not in refused.stdout
    assert "Start the job on every node" not in refused.stdout

    skipped = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", "-e", "health_checks=skip",
                           *params, inventory=checked)
    assert skipped.returncode == 0, skipped.stdout[-3000:]
    assert "running on node1" in skipped.stdout
    summary = summary_of(results_of(skipped))
    assert summary["status"] == "passed" and summary["nodes"] == ["node1"], summary
    assert summary["ranks_reported"] == [0]


FAKE_NSYS = r"""#!/bin/sh
# A stand-in for Nsight Systems (none on this machine): `--version`, and `profile [options] --output
# PATH ... COMMAND` writes PATH.nsys-rep (%h host, %p pid, as nsys expands them) and runs COMMAND.
[ "$1" = "--version" ] && { echo "NVIDIA Nsight Systems version 2025.3.1.90-253135822126v0"; exit 0; }
shift
out=
while [ $# -gt 0 ]; do
  case "$1" in --output) out=$2; shift 2 ;; --force-overwrite) shift 2 ;; --*) shift ;; *) break ;; esac
done
out=$(printf '%s' "$out" | sed "s/%h/$(hostname)/; s/%p/$$/")
printf 'profiled: %s\n' "$*" > "$out.nsys-rep"
exec "$@"
"""


def test_profiler_nsys_wraps_every_nodes_ranks_and_its_reports_come_back(local_cluster, tmp_path):
    """-e profiler=nsys through the launcher with a stand-in nsys (this machine has no Nsight Systems;
    the GPU machine's copy cannot write reports): the preflight finds it on every node, each node's
    rank command runs under it, the reports are fetched into the node's results and the report links
    them."""
    nsys = tmp_path / "nsys"
    nsys.write_text(FAKE_NSYS)
    nsys.chmod(0o755)
    proc = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", "-e", "profiler=nsys",
                        "-e", f"launcher_nsys={nsys}",
                        "-e", '{"params": {"steps": 6, "warmup_steps": 1, "checkpoint_every": 0}}',
                        inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-3000:]
    run_dir = results_of(proc)
    assert summary_of(run_dir)["status"] == "passed"
    for node in ("node1", "node2"):
        (report,) = (run_dir / "nodes" / node).glob(f"nsys-{node}-*.nsys-rep")
        assert "torch.distributed.run" in report.read_text() and "--output-dir" in report.read_text()
    assert ".nsys-rep" in (run_dir / "report.html").read_text()


def test_the_old_run_nccl_playbook_still_works_for_one_release_and_says_so(tmp_path):
    """Rendered only (nothing reaches a node): the old name runs the renamed case, with a deprecation."""
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"cluster": {"hosts": {"n1": {}, "n2": {}}}}}}))
    proc = run_playbook("playbooks/run_nccl.yml", "-e", "preset=cpu-small", "-e", "render_only=true",
                        inventory=inv)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "[DEPRECATED] playbooks/run_nccl.yml" in proc.stdout and "run_collectives.yml" in proc.stdout
    rendered = Path(proc.stdout.split("rendered: ")[1].split()[0].strip("'\""))
    assert "code/collectives/src/collectives.py" in (rendered / "n1" / "launch.sh").read_text()
