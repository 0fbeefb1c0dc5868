"""The repository is lint-clean: ruff, yamllint and ansible-lint (production profile)."""

from __future__ import annotations

import pytest

from helpers import VENV_BIN, run


@pytest.mark.parametrize("cmd", [
    ["ruff", "check", "."],
    ["yamllint", "--strict", "."],
    ["ansible-lint", "--offline", "--profile", "production"],
], ids=["ruff", "yamllint", "ansible-lint"])
def test_linter_is_clean(cmd):
    proc = run([str(VENV_BIN / cmd[0]), *cmd[1:]], timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:]
