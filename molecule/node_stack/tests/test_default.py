"""Verify the node stack (part A) on the Molecule container.

The NVIDIA driver, CUDA runfile, Fabric Manager and GDRCopy payloads are TEST FIXTURES standing in
for the vendor's (tests/fixtures/mirror): what is checked is what the roles did with them (flags,
version detection and upgrade, services, links, configuration, the stack record), not a GPU.
"""

from __future__ import annotations

import json
import os

import yaml

# podman exec directly: the ansible backend costs a whole module run per check.
testinfra_hosts = ["podman://stack-node"]

REPO = os.environ["MOLECULE_PROJECT_DIRECTORY"]
with open(os.path.join(REPO, "stack", "versions.yml")) as fh:
    PINS = yaml.safe_load(fh)["stack_versions"]


def _api(version: str) -> str:
    """major.minor: all a gdrcopy install carries of its release."""
    return ".".join(version.split(".")[:2])


def test_driver_upgraded_to_the_pin(host):
    # prepare left a 550.54.15 stand-in; converge must have detected it and installed the pin.
    out = host.check_output("nvidia-installer --version")
    assert f"version {PINS['nvidia_driver']}" in out
    smi = host.check_output("nvidia-smi --query-gpu=driver_version --format=csv,noheader")
    assert smi == PINS["nvidia_driver"]


def test_driver_installed_with_open_modules_and_dkms(host):
    env = host.file("/usr/share/nvidia-fixture/install.env").content_string
    assert "kernel_module_type=open" in env  # p5.48xlarge: Hopper supports open modules
    assert "dkms=1" in env


def test_nouveau_blacklisted(host):
    conf = host.file("/etc/modprobe.d/blacklist-nouveau.conf")
    assert conf.mode == 0o644
    assert "blacklist nouveau" in conf.content_string


def test_persistenced_and_fabricmanager_running(host):
    for unit in ("nvidia-persistenced", "nvidia-fabricmanager"):
        svc = host.service(unit)
        assert svc.is_enabled, unit
        assert svc.is_running, unit
    assert PINS["fabricmanager"] in host.check_output("nv-fabricmanager --version")
    assert host.file("/usr/share/nvidia/nvswitch/fabricmanager.cfg").exists


def test_cuda_toolkit_linked_and_on_path(host):
    short = ".".join(PINS["cuda"].split(".")[:2])
    link = host.file("/usr/local/cuda")
    assert link.is_symlink and link.linked_to == f"/usr/local/cuda-{short}"
    out = host.check_output("bash -lc 'nvcc --version'")
    assert f"V{PINS['cuda']}" in out
    assert host.file("/etc/ld.so.conf.d/awsome-cuda.conf").content_string.strip() == "/usr/local/cuda/lib64"


def test_gdrcopy_installed(host):
    ver = PINS["gdrcopy"]
    # As upstream's build names it: the API's major.minor from gdrapi.h (2.4.4 -> libgdrapi.so.2.4).
    lib = host.file("/opt/gdrcopy/lib/libgdrapi.so")
    assert lib.is_symlink and lib.linked_to == f"/opt/gdrcopy/lib/libgdrapi.so.{_api(ver)}"
    assert host.check_output("/opt/gdrcopy/bin/gdrcopy_sanity") == "gdrcopy_sanity fixture: OK"
    assert host.file("/etc/modules-load.d/gdrdrv.conf").content_string.split() == ["gdrdrv"]
    kernel = host.check_output("uname -r")
    assert host.file(f"/lib/modules/{kernel}/extra/gdrdrv.ko").exists


def test_common_tuning(host):
    sysctl = host.file("/etc/sysctl.d/90-awsome-training.conf").content_string
    assert "kernel.numa_balancing = 0" in sysctl
    assert "vm.nr_hugepages = 512" in sysctl
    limits = host.file("/etc/security/limits.d/90-awsome-training.conf")
    assert limits.mode == 0o644 and limits.user == "root"
    assert "* hard memlock unlimited" in limits.content_string
    assert "root soft nofile 1048576" in limits.content_string
    systemd = host.file("/etc/systemd/system.conf.d/90-awsome-training.conf").content_string
    assert "DefaultLimitMEMLOCK=infinity" in systemd
    # The handler re-executed the running manager: it reports the new defaults now, not at next boot.
    manager = host.check_output("systemctl show -p DefaultLimitMEMLOCK -p DefaultLimitNOFILE")
    assert set(manager.split()) == {"DefaultLimitMEMLOCK=infinity", "DefaultLimitNOFILE=1048576"}


def test_common_chrony_and_imds(host):
    assert host.package("chrony").is_installed
    assert "server 169.254.169.123 prefer iburst" in host.file("/etc/chrony/chrony.conf").content_string
    assert host.service("chrony").is_enabled
    assert "AWS_EC2_METADATA_V1_DISABLED=true" in host.file("/etc/profile.d/awsome-imds.sh").content_string


def test_artifacts_cached_and_verified(host):
    """Every payload part A fetched lies in the cache under its id, pinned version and file name,
    and its content is the file the mirror served: its sha256 is the one the mirror's overlay pins
    (AWSOME_MIRROR_OVERLAY, computed by tests/fixtures/mirror from the files themselves)."""
    with open(os.environ["AWSOME_MIRROR_OVERLAY"]) as fh:
        served = yaml.safe_load(fh)["stack_artifacts_override"]
    with open(os.path.join(REPO, "stack", "versions.yml")) as fh:
        artifacts = yaml.safe_load(fh)["stack_artifacts"]
    for art_id in ("nvidia_driver", "fabricmanager", "cuda", "gdrcopy"):
        path = f"/var/cache/awsome/artifacts/{art_id}/{PINS[art_id]}/{artifacts[art_id]['file']}"
        digest = host.check_output(f"sha256sum {path}").split()[0]
        assert digest == served[art_id]["sha256"], art_id


def test_stack_record(host):
    record = host.file("/opt/awsome/stack.json")
    assert record.mode == 0o644
    data = json.loads(record.content_string)
    assert data["profile"] == "gpu"
    assert data["built_at"].endswith("Z")
    for component in ("nvidia_driver", "fabricmanager", "cuda"):
        assert data["components"][component] == PINS[component], component
    # gdrcopy as its install says it (library name, gdrapi.h): only major.minor, never the pin's patch.
    assert data["components"]["gdrcopy"] == _api(PINS["gdrcopy"])
    assert data["components"]["nvidia_kernel_module_type"] == "open"
    assert data["manifest"] == PINS
