"""Fixtures for integration tests: the local simulated cluster (playbooks/local_cluster.yml)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import REPO, run_playbook

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
