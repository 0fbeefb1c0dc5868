"""The preflight's framework probe: it finds the package and reads its version without importing it."""

import importlib.metadata
import json
import subprocess
import sys

from ansible_collections.awsome.distributed_training.plugins.modules.launch_preflight import PROBE


def probe(module: str, *tools: str, path: str = "") -> dict:
    env = {"PYTHONPATH": path} if path else None
    out = subprocess.run([sys.executable, "-c", PROBE, module, *tools], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_an_installed_framework_is_found_with_the_version_its_metadata_holds():
    assert probe("torch")["version"] == importlib.metadata.version("torch")


def test_a_module_named_unlike_its_distribution_gets_the_distribution_version():
    # The module is yaml; the distribution that installs it is PyYAML.
    assert probe("yaml")["version"] == importlib.metadata.version("PyYAML")


def test_a_missing_framework_is_one_line_naming_it():
    assert probe("no_such_framework")["error"] == "ModuleNotFoundError: No module named 'no_such_framework'"


def test_the_framework_is_not_imported(tmp_path):
    # A package whose import would fail: found (and reported present, it has no metadata), not run.
    (tmp_path / "explodes").mkdir()
    (tmp_path / "explodes" / "__init__.py").write_text("raise RuntimeError('imported')\n")
    result = probe("explodes", "sh", "no-such-tool", path=str(tmp_path))
    assert (result.get("error"), result["version"]) == (None, "present")
    assert result["tools"]["sh"].endswith("/sh") and result["tools"]["no-such-tool"] == ""
