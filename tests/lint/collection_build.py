"""Build the collection tarball from a snapshot of the tree (the lint tests' fixtures use these)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import REPO, VENV_BIN, ansible_env


def snapshot(dest: Path) -> Path:
    """Copy what git tracks (and new files it does not ignore) to dest. Other work edits the tree
    while tests run; a file that changes between `collection build`'s checksum and its copy makes a
    tarball that fails its own checksum on install."""
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout
    subprocess.run(["rsync", "-a", "--from0", "--files-from=-", "--ignore-missing-args", f"{REPO}/",
                    f"{dest}/"], input=files, check=True)
    return dest


def build(src: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--force",
                           "--output-path", str(out), str(src)], env=ansible_env(), text=True,
                          capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return next(out.glob("awsome-distributed_training-*.tar.gz"))
