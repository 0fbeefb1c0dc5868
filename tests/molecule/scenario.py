"""Run a Molecule scenario from pytest (shared by the scenario-wrapping tests of this directory)."""

from __future__ import annotations

import re

from helpers import REPO, VENV_BIN, ansible_env, run


def molecule_test(scenario: str, timeout: float = 1800, **env: str) -> str:
    """`molecule test -s <scenario>` with `env` added; asserts it passed, that the idempotence step
    found nothing to change and that the verifier ran and passed. Returns its output, colours removed."""
    proc = run([str(VENV_BIN / "molecule"), "test", "-s", scenario], env=ansible_env(**env), timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-8000:]
    out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)  # molecule 26 colours its summary lines
    assert re.search(r"idempotence\W+Executed: Successful", out), out[-4000:]
    assert re.search(r"verify\W+Executed: Successful", out), out[-4000:]
    return out


def verified_count(out: str) -> int:
    """How many testinfra tests passed (the verifier's pytest summary line); none may have failed."""
    assert not re.search(r"\d+ failed(?!=)", out), out[-4000:]  # a pytest count, not the recap's failed=0
    found = re.search(r"=+ (\d+) passed in ", out)
    assert found, out[-4000:]
    return int(found.group(1))


def count_testinfra_tests(scenario: str) -> int:
    """How many tests the scenario's testinfra files define (all of them must run and pass)."""
    files = (REPO / "molecule" / scenario / "tests").glob("test_*.py")
    return sum(len(re.findall(r"^def test_", f.read_text(), re.M)) for f in files)
