"""The changelog is kept as fragments with antsibull-changelog (the Ansible ecosystem's tool).

changelogs/fragments/*.yml hold the changes since the last release; `antsibull-changelog release`
moves them into changelogs/changelog.yaml and writes CHANGELOG.md, which is generated output only:
a line written into it by hand fails here (docs/development.md, "Changelog").
"""

from __future__ import annotations

import shutil
import subprocess

from helpers import REPO, VENV_BIN


def changelog(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "antsibull-changelog"), *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300, check=False)


def test_fragments_and_changelog_yaml_lint_clean():
    proc = changelog("lint")
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
    proc = changelog("lint-changelog-yaml", "changelogs/changelog.yaml")
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_changelog_md_is_generated(tmp_path):
    """CHANGELOG.md is what antsibull-changelog renders from changelogs/changelog.yaml (run in a
    copy: generate rewrites the file in place)."""
    for name in ("galaxy.yml", "CHANGELOG.md"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "changelogs", tmp_path / "changelogs")
    proc = changelog("generate", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    generated = (tmp_path / "CHANGELOG.md").read_text()
    assert (REPO / "CHANGELOG.md").read_text() == generated, (
        "CHANGELOG.md is generated: add a changelogs/fragments/*.yml instead of editing it")
