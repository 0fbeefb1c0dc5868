"""The node health check program (roles/healthcheck/files/awsome_healthcheck.py): every check's logic
and grading on command outputs recorded on a 2x H200 machine (tests/fixtures/healthcheck/h200x2), the
failing states made by editing those recordings, the Slurm drain/resume decision, and a real run of
the program on this CPU machine. The NCCL all-reduce itself needs GPUs: here its grading is tested
on metrics lines; the real run is in tests/fixtures/healthcheck/h200x2/health.json (docs/validation.md)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import load_module

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "roles/healthcheck/files/awsome_healthcheck.py"
FIX = REPO / "tests/fixtures/healthcheck"
H200 = FIX / "h200x2"

hc = load_module(PROGRAM, "awsome_healthcheck")

XML = (H200 / "nvidia-smi-q.xml").read_text()
TOPO = (H200 / "nvidia-smi-topo.txt").read_text()
CSV = (H200 / "nvidia-smi-gpus.csv").read_text()


def fake_runner(outputs: dict):
    """A runner answering commands by their first two words; a missing key: program not found."""
    calls = []

    def runner(cmd, timeout=60, env=None):
        calls.append(cmd)
        key = " ".join([Path(cmd[0]).name, *cmd[1:2]])
        for k, v in outputs.items():
            if key.startswith(k):
                return v
        return None

    runner.calls = calls
    return runner


def node(outputs: dict | None = None, **cfg) -> hc.Node:
    smi = {"nvidia-smi --query-gpu": (0, CSV, ""), "nvidia-smi -q": (0, XML, ""),
           "nvidia-smi topo": (0, TOPO, ""), "dmesg": (0, "[ 1.0] Linux version\n", "")}
    return hc.Node(dict(hc.DEFAULTS, **cfg), fake_runner(smi if outputs is None else outputs))


def test_recorded_h200_parses():
    gpus = hc.parse_smi_xml(XML)
    assert [g["name"] for g in gpus] == ["NVIDIA H200", "NVIDIA H200"]
    assert gpus[0]["ecc_mode"] == "Enabled" and gpus[0]["ecc_volatile_uncorrectable"] == 0
    assert gpus[0]["power_limit_w"] == 700.0 and gpus[0]["power_default_limit_w"] == 700.0
    assert gpus[0]["throttle_active"] == ["gpu_idle"]
    assert hc.parse_topo(TOPO) == {(0, 1): "NV18", (1, 0): "NV18"}  # the header is underlined (ANSI)
    assert [g["pci_bus_id"] for g in hc.parse_gpu_csv(CSV)] == ["00000000:00:06.0", "00000000:00:07.0"]


def test_healthy_h200_node_passes_every_gpu_check():
    n = node(expect_gpus=2)
    results = [f(n) for f in (hc.check_gpu_count, hc.check_gpu_ecc, hc.check_gpu_xid,
                              hc.check_gpu_clocks_power, hc.check_gpu_topology)]
    assert [(r["name"], r["status"]) for r in results] == [
        ("gpu_count", "pass"), ("gpu_ecc", "pass"), ("gpu_xid", "pass"), ("gpu_clocks_power", "pass"),
        ("gpu_topology", "pass")], results
    assert results[4]["reason"] == "NVLink between every GPU pair (NV18)"


def test_gpu_count_wrong_and_missing_driver():
    assert hc.check_gpu_count(node(expect_gpus=8))["reason"] == "2 GPU(s) found, 8 expected"
    r = hc.check_gpu_count(node({}, expect_gpus=8))
    assert (r["status"], r["reason"]) == ("fail",
                                          "8 GPU(s) expected, nvidia-smi failed: nvidia-smi not found")
    no_driver = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"
    r = hc.check_gpu_count(node({"nvidia-smi": (9, "", no_driver)}, expect_gpus=8))
    assert r["status"] == "fail" and "couldn't communicate with the NVIDIA driver" in r["reason"]
    # A CPU type: no nvidia-smi is right, and the other GPU checks say so without running anything.
    n = node({}, expect_gpus=0)
    assert all(f(n)["reason"] == "no GPU expected" for f in (hc.check_gpu_count, hc.check_gpu_ecc,
                                                             hc.check_gpu_xid, hc.check_gpu_topology))
    assert hc.check_gpu_count(node(expect_gpus=0))["status"] == "warn"  # GPUs on a CPU type


def _xml(**swaps: str) -> str:
    text = XML
    for old, new in swaps.items():
        assert old in text, old
        text = text.replace(old, new, 1)  # the first GPU only
    return text


def test_ecc_and_remap_failures():
    bad = _xml(**{"<dram_uncorrectable>0</dram_uncorrectable>": "<dram_uncorrectable>3</dram_uncorrectable>",
                  "<remapped_row_pending>No</remapped_row_pending>":
                  "<remapped_row_pending>Yes</remapped_row_pending>"})
    r = hc.check_gpu_ecc(node({"nvidia-smi -q": (0, bad, "")}, expect_gpus=2))
    assert r["status"] == "fail"
    assert r["reason"] == ("GPU0 3 uncorrectable ECC error(s); "
                           "GPU0 page retirement/row remap pending (reset the GPU)")
    off = _xml(**{"<current_ecc>Enabled</current_ecc>": "<current_ecc>Disabled</current_ecc>"})
    r = hc.check_gpu_ecc(node({"nvidia-smi -q": (0, off, "")}, expect_gpus=2))
    assert (r["status"], r["reason"]) == ("warn", "GPU0 ECC Disabled")
    r = hc.check_gpu_ecc(node({"nvidia-smi -q": (0, "<nvidia_smi_log><gpu>", "")}, expect_gpus=2))
    assert r["status"] == "fail" and r["reason"].startswith("nvidia-smi -q -x: unreadable XML")


def test_clocks_and_power():
    slow = _xml(**{"<clocks_event_reason_hw_slowdown>Not Active</clocks_event_reason_hw_slowdown>":
                   "<clocks_event_reason_hw_slowdown>Active</clocks_event_reason_hw_slowdown>"})
    r = hc.check_gpu_clocks_power(node({"nvidia-smi -q": (0, slow, "")}, expect_gpus=2))
    assert (r["status"], r["reason"]) == ("fail", "GPU0 hardware slowdown active")
    capped = _xml(**{"<current_power_limit>700.00 W</current_power_limit>":
                     "<current_power_limit>500.00 W</current_power_limit>"})
    r = hc.check_gpu_clocks_power(node({"nvidia-smi -q": (0, capped, "")}, expect_gpus=2))
    assert (r["status"], r["reason"]) == ("warn", "GPU0 power limit 500 W below its default 700 W")


def test_topology_without_nvlink_fails():
    pcie = TOPO.replace("NV18", "SYS", 1)
    r = hc.check_gpu_topology(node({"nvidia-smi topo": (0, pcie, "")}, expect_gpus=2))
    assert (r["status"], r["reason"]) == ("fail", "no NVLink between GPU0-GPU1")
    assert hc.check_gpu_topology(node({}, expect_gpus=4, expect_nvlink=False))["status"] == "pass"


def test_xids_graded_by_kind():
    log = (FIX / "dmesg-xid.txt").read_text()
    assert hc.parse_xids(log) == [{"pci": "0000:53:00", "xid": 13}, {"pci": "0000:64:00", "xid": 79}]
    r = hc.check_gpu_xid(node({"dmesg": (0, log, "")}, expect_gpus=8))
    assert (r["status"], r["reason"]) == ("fail", "Xid 79 in the kernel log since boot")
    r = hc.check_gpu_xid(node({"dmesg": (0, log.splitlines()[0], "")}, expect_gpus=8))
    assert (r["status"], r["reason"]) == ("warn", "Xid 13 in the kernel log")
    assert hc.check_gpu_xid(node({"dmesg": (1, "", "dmesg: read kernel buffer failed")}, expect_gpus=8))[
        "status"] == "warn"


def test_efa_devices_from_fi_info():
    out = (FIX / "fi_info-efa.txt").read_text()
    assert hc.parse_fi_info(out) == ["rdmap16s27", "rdmap32s27"]
    assert hc.check_efa(node({"fi_info": (0, out, "")}, expect_efa=2))["status"] == "pass"
    r = hc.check_efa(node({"fi_info": (0, out, "")}, expect_efa=32))
    assert (r["status"], r["reason"]) == ("fail", "2 EFA device(s) from fi_info, 32 expected")
    r = hc.check_efa(node({"fi_info": (61, "", "fi_getinfo: -61 (No data available)\n")}, expect_efa=1))
    assert r["reason"] == "1 EFA device(s) expected, fi_info -p efa: fi_getinfo: -61 (No data available)"
    assert "fi_info not found" in hc.check_efa(node({}, expect_efa=1))["reason"]
    assert hc.check_efa(node({}, expect_efa=0))["reason"] == "no EFA expected"


def test_disk_memory_ulimits(tmp_path):
    r = hc.check_disk(node(disk_paths=[str(tmp_path)], disk_min_free_gib=1e9))
    assert r["status"] == "fail" and r["reason"].startswith(f"{tmp_path} ") and "< 1e+09 GiB" in r["reason"]
    assert hc.check_disk(node(disk_paths=[str(tmp_path)], disk_min_free_gib=0.001))["status"] == "pass"
    assert hc.check_disk(node(disk_paths=[str(tmp_path / "gone")]))["status"] == "fail"
    mem = {"MemTotal": 32 * 2**20, "MemAvailable": 3 * 2**20}
    r = hc.check_memory(node(mem_min_available_gib=4), mem)
    assert (r["status"], r["reason"]) == ("fail", "3.0 GiB available < 4 GiB")
    inf = resource.RLIM_INFINITY
    r = hc.check_ulimits(node(expect_gpus=8), {"memlock": 65536, "nofile": 1024})
    assert r["reason"] == "memlock 65536 (EFA/GPUDirect need unlimited); nofile 1024 < 65536"
    assert hc.check_ulimits(node(expect_gpus=8), {"memlock": inf, "nofile": 1 << 20})["status"] == "pass"
    assert hc.check_ulimits(node(expect_gpus=0), {"memlock": 65536, "nofile": 1 << 20})["status"] == "pass"


def test_torch_screen():
    seen = json.loads((H200 / "torch.json").read_text())
    out = json.dumps({"torch": seen["torch"], "cuda": seen["cuda"], "cuda_available": True, "devices": 2,
                      "cudnn": str(seen["cudnn"]), "nccl": ".".join(map(str, seen["nccl"]))})
    r = hc.check_torch(node({"python3": (0, out + "\n", "")}, expect_gpus=2))
    assert (r["status"], r["reason"]) == ("pass", "torch 2.11.0+cu130, CUDA 13.0, cuDNN 91900, NCCL 2.28.9")
    r = hc.check_torch(node({"python3": (0, out, "")}, expect_gpus=8))
    assert r["status"] == "fail" and r["reason"].endswith("torch sees 2 GPU(s), 8 expected")
    r = hc.check_torch(node({"python3": (1, "", "Traceback\nModuleNotFoundError: No module named 'torch'\n")},
                            expect_gpus=0))
    assert (r["status"], r["reason"]) == ("warn", "python3 cannot import torch: "
                                                  "ModuleNotFoundError: No module named 'torch'")


def test_nccl_busbw_graded_against_the_floor(tmp_path):
    metrics = tmp_path / "metrics-rank0.jsonl"
    lines = [{"event": "start"}, {"event": "collective", "op": "all_reduce", "bytes": 1 << 30,
                                  "busbw_gbps": 330.9, "correct": True}]
    metrics.write_text("\n".join(map(json.dumps, lines)) + "\n{cut")
    busbw, ok = hc.busbw_from_metrics(str(metrics), 1 << 30)
    assert (busbw, ok) == (330.9, True)
    assert hc.grade_busbw(busbw, ok, 300, 1 << 30, 2)["status"] == "pass"
    r = hc.grade_busbw(busbw, ok, 450, 1 << 30, 2)
    assert (r["status"], r["reason"]) == ("fail", "all_reduce busbw 330.9 GB/s < 450 GB/s (2 GPUs, 1024 MiB)")
    wrong = hc.grade_busbw(busbw, False, 1, 1 << 30, 2)
    assert wrong["reason"] == "all_reduce at 1024 MiB gave a wrong result"
    assert hc.busbw_from_metrics(str(metrics), 1 << 20) == (None, False)
    assert "fewer than 2 GPUs" in hc.check_nccl(node(expect_gpus=1, nccl_busbw_min_gbps=100))["reason"]
    no_floor = hc.check_nccl(node(expect_gpus=8, nccl_busbw_min_gbps=0))
    assert no_floor["reason"] == "no NCCL threshold for this type"


def test_recorded_full_run_on_h200():
    report = json.loads((H200 / "health.json").read_text())
    got = {c["name"]: c["status"] for c in report["checks"]}
    assert got["nccl_allreduce"] == "pass" and got["gpu_topology"] == "pass" and got["ulimits"] == "fail"
    assert report["status"] == "fail" and report["reason"] == "ulimits: nofile 20000 < 65536"


def test_grading_and_a_broken_check():
    assert hc.grade([]) == "pass"
    assert hc.grade([hc.check("a", "pass", ""), hc.check("b", "warn", "")]) == "warn"
    assert hc.grade([hc.check("a", "fail", ""), hc.check("b", "warn", "")]) == "fail"

    def breaks(cmd, timeout=60, env=None):
        if cmd[0] == "dmesg":
            raise OSError("dmesg exploded")
        return {"nvidia-smi": (0, CSV, "")}.get(cmd[0])

    report = hc.run_checks(hc.Node(dict(hc.DEFAULTS, expect_gpus=2, nofile_min=1), breaks), quick=True)
    assert [c["name"] for c in report["checks"]] == ["gpu_count", "gpu_ecc", "gpu_xid", "gpu_clocks_power",
                                                     "gpu_topology", "efa", "disk", "memory", "ulimits"]
    xid = report["checks"][2]
    assert (xid["status"], xid["reason"]) == ("fail", "check raised OSError: dmesg exploded")
    assert report["status"] == "fail" and report["reason"].startswith("gpu_ecc: ")


SHOW = ("NodeName=slurm-c1 Arch=x86_64 CoresPerSocket=1\n   State={state} ThreadsPerCore=1\n"
        "   Partitions=compute\n{reason}")


@pytest.mark.parametrize("status,state,reason,action", [
    ("fail", "IDLE", "", "drain"),
    ("fail", "IDLE+DRAIN", "Reason=awsome-health: disk: / 1.0 GiB free < 10 GiB [root@2026-11-30T19:00:00]",
     None),
    ("fail", "IDLE+DRAIN", "Reason=awsome-health: gpu_xid: Xid 79 [root@2026-11-30T19:00:00]", "drain"),
    ("fail", "IDLE+DRAIN", "Reason=maintenance [admin@2026-11-30T19:00:00]", "drain"),
    ("pass", "IDLE+DRAIN", "Reason=awsome-health: disk: / 1.0 GiB free < 10 GiB [root@2026-11-30T19:00:00]",
     "resume"),
    ("pass", "IDLE+DRAIN", "Reason=maintenance [admin@2026-11-30T19:00:00]", None),  # an admin's drain stays
    ("warn", "MIXED+DRAIN", "Reason=awsome-health: x [root@2026-11-30T19:00:00]", "resume"),
    ("pass", "IDLE", "", None),
])
def test_slurm_drain_and_resume(status, state, reason, action):
    report = {"host": "slurm-c1", "status": status, "reason": "disk: / 1.0 GiB free < 10 GiB"
              if status == "fail" else ""}
    runner = fake_runner({"scontrol show": (0, SHOW.format(state=state, reason="   " + reason), "")})
    assert hc.apply_slurm(report, {"scontrol": "scontrol"}, runner) == action
    update = [c for c in runner.calls if c[1] == "update"]
    if action == "drain":
        assert update == [["scontrol", "update", "nodename=slurm-c1", "state=drain",
                           "reason=awsome-health: disk: / 1.0 GiB free < 10 GiB"]]
    elif action == "resume":
        assert update == [["scontrol", "update", "nodename=slurm-c1", "state=resume"]]
    else:
        assert update == []


def test_program_runs_here_and_overrides(tmp_path):
    """The real program on this CPU machine: no GPU expected; a --set override fails it by name."""
    cfg = tmp_path / "hc.json"
    cfg.write_text(json.dumps({"nofile_min": 1024, "disk_paths": [str(tmp_path)]}))
    ok = subprocess.run([sys.executable, str(PROGRAM), "--config", str(cfg), "--quick"],
                        capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = json.loads(ok.stdout)
    assert report["mode"] == "quick" and report["status"] in ("pass", "warn")
    assert {c["name"]: c["reason"] for c in report["checks"]}["gpu_count"] == "no GPU expected"
    bad = subprocess.run([sys.executable, str(PROGRAM), "--config", str(cfg), "--quick",
                          "--set", "expect_gpus=8"], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1 and json.loads(bad.stdout)["status"] == "fail"
    assert bad.stderr.startswith("awsome-health: gpu_count: 8 GPU(s) expected")
    usage = subprocess.run([sys.executable, str(PROGRAM), "--set", "nonsense=1"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert usage.returncode != 0 and "expected KEY=VALUE with KEY one of" in usage.stderr
