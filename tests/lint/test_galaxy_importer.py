"""The Galaxy importer (galaxy-importer, as Galaxy runs it on upload) accepts the built tarball.

tests/lint/galaxy-importer.cfg turns off what needs the network or a container engine (ansible-test
in an image, and ansible-lint and ansible-doc, which other lint tests run); the importer's own
checks run: metadata, README and changelog, every role's README and argument specs, plugin loading.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from collection_build import build

from helpers import REPO, VENV_BIN


def importer(tarball: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}",
               GALAXY_IMPORTER_CONFIG=str(REPO / "tests" / "lint" / "galaxy-importer.cfg"))
    return subprocess.run([str(VENV_BIN / "python"), "-m", "galaxy_importer.main", str(tarball)], cwd=cwd,
                          env=env, text=True, capture_output=True, timeout=300, check=False)


def test_importer_accepts_the_tarball(collection_tarball, tmp_path):
    proc = importer(collection_tarball, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Importer processing completed successfully" in out, out[-4000:]
    assert "Loading role launcher" in out  # it looked at the roles


def test_importer_refuses_a_role_without_readme(collection_tree, tmp_path):
    """The check that failed before role READMEs were generated still fails without one."""
    tree = tmp_path / "tree"
    shutil.copytree(collection_tree, tree, symlinks=True)
    (tree / "roles" / "munge" / "README.md").unlink()
    proc = importer(build(tree, tmp_path / "dist"), tmp_path)
    assert proc.returncode != 0
    assert "No role readme found" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-4000:]
