"""Fixtures shared by every test directory (plain helpers live in helpers.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

# ansible-core replaces sys.intern with a patch object when imported; torch._dynamo (imported
# lazily, e.g. by torch.optim) then fails to load in the same process. Load it first.
with contextlib.suppress(ImportError):
    import torch._dynamo  # pylint: disable=unused-import  # noqa: F401

from helpers import REPO, ansible_env, run, run_playbook  # pylint: disable=unused-import  # noqa: F401  (re-exported for older imports)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
