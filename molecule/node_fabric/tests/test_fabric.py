"""Installed state of the fabric roles on the Molecule node (testinfra).

Vendor payloads are TEST FIXTURES from tests/fixtures/mirror (fake EFA installer, fake .debs in
signed fixture apt repositories): what is checked is the roles' own logic -- which installer
flags ran, which release was detected and upgraded to, which versions apt pinned and held, and
what configuration the roles rendered. Nothing here proves EFA, NCCL or Neuron run on hardware.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

# podman exec directly: the ansible backend costs a whole module run per check.
testinfra_hosts = ["podman://fabric-node"]

# The manifest the roles read (molecule sets MOLECULE_PROJECT_DIRECTORY to the repository root).
REPO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
VERSIONS = yaml.safe_load((REPO / "stack" / "versions.yml").read_text())


def _v(name: str) -> str:
    return str(VERSIONS["stack_versions"][name])


def test_efa_upgraded_with_container_flags(host):
    record = host.file("/opt/amazon/efa_installed_packages").content_string
    # prepare installed the release before; converge must have upgraded to the manifest's one
    assert f"EFA installer version: {_v('efa_installer')}\n" in record
    assert "# Flags: --skip-kmod\n" in record
    assert host.run("/opt/amazon/efa/bin/fi_info --version").stdout.startswith(
        f"fi_info: 2.1.0amzn{_v('efa_installer')}")
    limits = host.file("/etc/security/limits.d/efa.conf")
    assert "hard memlock unlimited" in limits.content_string


def test_nccl_pinned_and_held(host):
    cuda_mm = ".".join(_v("cuda").split(".")[:2])
    want = f"{_v('nccl')}+cuda{cuda_mm}"
    for pkg in ("libnccl2", "libnccl-dev"):
        assert host.package(pkg).version == want  # the newer decoy in the repo was not taken
    held = host.check_output("apt-mark showhold").split()
    assert {"libnccl2", "libnccl-dev"} <= set(held)


def test_nccl_tests_built_from_the_tarball(host):
    out = host.check_output("/opt/nccl-tests/current/all_reduce_perf")
    # Like 2.16.3's own binaries, the stand-in says no version (the record reads its source archive).
    assert out.startswith("nccl-tests stand-in all_reduce_perf") and _v("nccl_tests") not in out
    assert "NCCL_HOME=/usr " in out and "MPI=0" in out
    assert host.file("/opt/nccl-tests/current").linked_to == f"/opt/nccl-tests/{_v('nccl_tests')}"


def test_nccl_env_file_for_jobs(host):
    env = host.file("/etc/awsome/nccl.env")
    assert env.mode == 0o644 and env.user == "root"
    text = env.content_string
    assert 'export FI_PROVIDER="efa"' in text
    assert 'export NCCL_NVLS_ENABLE="0"' in text
    assert 'export LD_LIBRARY_PATH="/opt/amazon/ofi-nccl/lib:/opt/amazon/efa/lib${' in text
    assert "LD_PRELOAD" not in text
    sourced = host.check_output(". /etc/awsome/nccl.env && echo $FI_PROVIDER:$NCCL_TESTS_HOME")
    assert sourced == "efa:/opt/nccl-tests/current"
    assert not host.run("grep -rl nccl /etc/profile.d").stdout.strip()


def test_neuron_repo_pins_and_holds(host):
    pinned = VERSIONS["stack_packages"]["neuron_sdk"]["versions"]
    for pkg, version in pinned.items():
        assert host.package(pkg).version == version
    held = set(host.check_output("apt-mark showhold").split())
    assert set(pinned) <= held
    source = host.file("/etc/apt/sources.list.d/neuron.sources").content_string
    assert "Signed-By: /etc/apt/keyrings/neuron.asc" in source
    assert "Suites: bookworm" in source
    assert host.check_output("/opt/aws/neuron/bin/neuron-ls") == f"neuron-ls {pinned['aws-neuronx-tools']}"
    assert 'export PATH="/opt/aws/neuron/bin' in host.file("/etc/awsome/neuron.env").content_string


def test_container_runtime(host):
    ctk = f"{VERSIONS['stack_packages']['nvidia_container_toolkit']['version']}-1"
    for pkg in VERSIONS["stack_packages"]["nvidia_container_toolkit"]["packages"]:
        assert host.package(pkg).version == ctk
    assert "nvidia-container-toolkit" in host.check_output("apt-mark showhold").split()
    assert host.check_output("nvidia-ctk --version").endswith(ctk)
    assert host.package("containerd").is_installed
    config = host.file("/etc/containerd/config.toml").content_string
    assert 'root = "/var/lib/containerd"' in config  # no local NVMe in the container
    assert 'default_runtime_name = "nvidia"' in config
    assert 'BinaryName = "/usr/bin/nvidia-container-runtime"' in config
    assert host.service("containerd").is_enabled


def test_enroot(host):
    assert host.check_output("enroot version") == _v("enroot")
    assert host.package("enroot+caps").is_installed
    conf = host.file("/etc/enroot/enroot.conf").content_string
    assert "ENROOT_DATA_PATH           /var/lib/enroot/data/user-$(id -u)" in conf
    assert "ENROOT_TEMP_PATH           /var/lib/enroot/tmp/user-$(id -u)" in conf
    assert "ENROOT_CACHE_PATH          /fsx/enroot/cache/user-$(id -u)" in conf
    # No world-writable parent another user could create someone's directory in first: root's 0755
    # parents, and each enroot user's own 0700 directory made by the role.
    for path in ("/var/lib/enroot/data", "/var/lib/enroot/tmp", "/fsx/enroot/cache"):
        parent = host.file(path)
        assert (parent.user, parent.mode) == ("root", 0o755), path
        own = host.file(f"{path}/user-0")
        assert own.is_directory and (own.user, own.mode) == ("root", 0o700), path
        # another user (nobody) cannot make a directory there for anyone
        planted = host.run(f"setpriv --reuid=65534 --regid=65534 --clear-groups mkdir {path}/user-1000")
        assert planted.rc != 0 and "Permission denied" in planted.stderr, path


def test_lustre_client_config(host):
    """The mount itself cannot happen in a container: only fstab and module options are checked."""
    kernel = host.check_output("uname -r")
    assert host.package("lustre-client-utils").is_installed
    assert host.package(f"lustre-client-modules-{kernel}").is_installed
    fstab = host.file("/etc/fstab").content_string
    assert ("fs-0123456789abcdef0.fsx.us-east-1.amazonaws.com@tcp:/abcdefgh /fsx lustre "
            "relatime,flock,_netdev,x-systemd.automount,x-systemd.requires=network.service 0 0") in fstab
    modprobe = host.file("/etc/modprobe.d/lustre.conf").content_string
    assert 'options lnet networks="tcp"' in modprobe
    assert "options ptlrpc ptlrpcd_per_cpt_max=32" in modprobe


def test_artifacts_cached_with_checksums(host):
    cache = "/var/cache/awsome/artifacts"
    listing = host.check_output(f"find {cache} -type f -printf '%P\\n'").split()
    assert f"efa_installer/{_v('efa_installer')}/aws-efa-installer-{_v('efa_installer')}.tar.gz" in listing
    assert f"nccl_tests/{_v('nccl_tests')}/nccl-tests-{_v('nccl_tests')}.tar.gz" in listing


def test_stack_record_holds_the_fabric_versions(host):
    """Each fabric role merged what it installed into /opt/awsome/stack.json (_stack's record)."""
    record = host.file("/opt/awsome/stack.json")
    assert record.mode == 0o644
    components = json.loads(record.content_string)["components"]
    neuron = VERSIONS["stack_packages"]["neuron_sdk"]["versions"]
    ctk = f"{VERSIONS['stack_packages']['nvidia_container_toolkit']['version']}-1"
    want = {
        "efa_installer": _v("efa_installer"),   # detected from the installer's record after the upgrade
        # what dpkg says is installed (the pin plus the CUDA build: 2.26.5-1+cuda12.8)
        "nccl": host.package("libnccl2").version, "nccl_install_method": "repo", "aws_ofi_nccl_source": "efa",
        # 2.16.3's binaries carry no version: the source archive it was built from names it
        "nccl_tests": _v("nccl_tests"), "nccl_tests_from": "source archive",
        # the release only because every package dpkg reports has the version the manifest lists for it
        "neuron_sdk": _v("neuron_sdk"), **neuron,
        "container_engine": "containerd", "containerd": host.package("containerd").version,
        "nvidia_container_toolkit": ctk,
        "enroot": _v("enroot"),                 # what `enroot version` printed
        "lustre_client": host.package("lustre-client-utils").version,
    }
    assert {k: components.get(k) for k in want} == want
    assert components["nccl"].startswith(_v("nccl") + "+cuda"), components["nccl"]
