"""The exporters' parsing and metrics (roles/_exporter_common/files/awsome_exporters).

They run under the OS Python with the OS prometheus-client (python3-prometheus-client), as on the
nodes, so each test runs them in /usr/bin/python3: `--once` prints one scrape. Inputs are fixtures:
an EFA sysfs tree (tests/fixtures/efa_sysfs, made up in the driver's layout), Slurm 22.05 output
recorded from a real slurmctld (tests/fixtures/slurm_exporter/README.md says how) and, for the GPU
exporter's no-GPU path only, a fake pynvml whose nvmlInit fails as on a node without a driver. The
real NVML path ran on an H200 machine: tests/fixtures/gpu_exporter/h200_metrics.prom is its output
and docs/observability.md has the command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from helpers import REPO

PKG_DIR = REPO / "roles" / "_exporter_common" / "files"
FIXTURES = REPO / "tests" / "fixtures"
OS_PYTHON = "/usr/bin/python3"


def os_python(args: list[str], env: dict | None = None) -> str:
    # No __pycache__ in the role's files/: the role copies that directory to the nodes.
    full = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    full["PYTHONPATH"] = ":".join(filter(None, [full.get("PYTHONPATH"), str(PKG_DIR)]))
    proc = subprocess.run([OS_PYTHON, *args], env=full, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def call(module: str, func: str, *args):
    """awsome_exporters.<module>.<func>(*args) in the OS Python, JSON in and out."""
    code = (f"import json, sys\nfrom awsome_exporters import {module} as m\n"
            f"print(json.dumps(m.{func}(*json.loads(sys.argv[1]))))")
    return json.loads(os_python(["-c", code, json.dumps(args)]))


def scrape(module: str, *args: str, env: dict | None = None) -> dict[tuple[str, frozenset], float]:
    """One scrape of an exporter: {(name, labels): value}."""
    text = os_python(["-m", f"awsome_exporters.{module}", "--once", *args], env)
    samples = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if m and not line.startswith("#"):
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


# ---- EFA
def test_efa_reads_every_port_counter_and_link_state():
    s = scrape("efa", "--sysfs-root", str(FIXTURES / "efa_sysfs"))
    assert value(s, "awsome_efa_devices") == 2
    files = sorted(p.name for p in (FIXTURES / "efa_sysfs/rdmap16s27/ports/1/hw_counters").iterdir())
    exported = sorted(dict(k[1])["counter"] for k in s
                      if k[0] == "awsome_efa_hw_counter_total" and dict(k[1])["device"] == "rdmap16s27")
    assert exported == [f for f in files if f != "lifespan"]  # lifespan is a setting, not a count
    tx = value(s, "awsome_efa_hw_counter_total", device="rdmap32s27", port="1", counter="tx_bytes")
    assert tx == 918273646120
    cmds = value(s, "awsome_efa_device_hw_counter_total", device="rdmap16s27", counter="completed_cmds")
    assert cmds == 5120
    assert value(s, "awsome_efa_port_up", device="rdmap16s27", port="1") == 1
    assert value(s, "awsome_efa_port_rate_gbps", device="rdmap16s27", port="1") == 100
    assert value(s, "awsome_efa_port_phys_state", device="rdmap16s27", port="1", phys_state="LinkUp") == 5


def test_efa_port_down_and_missing_root(tmp_path):
    port = tmp_path / "efa0" / "ports" / "1"
    (port / "hw_counters").mkdir(parents=True)
    (port / "state").write_text("1: DOWN\n")
    (port / "hw_counters" / "rx_bytes").write_text("7\n")
    s = scrape("efa", "--sysfs-root", str(tmp_path))
    assert value(s, "awsome_efa_port_up", device="efa0", port="1") == 0
    assert value(s, "awsome_efa_port_state", device="efa0", port="1", state="DOWN") == 1
    assert value(s, "awsome_efa_hw_counter_total", device="efa0", port="1", counter="rx_bytes") == 7
    assert value(scrape("efa", "--sysfs-root", str(tmp_path / "absent")), "awsome_efa_devices") == 0


def test_efa_parsers():
    assert call("efa", "parse_state", "4: ACTIVE\n") == [4, "ACTIVE"]
    assert call("efa", "parse_rate", "100 Gb/sec (4X EDR)\n") == 100.0
    assert call("efa", "parse_rate", "garbage") is None


# ---- Slurm (output recorded from Slurm 22.05.8)
@pytest.fixture
def slurm_path():
    return {"PATH": f"{FIXTURES / 'slurm_exporter' / 'bin'}:/usr/bin:/bin"}


def test_slurm_nodes_with_drain_reasons_and_gpus(slurm_path):
    s = scrape("slurm", env=slurm_path)
    assert value(s, "awsome_slurm_up") == 1
    assert value(s, "awsome_slurm_node_state", slurm_node="gpu-st-p5-3", state="drained",
                 reason="gpu health: XID 79 on GPU 2") == 1
    assert value(s, "awsome_slurm_node_state", slurm_node="gpu-st-p5-2", state="down",
                 reason="not responding") == 1
    assert value(s, "awsome_slurm_node_state", slurm_node="gpu-st-p5-1", state="allocated", reason="") == 1
    assert value(s, "awsome_slurm_nodes", state="drained") == 1
    # gpu-st-p5-1 holds 3 of 4 GPUs (jobs of 2 and 1); the drained and the down node's 8 cannot be used.
    assert value(s, "awsome_slurm_node_gpus", slurm_node="gpu-st-p5-1", use="allocated") == 3
    assert value(s, "awsome_slurm_gpus", use="allocated") == 3
    assert value(s, "awsome_slurm_gpus", use="idle") == 1
    assert value(s, "awsome_slurm_gpus", use="unavailable") == 8


def test_slurm_jobs(slurm_path):
    s = scrape("slurm", env=slurm_path)
    assert value(s, "awsome_slurm_jobs", state="running", partition="dev") == 2
    assert value(s, "awsome_slurm_jobs", state="pending", partition="dev") == 1
    assert value(s, "awsome_slurm_job_gpus", job_id="4", partition="dev", user="root") == 2
    assert value(s, "awsome_slurm_job_node", job_id="5", slurm_node="gpu-st-p5-1") == 1


def test_slurm_down_commands_say_so(tmp_path):
    (tmp_path / "sinfo").write_text(
        "#!/bin/sh\necho 'slurm_load_partitions: Unable to contact slurm controller' >&2\nexit 1\n")
    (tmp_path / "sinfo").chmod(0o755)
    s = scrape("slurm", env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert value(s, "awsome_slurm_up") == 0
    assert not any(k[0] == "awsome_slurm_nodes" for k in s)


def test_gres_gpus():
    cases = {"gpu:h100:4": 4, "gpu:4(S:0-1)": 4, "gpu:h100:3(IDX:0-2)": 3, "gres:gpu:2": 2,
             "gpu:a:1,gpu:b:2,shard:8": 3, "(null)": 0, "": 0}
    code = ("import json, sys\nfrom awsome_exporters.slurm import gres_gpus\n"
            "print(json.dumps({g: gres_gpus(g) for g in json.loads(sys.argv[1])}))")
    assert json.loads(os_python(["-c", code, json.dumps(list(cases))])) == cases


def test_hostlist():
    expanded = ["gpu-1", "gpu-2", "gpu-3", "gpu-05", "login1"]
    assert call("slurm", "expand_hostlist", "gpu-[1-3,05],login1") == expanded
    assert call("slurm", "expand_hostlist", "p5-[08-10]") == ["p5-08", "p5-09", "p5-10"]


# ---- GPU: Slurm job per GPU, no-GPU path
def test_gpu_job_from_scontrol_show_job():
    text = (FIXTURES / "slurm_exporter" / "scontrol_show_job.txt").read_text()
    # Job 4 holds GPUs 0-1, job 5 GPU 2 on gpu-st-p5-1; job 6 is pending; other nodes hold nothing.
    assert call("gpu", "slurm_gpu_jobs", text, "gpu-st-p5-1") == {"0": "4", "1": "4", "2": "5"}
    assert call("gpu", "slurm_gpu_jobs", text, "gpu-st-p5-2") == {}


def test_gpu_job_from_process(tmp_path):
    (tmp_path / "11").mkdir()
    (tmp_path / "11" / "cgroup").write_text("0::/system.slice/slurmstepd.scope/job_77/step_0/user/task_0\n")
    (tmp_path / "12").mkdir()
    (tmp_path / "12" / "cgroup").write_text("0::/user.slice\n")
    (tmp_path / "12" / "environ").write_bytes(b"HOME=/root\0SLURM_JOB_ID=88\0")
    (tmp_path / "13").mkdir()
    (tmp_path / "13" / "cgroup").write_text("0::/user.slice\n")
    (tmp_path / "13" / "environ").write_bytes(b"HOME=/root\0")
    code = ("import sys; from pathlib import Path; from awsome_exporters.gpu import process_job\n"
            "print([process_job(p, Path(sys.argv[1])) for p in (11, 12, 13, 14)])")
    assert os_python(["-c", code, str(tmp_path)]).strip() == "['77', '88', None, None]"


def test_gpu_without_nvml_says_no_gpu(tmp_path):
    s = scrape("gpu")  # the OS Python has no pynvml here
    assert value(s, "awsome_gpu_count") == 0
    assert value(s, "awsome_gpu_nvml_up", error="nvidia-ml-py (pynvml) is not installed") == 0
    # pynvml present but no driver: what nvidia-ml-py raises on a CPU node.
    (tmp_path / "pynvml.py").write_text(
        "# FAKE pynvml for the no-driver path only\n"
        "class NVMLError(Exception):\n    pass\n"
        "def nvmlInit():\n    raise NVMLError('NVML Shared Library Not Found')\n")
    s = scrape("gpu", env={"PYTHONPATH": str(tmp_path)})
    assert value(s, "awsome_gpu_count") == 0
    assert value(s, "awsome_gpu_nvml_up", error="NVML Shared Library Not Found") == 0


def test_recorded_h200_page_has_every_family():
    """The real NVML run (H200) exported every family the GPU dashboard reads."""
    text = (FIXTURES / "gpu_exporter" / "h200_metrics.prom").read_text()
    for family in ("utilization_percent", "memory_used_bytes", "power_watts", "temperature_celsius",
                   "clock_hz", "ecc_errors_total", "remapped_rows", "xid_events_total", "nvlink_errors_total",
                   "nvlink_active_links", "slurm_job"):
        assert re.search(rf"^awsome_gpu_{family}\{{", text, re.M), family
    assert 'awsome_gpu_slurm_job{gpu="1",job_id="4242"} 1.0' in text


def test_listen_argument():
    out = subprocess.run([OS_PYTHON, "-m", "awsome_exporters.efa", "--listen", "10.0.0.1"],
                         capture_output=True, text=True,
                         env={"PYTHONPATH": str(PKG_DIR), "PATH": os.environ["PATH"],
                              "PYTHONDONTWRITEBYTECODE": "1"}, check=False)
    assert out.returncode == 2 and "--listen wants ADDRESS:PORT, got '10.0.0.1'" in out.stderr
    assert call("serve", "parse_listen", "[fe80::1]:9401") == ["fe80::1", 9401]
