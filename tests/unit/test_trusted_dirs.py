"""Run and cache directories another user could have planted (plugins/module_utils/trusted_dirs.py).

The launcher's preflight refuses a node whose work, shared or environments root fails these rules.
Directories "planted by another user" are made here by chown to nobody (the tests run as root).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import load_module

REPO = Path(__file__).resolve().parents[2]
trusted_dirs = load_module(REPO / "plugins" / "module_utils" / "trusted_dirs.py")

NOBODY = 65534
PLANTED = "another user could have planted it"


def mkdir(path: Path, mode: int = 0o755, uid: int = 0) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    os.chown(path, uid, -1)
    return path


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """A trusted place to build the cases in (pytest's tmp_path lies under sticky /tmp)."""
    return mkdir(tmp_path / "root")


def test_own_directories_and_sticky_parents_are_trusted(root: Path) -> None:
    assert trusted_dirs.directory_problem(str(mkdir(root / "work"))) is None
    assert trusted_dirs.directory_problem(str(root / "missing" / "run")) is None  # created later by us
    # /tmp-like: world-writable with the sticky bit, owned by root; what we own below it is ours.
    sticky = mkdir(root / "tmp", 0o1777)
    assert trusted_dirs.directory_problem(str(mkdir(sticky / "mine", 0o700))) is None
    # Another user's own directory is fine as long as it is not in our path.
    mkdir(root / "theirs", 0o755, NOBODY)
    assert trusted_dirs.directory_problems([str(root / "work"), "", str(root / "work")]) == []


def test_planted_and_writable_directories_are_refused_in_one_line(root: Path) -> None:
    planted = mkdir(root / "tmp" / "awsome", 0o755, NOBODY)
    os.chmod(root / "tmp", 0o1777)
    cases = {
        # a directory another user made first, in a place everyone may create in
        str(planted): f"{planted} belongs to nobody (uid {NOBODY}), not root: {PLANTED}",
        # what we would create below it is theirs to swap
        str(planted / "runs" / "r1"): f"{planted} belongs to nobody (uid {NOBODY}), not root",
        str(mkdir(root / "open", 0o777)): f"{root}/open is writable by everyone (mode 0777)",
        str(mkdir(root / "cache", 0o1777)): f"{root}/cache is writable by everyone (mode 1777)",
        str(mkdir(root / "grp", 0o775)): f"{root}/grp is writable by its group (mode 0775)",
        str(mkdir(root / "open2", 0o777) / "run"):
            f"{root}/open2 is writable by everyone (mode 0777): another user could swap what lies under it",
    }
    (root / "link").symlink_to(root / "open")
    cases[str(root / "link")] = f"{root}/link is a symbolic link (to {root}/open): refusing to follow it"
    (root / "file").write_text("")
    cases[str(root / "file")] = f"{root}/file is not a directory"
    for path, start in cases.items():
        problem = trusted_dirs.directory_problem(path)
        assert problem and problem.startswith(start) and "\n" not in problem, (path, problem)
    assert len(trusted_dirs.directory_problems(list(cases))) == len(cases)


def test_a_users_own_directory_is_trusted_for_that_user_only(root: Path) -> None:
    theirs = mkdir(root / "theirs", 0o700, NOBODY)
    assert trusted_dirs.directory_problem(str(theirs), uid=NOBODY) is None
    assert trusted_dirs.directory_problem(str(theirs), uid=54321) == (
        f"{theirs} belongs to nobody (uid {NOBODY}), not uid 54321 or root: {PLANTED}")
