"""roles/testcase_env through playbooks/testcase_env.yml on this machine (connection local, no
simulated cluster): a case's framework lands in its own virtualenv, a second run changes nothing,
bad input fails in one line before anything is created.

The jax virtualenv (~620 MB: jax, jaxlib, scipy, numpy) is built once into .state/testcase_envs and
kept between runs (tests/unit/test_jax.py uses the same one); pip's wheel cache makes a rebuild
cost ~90 s here instead of a download. The fresh-build test installs one small pinned package.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO, run_playbook

pytestmark = pytest.mark.slow

ENVS = REPO / ".state" / "testcase_envs"
PLAYBOOK = "playbooks/testcase_env.yml"


def _recap(out: str) -> dict[str, int]:
    line = re.search(r"localhost\s+:\s+(.*)", out.split("PLAY RECAP")[-1]).group(1)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


@pytest.fixture(scope="module")
def inventory(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inv") / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"children": {"cluster": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}}}}}}))
    return path


def _build(inventory: Path, case: str, root: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_playbook(PLAYBOOK, "-e", f"test_case={case}", "-e", f"testcase_env_root={root}", *extra,
                        inventory=inventory, timeout=900)


def _fail_message(out: str) -> str:
    """The failed task's msg (the result block Ansible prints, indented YAML, after FAILED! =>)."""
    block = out.split("FAILED! =>", 1)[1].splitlines()[1:]
    lines = []
    for line in block:
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return yaml.safe_load("\n".join(lines))["msg"]


def test_jax_env_is_built_from_the_manifest_pins_and_a_second_run_changes_nothing(inventory):
    first = _build(inventory, "jax", ENVS)
    assert first.returncode == 0, first.stdout[-5000:]
    second = _build(inventory, "jax", ENVS)
    assert second.returncode == 0, second.stdout[-5000:]
    assert _recap(second.stdout)["changed"] == 0, second.stdout[-5000:]
    python = ENVS / "jax" / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import jax, sys; print(jax.__version__, sys.prefix)"],
                           text=True, capture_output=True, check=True)
    version, prefix = probe.stdout.split()
    pins = yaml.safe_load((REPO / "test_cases/jax/testcase.yml").read_text())["environment"]["requirements"]
    assert f"jax=={version}" in pins
    # The framework comes from the case's venv, never from the collection's.
    assert Path(prefix) == ENVS / "jax" and Path(prefix) != Path(sys.prefix)
    record = json.loads((ENVS / "jax" / "awsome-env.json").read_text())
    assert record["test_case"] == "jax" and record["requirements"] == pins
    assert record["installed"]["jax"] == version and record["installed"]["jaxlib"] == version


def _case(cases: Path, name: str, environment: dict | None) -> None:
    (cases / name).mkdir(parents=True)
    manifest = {"name": name, "entrypoint": "x.py", "parameters": {}, "presets": {}, "metrics": {},
                "success": {}}
    if environment is not None:
        manifest["environment"] = environment
    (cases / name / "testcase.yml").write_text(yaml.safe_dump(manifest))


def test_a_fresh_env_is_created_with_its_pinned_requirement(inventory, tmp_path):
    cases, root = tmp_path / "cases", tmp_path / "envs"
    _case(cases, "tiny", {"venv": "tinyenv", "requirements": ["six==1.17.0"], "import": "six"})
    proc = _build(inventory, "tiny", root, "-e", f"testcase_env_cases_dir={cases}")
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert _recap(proc.stdout)["changed"] >= 2  # the venv with its package, and the record
    out = subprocess.run([str(root / "tinyenv/bin/python"), "-c", "import six; print(six.__version__)"],
                         text=True, capture_output=True, check=True).stdout.strip()
    assert out == "1.17.0"


@pytest.mark.parametrize(("case", "environment", "message"), [
    ("nope", None, r"testcase_env: unknown test case 'nope' \(known: .*loose.*\)"),
    ("plain", None, r"testcase_env: test case 'plain' declares no environment.venv with requirements .*"),
    ("loose", {"venv": "loose", "requirements": ["six>=1", "jax==0.10.2"]},
     r"testcase_env: requirement\(s\) six>=1 of test case 'loose' must pin one version \(name==version\)"),
], ids=["unknown", "no-environment", "unpinned"])
def test_bad_input_fails_in_one_line_before_any_change(inventory, tmp_path, case, environment, message):
    cases, root = tmp_path / "cases", tmp_path / "envs"
    _case(cases, "plain", None)
    _case(cases, "loose", {"venv": "loose", "requirements": ["six>=1", "jax==0.10.2"]})
    proc = _build(inventory, case, root, "-e", f"testcase_env_cases_dir={cases}")
    assert proc.returncode != 0
    assert re.fullmatch(message, _fail_message(proc.stdout)), proc.stdout[-3000:]
    assert not root.exists()  # nothing was created
