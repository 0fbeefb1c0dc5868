"""`ansible-test sanity` (ansible-core's checks for a collection) passes on the Ansible content.

tests/sanity/run_sanity.sh runs it offline (docs/development.md, "ansible-test sanity"); its venvs
are cached under .state/sanity, so only a fresh machine pays for installing them (a few minutes).
Every default test runs except those whose tool this machine lacks (ansible-test skips them with a
warning: shellcheck, pslint). The paths are the collection's Ansible content; tests/, test_cases/
(training code run by torchrun) and scripts/ are not plugins and are left to ruff.
"""

from __future__ import annotations

import subprocess

from helpers import REPO

PATHS = ["plugins/", "roles/", "playbooks/", "lifecycle/", "meta/", "molecule/", "inventories/",
         "galaxy.yml"]
# TODO(lead): these five still fail (ansible-lint's `sanity` rule permits no ignore entry for what
# they fail) - each needs its fix (listed in the helper's report) and then its line here removed.
NOT_YET: set[str] = set()  # files left out of sanity until fixed (none now)


def targets() -> list[str]:
    """PATHS as files git knows (tracked or new), less NOT_YET."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "--", *PATHS], cwd=REPO,
                           text=True, capture_output=True, check=True).stdout.split()
    return sorted(f for f in files if f not in NOT_YET and (REPO / f).exists())


def test_ansible_test_sanity_passes():
    proc = subprocess.run([str(REPO / "tests" / "sanity" / "run_sanity.sh"), *targets()], cwd=REPO, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1500, check=False)
    errors = [line for line in proc.stdout.splitlines() if line.startswith(("ERROR", "FATAL"))]
    assert proc.returncode == 0 and not errors, "\n".join(errors[:60]) or proc.stdout[-6000:]
    # It ran the checks, not nothing: the ones that found problems here before.
    for name in ("validate-modules", "pylint", "pep8", "import", "ansible-doc", "action-plugin-docs"):
        assert f'Running sanity test "{name}"' in proc.stdout
