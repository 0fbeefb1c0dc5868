"""Fabric roles: efa, nccl, neuron, container_runtime, enroot, lustre_client.

The Molecule scenario installs from the TEST FIXTURE mirror (tests/fixtures/mirror): a fake EFA
installer, fake enroot .debs and signed fixture apt repositories stand in for vendor payloads that
cannot be downloaded here. It tests the roles' logic (flags, version detection and upgrade, pins,
holds, rendered configuration), not EFA/NCCL/Neuron on hardware. FSx cannot be mounted in a
container: only the fstab entry and module options are checked.
"""

from __future__ import annotations

import build_apt_repos  # tests/fixtures/mirror, put on sys.path by conftest.py
import pytest
from scenario import count_testinfra_tests, molecule_test, verified_count

from helpers import REPO, run_playbook

PLAYBOOK = "tests/molecule/playbooks/fabric_role.yml"


@pytest.fixture(scope="module")
def fabric_mirror(artifact_mirror):
    """The session's artifact mirror plus the fabric roles' signed fixture apt repositories."""
    build_apt_repos.build(artifact_mirror.directory, REPO / "stack" / "versions.yml")
    return artifact_mirror


@pytest.mark.slow
def test_node_fabric_scenario(fabric_mirror):
    out = molecule_test("node_fabric", AWSOME_ARTIFACT_MIRROR=fabric_mirror.url,
                        AWSOME_MIRROR_OVERLAY=str(fabric_mirror.overlay))
    assert verified_count(out) == count_testinfra_tests("node_fabric")


@pytest.mark.parametrize(("role", "extra", "message"), [
    ("efa", ["-e", "efa_installer_version=1.41"],
     "efa_installer_version '1.41' is not a release number like 1.41.0"),
    ("efa", ["-e", "stack_container=true", "-e", "efa_skip_kmod=false"],
     "efa_container is true but efa_skip_kmod is false"),
    ("neuron", ["-e", "stack_container=true", "-e", "neuron_install_driver=true"],
     "the driver cannot be built in a container image"),
    ("lustre_client", ["-e", '{"lustre_client_mounts": [{"dns_name": "fs-1.fsx", "path": "/fsx"}]}'],
     "lustre_client_mounts entries need dns_name, mount_name and an absolute path"),
])
def test_bad_input_fails_before_changes(role, extra, message):
    proc = run_playbook(PLAYBOOK, "-e", f"fabric_role={role}", *extra, timeout=300)
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout[-4000:]
    recap = proc.stdout[proc.stdout.index("PLAY RECAP"):]
    assert "changed=0" in recap, recap
