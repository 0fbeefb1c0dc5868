"""Fixtures shared by every test directory (plain helpers live in helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import REPO, ansible_env, run, run_playbook  # noqa: F401  (re-exported for older imports)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
