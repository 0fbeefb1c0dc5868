"""Fixtures for integration tests: the local simulated cluster (playbooks/local_cluster.yml) and the
training container image (`make image PROFILE=training-cpu`)."""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from helpers import REPO, ansible_env, run, run_playbook

sys.path.insert(0, str(REPO / "tests" / "fixtures" / "mirror"))
import build_mirror  # noqa: E402
import serve  # noqa: E402

CLUSTER_PLAYBOOK = "playbooks/local_cluster.yml"
CLUSTER_STATE = REPO / ".state" / "cluster"
CLUSTER_NODES = 2
# The cluster (netns nodes, bridge dtbr0, .state/cluster) is one per machine: a second pytest session
# waits here for the first to finish instead of tearing the cluster down under it.
CLUSTER_LOCK = Path("/run/lock/awsome-local-cluster.lock")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "destroys_local_cluster: removes the session cluster; runs after every other test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The session cluster is shared by many files: a test that tears it down must come last.
    last = [item for item in items if item.get_closest_marker("destroys_local_cluster")]
    items[:] = [item for item in items if item not in last] + last


def cluster(state: str, *extra: str):
    return run_playbook(CLUSTER_PLAYBOOK, "-e", f"cluster_state={state}", *extra, timeout=600)


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[Path]:
    """A 2-node simulated cluster for the whole session; yields its inventory file."""
    CLUSTER_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with CLUSTER_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield from _session_cluster()


def _session_cluster() -> Iterator[Path]:
    proc = cluster("present", "-e", f"cluster_nodes={CLUSTER_NODES}")
    assert proc.returncode == 0, f"creating the local cluster failed:\n{proc.stdout[-6000:]}"
    inventory = CLUSTER_STATE / "inventory.yml"
    yield inventory
    if not inventory.exists():  # the last thing `absent` removes: a test already removed the cluster
        return
    proc = cluster("absent")
    assert proc.returncode == 0, f"removing the local cluster failed:\n{proc.stdout[-6000:]}"


# ---------------------------------------------------------------- the training image
TRAINING_IMAGE = "localhost/awsome-training:cpu"
TRAINING_SQSH = REPO / "build" / "images" / "awsome-training+cpu.sqsh"
TRAINING_IMAGE_LOCK = Path("/run/lock/awsome-training-image.lock")
TRAINING_IMAGE_LOG = REPO / ".state" / "training-image.log"  # what the last bake printed


class TrainingImage(NamedTuple):
    ref: str  # the podman image
    sqsh: Path  # its Enroot squashfs


@pytest.fixture(scope="session")
def training_image(tmp_path_factory: pytest.TempPathFactory) -> TrainingImage:
    """`make image PROFILE=training-cpu`, for real, once per session: the podman image and the
    Enroot squashfs. The EFA installer comes from the fixture mirror (tests/fixtures/mirror), the
    torch CPU wheel from pip's local wheels; the bake's output goes to .state/training-image.log.
    Baked in every session rather than reused when it looks fresh: the bake is what proves the
    roles produce this image (test_packer.py reads it back), and it replaces the suite's earlier
    local bake. AWSOME_REUSE_TRAINING_IMAGE=1 (development only: the image may be older than the
    code) takes an existing image and squashfs as they are."""
    if os.environ.get("AWSOME_REUSE_TRAINING_IMAGE") == "1" and TRAINING_SQSH.is_file() \
            and run(["podman", "image", "exists", TRAINING_IMAGE]).returncode == 0:
        return TrainingImage(TRAINING_IMAGE, TRAINING_SQSH)
    mirror = tmp_path_factory.mktemp("training-image-mirror")
    build_mirror.build(mirror, REPO / "stack" / "versions.yml")
    TRAINING_IMAGE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with TRAINING_IMAGE_LOCK.open("w") as lock, serve.serve(mirror) as url:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second session waits instead of baking over this one
        env = ansible_env(AWSOME_ARTIFACT_MIRROR=url,
                          AWSOME_MIRROR_OVERLAY=str(mirror / "mirror_versions.yml"))
        proc = run(["make", "--no-print-directory", "-o", "setup", "-o", "images", "image",
                    "PROFILE=training-cpu"], env=env, timeout=900)
    TRAINING_IMAGE_LOG.parent.mkdir(exist_ok=True)
    TRAINING_IMAGE_LOG.write_text(proc.stdout)
    assert proc.returncode == 0, f"make image PROFILE=training-cpu failed:\n{proc.stdout[-8000:]}"
    return TrainingImage(TRAINING_IMAGE, TRAINING_SQSH)
