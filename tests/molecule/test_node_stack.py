"""Node stack part A (common, nvidia_driver, cuda_toolkit, gdrcopy) in the node_stack scenario.

The scenario installs from the TEST FIXTURE mirror: fake NVIDIA driver and CUDA runfiles, a fake
Fabric Manager archive and a gdrcopy tarball with a trivial Makefile stand in for vendor payloads
that cannot be downloaded here. It tests the roles' logic (fetch + verify, detect the older driver
and upgrade it, flags, services, links, configuration, the stack record) and idempotence, not GPUs.
"""

from __future__ import annotations

import re

import pytest

from helpers import VENV_BIN, ansible_env, run


@pytest.mark.slow
def test_node_stack_scenario(artifact_mirror):
    env = ansible_env(AWSOME_ARTIFACT_MIRROR=artifact_mirror.url,
                      AWSOME_MIRROR_OVERLAY=str(artifact_mirror.overlay))
    proc = run([str(VENV_BIN / "molecule"), "test", "-s", "node_stack"], env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-8000:]
    assert "idempotence: Executed: Successful" in proc.stdout
    verified = re.search(r"=+ (\d+) passed in ", proc.stdout)  # pytest's summary line of the verifier
    assert verified and int(verified.group(1)) >= 10, proc.stdout[-4000:]
    assert not re.search(r"\d+ failed(?!=)", proc.stdout)  # a pytest count, not the recap's failed=0
