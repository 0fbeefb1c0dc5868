"""Test cases inside the training image, on the 2-node simulated cluster.

The image is the real `make image PROFILE=training-cpu` bake (fixture `training_image`). podman on
each node starts the container in that node's network, hostname and IPC namespaces, so a rank in
the image sees the same node as a bare rank would. Also: the case's own command (launch mode
`command`), a timeout that must leave no container behind, bad requests refused in one line before
anything starts, and the Slurm + Pyxis launch rendered (Pyxis and Enroot cannot be built here: their
sources are not reachable; docs/containers.md says so).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_launcher import FAULTY, assert_trained_on_every_node, faulty, no_job_left, results_of, summary_of

from helpers import REPO, ansible_env, run_playbook

pytestmark = pytest.mark.slow


def containers_of(run_id: str) -> list[str]:
    """Containers of a run still known to podman (running or not): the nodes share this storage."""
    out = subprocess.run(["podman", "ps", "-a", "--filter", f"label=org.awsome.run={run_id}",
                          "--format", "{{.Names}}"],
                         env=ansible_env(), text=True, capture_output=True, check=True)
    return out.stdout.split()


def test_fsdp_trains_inside_the_training_image_on_both_nodes(local_cluster, training_image):
    proc = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", "-e", "container_image=default",
                        "-e", json.dumps({"params": {"steps": 12}}), inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-4000:]
    run_dir = results_of(proc)
    s = assert_trained_on_every_node(run_dir, steps=12)
    assert s["container"]["image"] == training_image.ref
    for node in ("node1", "node2"):
        seen = s["node_environment"][node]
        # What the image itself holds, read from it by the preflight: its stack record and torch.
        stack = seen["image"]["stack"]
        assert seen["image"]["runtime"] == "podman" and stack["profile"] == "training-cpu"
        assert seen["framework_version"] == stack["components"]["torch"]
    report = (run_dir / "report.html").read_text()
    assert training_image.ref in report
    assert containers_of(s["run_id"]) == []
    no_job_left(local_cluster)


def test_the_cases_own_command_runs_once_per_node(local_cluster):
    proc = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", "-e", "launch_mode=command",
                        "-e", json.dumps({"params": {"steps": 8}}), inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-4000:]
    s = assert_trained_on_every_node(results_of(proc), steps=8)
    assert s["launch_mode"] == "command" and s["container"] is None


def test_a_timeout_stops_the_containers_too(local_cluster, training_image):
    proc = faulty(local_cluster, "-e", "timeout_s=10", "-e", f"container_image={training_image.ref}",
                  params={"hang": True})
    assert proc.returncode != 0 and "timed out after 10s" in proc.stdout
    s = summary_of(results_of(proc))
    assert s["container"]["image"] == training_image.ref
    # Nothing of the run is left: no container on any node (all nodes share this podman storage).
    assert containers_of(s["run_id"]) == []
    no_job_left(local_cluster)


@pytest.fixture()
def case_with_a_missing_mount(tmp_path: Path) -> Path:
    cases = tmp_path / "cases"
    shutil.copytree(FAULTY, cases)
    manifest = yaml.safe_load((cases / "faulty" / "testcase.yml").read_text())
    manifest["container"] = {"mounts": [str(tmp_path / "no-such-dataset") + ":/data"]}
    (cases / "faulty" / "testcase.yml").write_text(yaml.safe_dump(manifest))
    return cases


@pytest.mark.parametrize(("extra", "message"), [
    (["-e", "container_image=localhost/awsome-no-such-image:1"],
     "node1: container image localhost/awsome-no-such-image:1 not found (build it: make image "
     "PROFILE=training-cpu"),
    # The minbase image has no python3 at all, let alone torch.
    (["-e", "container_image=localhost/debian-base:bookworm"],
     "node1: image localhost/debian-base:bookworm cannot import torch"),
    (["-e", "container_image=/srv/images/none.sqsh", "-e", "launcher_container_runtime=enroot"],
     "node1: enroot is not installed (the enroot role installs it)"),
])
def test_bad_container_requests_are_refused_before_anything_starts(local_cluster, extra, message):
    before = set((REPO / "results").glob("*"))
    proc = faulty(local_cluster, *extra)
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout[-3000:]
    assert "nothing was launched" in proc.stdout and "Start the job on every node" not in proc.stdout
    assert set((REPO / "results").glob("*")) == before


def test_a_missing_mount_source_is_refused(local_cluster, training_image, case_with_a_missing_mount):
    proc = run_playbook("playbooks/run_test_case.yml", "-e", "test_case=faulty", "-e", "preset=cpu-tiny",
                        "-e", f"launcher_test_cases_dir={case_with_a_missing_mount}",
                        "-e", f"container_image={training_image.ref}", inventory=local_cluster)
    assert proc.returncode != 0
    missing = case_with_a_missing_mount.parent / "no-such-dataset"
    assert f"node1: container mount source {missing} does not exist" in proc.stdout, proc.stdout[-3000:]
    assert f"node2: container mount source {missing} does not exist" in proc.stdout


def test_slurm_with_a_container_renders_the_pyxis_launch(local_cluster, training_image):
    """Pyxis and Enroot cannot be built here (their sources are not reachable): the launch is
    rendered and checked line by line; its Pyxis run is for a machine that has them."""
    proc = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", "-e", "mode=slurm",
                        "-e", f"container_image={training_image.sqsh}", "-e", "render_only=true",
                        inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-3000:]
    rendered = Path(proc.stdout.split("rendered: ")[1].split()[0].strip("'\""))
    sbatch = (rendered / "node1" / "sbatch.sh").read_text()
    srun = sbatch[sbatch.index("srun "):]
    assert f"--container-image={training_image.sqsh}" in srun and "--container-mounts=" in srun
    launch = (rendered / "node2" / "launch.sh").read_text()
    # Inside the image the launch runs the image's python; Pyxis, not launch.sh, starts the container.
    assert "python3 -m torch.distributed.run" in launch and "podman run" not in launch
    assert 'export NNODES=2 NODE_RANK=1' in launch
