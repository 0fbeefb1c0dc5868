"""gpu_facts and efa_facts modules. This machine has no GPU and no EFA: a fake nvidia-smi prints
recorded-format output (tests/fixtures/nvidia-smi) and a fixture sysfs tree stands in for EFA."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from ansible_collections.awsome.distributed_training.plugins.modules import efa_facts, gpu_facts

REPO = Path(__file__).resolve().parents[2]

SMI_OUT = (REPO / "tests/fixtures/nvidia-smi/p5.48xlarge.csv").read_text()


def test_parse_eight_h100():
    gpus = gpu_facts.parse(SMI_OUT)
    assert [g["index"] for g in gpus] == list(range(8))
    assert gpus[0]["memory_mib"] == 81559 and gpus[7]["pci_bus_id"] == "00000000:CA:00.0"
    facts = gpu_facts.facts(gpus)
    assert (facts["gpu_count"], facts["gpu_type"], facts["gpu_driver_version"]) == (8, "h100", "570.133.20")


@pytest.mark.parametrize("name,short", [
    ("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA A100-SXM4-40GB", "a100"), ("NVIDIA A10G", "a10g"),
    ("NVIDIA L40S", "l40s"), ("NVIDIA H200", "h200"), ("Tesla T4", "t4"), ("NVIDIA Foo 9", "9"),
])
def test_gpu_type(name, short):
    assert gpu_facts.gpu_type(name) == short


def test_parse_rejects_a_foreign_line():
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        gpu_facts.parse("0, NVIDIA H100, only-three\n")


def test_no_gpu_is_an_empty_result():
    assert gpu_facts.facts([], "nvidia-smi not found") == {
        "gpu_count": 0, "gpu_type": "", "gpu_driver_version": "", "gpus": [],
        "gpu_error": "nvidia-smi not found"}


def _fake_smi(tmp_path: Path, body: str) -> Path:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + body)
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    return smi


def _module(name: str, args: str) -> dict:
    """Run the module through Ansible itself (argument parsing, run_command, exit_json)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run([str(REPO / ".venv/bin/ansible"), "localhost", "-c", "local", "-o",
                           "-e", "ansible_python_interpreter={{ ansible_playbook_python }}",
                           "-m", f"awsome.distributed_training.{name}", "-a", args],
                          cwd=REPO, env=env, text=True, timeout=120,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert " | SUCCESS => " in proc.stdout, proc.stdout
    return json.loads(proc.stdout.split(" | SUCCESS => ", 1)[1])["ansible_facts"]


def test_module_reads_a_fake_nvidia_smi(tmp_path):
    (tmp_path / "out.csv").write_text(SMI_OUT)
    smi = _fake_smi(tmp_path, f'case "$*" in *--query-gpu=*) cat {tmp_path}/out.csv;; *) exit 9;; esac\n')
    facts = _module("gpu_facts", f"nvidia_smi={smi}")
    assert facts["gpu_count"] == 8 and facts["gpu_type"] == "h100" and facts["gpu_error"] == ""


def test_module_without_driver_reports_no_gpu(tmp_path):
    smi = _fake_smi(tmp_path, "echo 'NVIDIA-SMI has failed because it couldn'\"'\"'t communicate with the "
                              "NVIDIA driver.' ; exit 9\n")
    facts = _module("gpu_facts", f"nvidia_smi={smi}")
    assert facts["gpu_count"] == 0 and facts["gpus"] == []
    assert facts["gpu_error"].startswith("NVIDIA-SMI has failed")
    assert _module("gpu_facts", "nvidia_smi=no-such-nvidia-smi")["gpu_error"] == "nvidia-smi not found"


def test_efa_devices_from_sysfs(tmp_path):
    drivers = tmp_path / "bus/pci/drivers"
    for drv in ("efa", "mlx5_core"):
        (drivers / drv).mkdir(parents=True)
    for dev, drv in (("rdmap16s27", "efa"), ("rdmap0s6", "efa"), ("mlx5_0", "mlx5_core")):
        (tmp_path / "class/infiniband" / dev / "device").mkdir(parents=True)
        os.symlink(drivers / drv, tmp_path / "class/infiniband" / dev / "device/driver")
    assert efa_facts.efa_devices(str(tmp_path)) == ["rdmap0s6", "rdmap16s27"]
    assert efa_facts.efa_devices(str(tmp_path / "none")) == []
    assert _module("efa_facts", f"sysfs_root={tmp_path}") == {"efa_count": 2,
                                                              "efa_devices": ["rdmap0s6", "rdmap16s27"]}
