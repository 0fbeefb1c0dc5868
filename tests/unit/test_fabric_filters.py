"""Filters the fabric roles share: local NVMe detection and pinned package spelling."""

from __future__ import annotations

from ansible_collections.awsome.distributed_training.plugins.filter.local_nvme import local_nvme_mount
from ansible_collections.awsome.distributed_training.plugins.filter.pkg_spec import pkg_spec

MOUNTS = [
    {"mount": "/", "device": "/dev/nvme0n1p1"},             # EBS root: NVMe too on Nitro
    {"mount": "/opt/sagemaker", "device": "/dev/md0"},      # RAID of instance-store NVMe
    {"mount": "/opt/dlami/nvme", "device": "/dev/nvme1n1"},
    {"mount": "/fsx", "device": "10.0.0.5@tcp:/abcdefgh"},
]


def test_first_candidate_on_local_nvme_wins():
    assert local_nvme_mount(MOUNTS, ["/opt/dlami/nvme", "/opt/sagemaker"]) == "/opt/dlami/nvme"
    assert local_nvme_mount(MOUNTS, ["/scratch", "/opt/sagemaker"]) == "/opt/sagemaker"


def test_no_candidate_mounted_or_not_nvme_gives_empty():
    assert local_nvme_mount(MOUNTS, ["/scratch"]) == ""
    assert local_nvme_mount(MOUNTS, ["/fsx"]) == ""
    assert local_nvme_mount([], ["/opt/dlami/nvme"]) == ""
    assert local_nvme_mount(MOUNTS, []) == ""  # the root volume is never picked on its own


def test_pkg_spec_apt_and_dnf():
    assert pkg_spec({"name": "libnccl2", "version": "2.26.5-1+cuda12.8"}, "=") == "libnccl2=2.26.5-1+cuda12.8"
    tools = {"name": "aws-neuronx-tools", "version": "2.25.145.0"}
    assert pkg_spec(tools, "-") == "aws-neuronx-tools-2.25.145.0"
    assert pkg_spec({"name": "containerd"}, "=") == "containerd"
    assert pkg_spec({"name": "containerd", "version": ""}, "=") == "containerd"
