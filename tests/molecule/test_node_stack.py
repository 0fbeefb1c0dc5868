"""Node stack part A (common, nvidia_driver, cuda_toolkit, gdrcopy) in the node_stack scenario.

The scenario installs from the TEST FIXTURE mirror: fake NVIDIA driver and CUDA runfiles, a fake
Fabric Manager archive and a gdrcopy tarball with a trivial Makefile stand in for vendor payloads
that cannot be downloaded here. It tests the roles' logic (fetch + verify, detect the older driver
and upgrade it, flags, services, links, configuration, the stack record) and idempotence, not GPUs.
"""

from __future__ import annotations

import pytest
from scenario import count_testinfra_tests, molecule_test, verified_count


@pytest.mark.slow
def test_node_stack_scenario(artifact_mirror):
    out = molecule_test("node_stack", AWSOME_ARTIFACT_MIRROR=artifact_mirror.url,
                        AWSOME_MIRROR_OVERLAY=str(artifact_mirror.overlay))
    assert verified_count(out) == count_testinfra_tests("node_stack")
