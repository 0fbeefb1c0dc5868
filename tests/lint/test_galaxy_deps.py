"""galaxy.yml declares every collection the tree calls, and the built tarball installs and runs alone.

The dependencies come from the `ansible` PyPI package's bundled copies (no Galaxy here): the same
lifecycle/pack_collection.py that fills the HyperPod bundle's dependencies/ packs them into tarballs,
and `ansible-galaxy collection install --offline` resolves galaxy.yml's ranges against those.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.compat.version import LooseVersion

from helpers import REPO, VENV_BIN

GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
SCANNED = ["roles", "playbooks", "plugins", "lifecycle", "molecule", "inventories", "meta"]
SUFFIXES = {".yml", ".yaml", ".py", ".j2", ".sh", ".cfg"}
OURS = f"{GALAXY['namespace']}.{GALAXY['name']}"
FQCN = re.compile(r"(?<![\w.])(?:ansible_collections\.)?([a-z0-9_]+)\.([a-z0-9_]+)\.[a-z_][a-z0-9_]*")
# Python imports of ansible-core itself (ansible.utils.display, ansible.module_utils.basic, ...)
# look like FQCNs of the ansible.utils collection; they are not.
CORE_IMPORT = re.compile(r"^\s*(from|import)\s+ansible\.[\w.]+.*$", re.M)


def bundled_root() -> Path:
    out = subprocess.run([str(VENV_BIN / "python"), "-c",
                          "import ansible, os; print(os.path.dirname(os.path.dirname(ansible.__file__)))"],
                         text=True, capture_output=True, check=True).stdout.strip()
    return Path(out) / "ansible_collections"


BUNDLED = bundled_root()


def bundled_version(fqcn: str) -> str:
    manifest = json.loads((BUNDLED / fqcn.replace(".", "/") / "MANIFEST.json").read_text())
    return manifest["collection_info"]["version"]


def used_collections() -> dict[str, set[str]]:
    """{collection: files that call it}, for every installed collection named in the scanned dirs."""
    used: dict[str, set[str]] = {}
    for top in SCANNED:
        for path in (REPO / top).rglob("*"):
            if path.suffix not in SUFFIXES or not path.is_file() or "__pycache__" in path.parts:
                continue
            text = path.read_text(errors="replace")
            if path.suffix == ".py":
                text = CORE_IMPORT.sub("", text)
            for ns, name in FQCN.findall(text):
                fqcn = f"{ns}.{name}"
                installed = (BUNDLED / ns / name / "MANIFEST.json").is_file()
                if fqcn not in ("ansible.builtin", OURS) and installed:
                    used.setdefault(fqcn, set()).add(str(path.relative_to(REPO)))
    return used


def test_every_collection_used_is_declared_and_every_declared_one_used():
    used = used_collections()
    declared = set(GALAXY["dependencies"])
    missing = {c: sorted(files)[:3] for c, files in used.items() if c not in declared}
    assert not missing, f"galaxy.yml dependencies lack collections the tree calls: {missing}"
    assert not declared - set(used), f"galaxy.yml declares collections nothing calls: {declared - set(used)}"
    # The scan itself works: the ones the issue named are found where they are known to be.
    assert "roles/lustre_client/tasks/configure.yml" in used["ansible.posix"]
    assert "plugins/modules/s3_sync.py" in used["amazon.aws"]


@pytest.mark.parametrize("fqcn", sorted(GALAXY["dependencies"]))
def test_range_holds_the_bundled_version(fqcn):
    """Every range admits the version the tests run with, and stops before the next major."""
    spec, have = GALAXY["dependencies"][fqcn], LooseVersion(bundled_version(fqcn))
    parts = dict(re.fullmatch(r"(>=)([\d.]+),(<)([\d.]+)", spec).group(1, 2, 3, 4)[i:i + 2]
                 for i in (0, 2))
    assert LooseVersion(parts[">="]) <= have < LooseVersion(parts["<"]), (fqcn, spec, str(have))
    assert parts["<"] == f"{int(parts['>='].split('.')[0]) + 1}.0.0", (fqcn, spec)


PLAY = """
- name: The installed collection runs with only its tarball and its dependencies' tarballs
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Plan a run with the collection's own module and module_utils
      awsome.distributed_training.testcase_plan:
        test_case: fsdp
        test_cases_dir: {test_cases}
        preset: cpu-tiny
        hosts: [n1, n2]
        target: cluster
      register: planned
    - name: A dependency's filter resolves from the same path
      ansible.builtin.assert:
        that:
          - planned.plan.world_size == 2
          - "('x' | community.general.dict_kv('k')) == {{'k': 'x'}}"
"""


def test_built_tarball_installs_offline_into_an_empty_path_and_runs(collection_tarball, tmp_path):
    """`ansible-galaxy collection build`, dependency tarballs packed from the venv, an --offline install
    into an empty path, and a play that sees only that path (site-packages scanning off)."""
    colls = tmp_path / "collections"
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")  # not the repository's config
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(PATH=f"{VENV_BIN}:{env['PATH']}", ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(colls), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false")

    def sh(*cmd: str) -> str:
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300,
                              check=False)
        assert proc.returncode == 0, f"{cmd}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        return proc.stdout

    # The dependency tarballs only change with the `ansible` package: packed once, kept in .state.
    cache = REPO / ".state" / "galaxy-deps"
    cache.mkdir(parents=True, exist_ok=True)
    tarballs = [str(collection_tarball)]
    for fqcn in GALAXY["dependencies"]:
        packed = cache / f"{fqcn.replace('.', '-')}-{bundled_version(fqcn)}.tar.gz"
        if not packed.is_file():
            sh(str(VENV_BIN / "python"), str(REPO / "lifecycle" / "pack_collection.py"),
               str(BUNDLED / fqcn.replace(".", "/")), str(cache))
        tarballs.append(str(packed))
    assert len(tarballs) == 1 + len(GALAXY["dependencies"])
    sh("ansible-galaxy", "collection", "install", "--offline", "-p", str(colls), *tarballs)

    listed = sh("ansible-galaxy", "collection", "list", "--format", "json", "-p", str(colls))
    installed = {c for path in json.loads(listed).values() for c in path if not c.startswith("ansible._")}
    assert installed == {OURS, *GALAXY["dependencies"]}, installed

    (tmp_path / "play.yml").write_text(PLAY.format(test_cases=REPO / "test_cases"))
    out = sh("ansible-playbook", "play.yml")
    assert "failed=0" in out and "ok=2" in out, out
