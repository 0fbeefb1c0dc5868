"""Fixtures shared by every test directory (plain helpers live in helpers.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

# ansible-core replaces sys.intern with a patch object when imported; torch._dynamo (imported
# lazily, e.g. by torch.optim) then fails to load in the same process. Load it first.
with contextlib.suppress(ImportError):
    import torch._dynamo  # noqa: F401

from helpers import REPO, ansible_env, run, run_playbook  # noqa: F401  (re-exported for older imports)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Work units for `pytest -n N --dist loadgroup` (make test): the tests of one Molecule scenario
    share its containers, and every module that uses the simulated cluster shares the one cluster of
    this machine, so each of those runs on one worker, in order; everything else is spread freely."""
    cluster_modules = {item.path for item in items if "local_cluster" in getattr(item, "fixturenames", ())}
    for item in items:
        if item.path in cluster_modules:
            item.add_marker(pytest.mark.xdist_group("local-cluster"))
        elif item.path.parent.name == "molecule":
            item.add_marker(pytest.mark.xdist_group(f"molecule-{item.path.stem}"))
