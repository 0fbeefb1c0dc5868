#!/usr/bin/env python3
"""Node health checks of awsome.distributed_training: each check graded pass/warn/fail with a reason.

Standard library only: it runs on bare nodes, from Slurm (HealthCheckProgram, prolog) and from
playbooks/validate.yml. Thresholds come from a JSON config (the healthcheck role writes it from the
instance-type table); command-line options override it. Prints one JSON document.

  awsome_healthcheck.py [--config FILE] [--quick] [--slurm] [--set KEY=VALUE ...]

--quick leaves out the slow checks (NCCL all-reduce, PyTorch screen). --slurm drains this node
through scontrol when a check fails, and resumes it when all pass and only if this program drained
it (its reason starts with "awsome-health:"); a node an admin drained stays drained.
Exit status: 0 pass or warn, 1 fail, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

PASS, WARN, FAIL = "pass", "warn", "fail"
RANK = {PASS: 0, WARN: 1, FAIL: 2}
REASON_PREFIX = "awsome-health:"

DEFAULTS = {
    "expect_gpus": 0,  # GPUs the instance type has (0: a CPU node)
    "expect_efa": 0,  # EFA devices the instance type has
    "expect_nvlink": None,  # None: expected when expect_gpus > 1
    "nccl_busbw_min_gbps": 0,  # one-node all_reduce bus bandwidth floor (0: no NCCL check)
    "nccl_bytes": 1 << 30,  # the one all_reduce size measured
    "nccl_code_dir": "/opt/awsome/healthcheck/test_cases",
    "python": "python3",  # interpreter with torch (PyTorch screen, NCCL check)
    "disk_paths": ["/", "/tmp"],
    "disk_min_free_gib": 10,
    "mem_min_available_gib": 4,
    "nofile_min": 65536,
    "memlock_unlimited": None,  # None: required when GPUs or EFA are expected
    "nvidia_smi": "nvidia-smi",
    "fi_info": "fi_info",
    "scontrol": "scontrol",
    # Xids that mean the GPU or its link needs a reset or a replacement (NVIDIA's Xid catalogue):
    # 48 DBE, 63/64 row remap, 74 NVLink, 79 fell off the bus, 92 high SBE rate, 94/95 contained/
    # uncontained ECC, 119/120 GSP, 140 unrecovered ECC. Others are reported as warnings.
    "xid_fatal": [48, 63, 64, 74, 79, 92, 94, 95, 119, 120, 140],
}


def check(name: str, status: str, reason: str, **data) -> dict:
    return {"name": name, "status": status, "reason": reason, "data": data}


def grade(results: list[dict]) -> str:
    return max((r["status"] for r in results), key=RANK.__getitem__, default=PASS)


def run(cmd: list[str], timeout: float = 60, env: dict | None = None) -> tuple[int, str, str] | None:
    """(rc, stdout, stderr), or None when the program is not there."""
    exe = cmd[0] if "/" in cmd[0] else shutil.which(cmd[0])
    if not exe or not os.access(exe, os.X_OK):
        return None
    try:
        p = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=timeout, env=env,
                           check=False)
    except subprocess.TimeoutExpired:
        return 124, "", f"{cmd[0]} timed out after {timeout:g}s"
    return p.returncode, p.stdout, p.stderr


def first_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[0] if lines else ""


# ---------------------------------------------------------------- parsers (unit-tested on fixtures)


def parse_gpu_csv(out: str) -> list[dict]:
    """`nvidia-smi --query-gpu=index,name,pci.bus_id --format=csv,noheader`."""
    gpus = []
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 3 and fields[0].isdigit():
            gpus.append({"index": int(fields[0]), "name": fields[1], "pci_bus_id": fields[2]})
    return gpus


def _num(text: str | None) -> float | None:
    m = re.match(r"\s*(-?[0-9.]+)", text or "")
    return float(m.group(1)) if m else None


def _text(node: ET.Element, path: str) -> str | None:
    found = node.find(path)
    return found.text.strip() if found is not None and found.text else None


def parse_smi_xml(xml_text: str) -> list[dict]:
    """Per GPU from `nvidia-smi -q -x`: ECC, retired pages, remapped rows, throttle reasons, power."""
    root = ET.fromstring(xml_text)
    gpus = []
    for i, gpu in enumerate(root.findall("gpu")):
        vol = gpu.find("ecc_errors/volatile")
        ecc_unc = 0
        if vol is not None:
            for child in vol:
                if "uncorrectable" in child.tag or child.tag in ("double_bit",):
                    total = _num(child.text) if len(child) == 0 else _num(_text(child, "total"))
                    ecc_unc += int(total or 0)
        reasons = gpu.find("clocks_event_reasons")
        if reasons is None:
            reasons = gpu.find("clocks_throttle_reasons")  # drivers before 535
        active = sorted(
            c.tag.replace("clocks_event_reason_", "").replace("clocks_throttle_reason_", "")
            for c in (reasons if reasons is not None else [])
            if (c.text or "").strip() == "Active"
        )
        power = gpu.find("gpu_power_readings")
        if power is None:
            power = gpu.find("power_readings")

        def p(tag: str, power: ET.Element | None = power) -> float | None:
            return _num(_text(power, tag)) if power is not None else None

        gpus.append(
            {
                "index": i,
                "name": _text(gpu, "product_name") or "",
                "pci_bus_id": gpu.get("id", ""),
                "ecc_mode": _text(gpu, "ecc_mode/current_ecc") or "",
                "ecc_volatile_uncorrectable": ecc_unc,
                "retired_pending": (
                    _text(gpu, "retired_pages/pending_blacklist")
                    or _text(gpu, "retired_pages/pending_retirement")
                    or "No"
                ),
                "remap_pending": _text(gpu, "remapped_rows/remapped_row_pending") or "No",
                "remap_failure": _text(gpu, "remapped_rows/remapped_row_failure") or "No",
                "remap_uncorrectable": int(_num(_text(gpu, "remapped_rows/remapped_row_unc")) or 0),
                "throttle_active": active,
                "power_draw_w": p("power_draw") or p("average_power_draw") or p("instant_power_draw"),
                "power_limit_w": p("current_power_limit") or p("power_limit"),
                "power_default_limit_w": p("default_power_limit"),
                "sm_clock_max_mhz": _num(_text(gpu, "max_clocks/sm_clock")),
            }
        )
    return gpus


def parse_topo(out: str) -> dict[tuple[int, int], str]:
    """GPU-to-GPU cells of `nvidia-smi topo -m` ({(i, j): 'NV18' | 'SYS' | ...})."""
    cells: dict[tuple[int, int], str] = {}
    header: list[str] = []
    for line in re.sub(r"\x1b\[[0-9;]*m", "", out).splitlines():  # it underlines the header
        fields = line.split()
        if not fields:
            continue
        if not header and fields[0].startswith("GPU0"):
            header = fields
            continue
        if header and re.fullmatch(r"GPU\d+", fields[0]):
            row = int(fields[0][3:])
            for k, col in enumerate(header[: len(fields) - 1]):
                if re.fullmatch(r"GPU\d+", col) and int(col[3:]) != row:
                    cells[(row, int(col[3:]))] = fields[k + 1]
    return cells


def parse_fi_info(out: str) -> list[str]:
    """Distinct EFA domains (devices) `fi_info -p efa` lists (one per device and endpoint type)."""
    domains = re.findall(r"^\s*domain:\s*(\S+)", out, re.MULTILINE)
    return sorted({re.sub(r"-(rdm|dgrm)$", "", d) for d in domains})


XID_RE = re.compile(r"NVRM: Xid \(PCI:([0-9a-fA-F:.]+)\): (\d+)")


def parse_xids(kernel_log: str) -> list[dict]:
    return [{"pci": m.group(1), "xid": int(m.group(2))} for m in XID_RE.finditer(kernel_log)]


def busbw_from_metrics(path: str, nbytes: int) -> tuple[float | None, bool]:
    """busbw_gbps and correctness of the all_reduce at nbytes in a collectives metrics file."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if (
                rec.get("event") == "collective"
                and rec.get("op") == "all_reduce"
                and rec.get("bytes") == nbytes
            ):
                return rec.get("busbw_gbps"), bool(rec.get("correct"))
    return None, False


# ---------------------------------------------------------------- checks


class Node:
    """What the checks read; tests give it recorded command outputs instead of a real node."""

    def __init__(self, cfg: dict, runner=run):
        self.cfg = cfg
        self.run = runner
        self._cache: dict = {}

    def cached(self, key: str, cmd: list[str], timeout: float = 60):
        if key not in self._cache:
            self._cache[key] = self.run(cmd, timeout)
        return self._cache[key]

    def gpu_list(self):
        return self.cached(
            "csv", [self.cfg["nvidia_smi"], "--query-gpu=index,name,pci.bus_id", "--format=csv,noheader"]
        )

    def smi_xml(self):
        return self.cached("xml", [self.cfg["nvidia_smi"], "-q", "-x"])


def _no_gpu_expected(name: str, cfg: dict) -> dict | None:
    return check(name, PASS, "no GPU expected") if int(cfg["expect_gpus"]) == 0 else None


def check_gpu_count(node: Node) -> dict:
    want = int(node.cfg["expect_gpus"])
    res = node.gpu_list()
    if res is None or res[0] != 0:
        if want == 0:
            return check("gpu_count", PASS, "no GPU expected", found=0)
        why = "nvidia-smi not found" if res is None else first_line(res[2] or res[1]) or f"rc={res[0]}"
        return check("gpu_count", FAIL, f"{want} GPU(s) expected, nvidia-smi failed: {why}", found=0)
    gpus = parse_gpu_csv(res[1])
    if len(gpus) == want:
        return check("gpu_count", PASS, f"{want} GPU(s)", found=want, gpus=gpus)
    if want == 0:
        return check("gpu_count", WARN, f"{len(gpus)} GPU(s) found on a type with none", found=len(gpus))
    return check("gpu_count", FAIL, f"{len(gpus)} GPU(s) found, {want} expected", found=len(gpus), gpus=gpus)


def _xml_gpus(node: Node, name: str) -> tuple[list[dict] | None, dict | None]:
    res = node.smi_xml()
    if res is None:
        return None, check(name, FAIL, "nvidia-smi not found")
    if res[0] != 0:
        return None, check(name, FAIL, f"nvidia-smi -q -x failed: {first_line(res[2] or res[1]) or res[0]}")
    try:
        return parse_smi_xml(res[1]), None
    except ET.ParseError as exc:
        return None, check(name, FAIL, f"nvidia-smi -q -x: unreadable XML ({exc})")


def check_gpu_ecc(node: Node) -> dict:
    if skip := _no_gpu_expected("gpu_ecc", node.cfg):
        return skip
    gpus, err = _xml_gpus(node, "gpu_ecc")
    if err:
        return err
    bad, warn = [], []
    for g in gpus:
        if g["ecc_volatile_uncorrectable"]:
            bad.append(f"GPU{g['index']} {g['ecc_volatile_uncorrectable']} uncorrectable ECC error(s)")
        if g["remap_failure"] == "Yes":
            bad.append(f"GPU{g['index']} row remapping failed")
        if g["remap_pending"] == "Yes" or g["retired_pending"] == "Yes":
            bad.append(f"GPU{g['index']} page retirement/row remap pending (reset the GPU)")
        if g["ecc_mode"] and g["ecc_mode"] != "Enabled":
            warn.append(f"GPU{g['index']} ECC {g['ecc_mode']}")
    data = {
        "gpus": [
            {
                k: g[k]
                for k in (
                    "index",
                    "ecc_mode",
                    "ecc_volatile_uncorrectable",
                    "remap_pending",
                    "remap_failure",
                    "remap_uncorrectable",
                    "retired_pending",
                )
            }
            for g in gpus
        ]
    }
    if bad:
        return check("gpu_ecc", FAIL, "; ".join(bad), **data)
    if warn:
        return check("gpu_ecc", WARN, "; ".join(warn), **data)
    return check(
        "gpu_ecc", PASS, f"no uncorrectable ECC errors or pending remaps on {len(gpus)} GPU(s)", **data
    )


def check_gpu_xid(node: Node) -> dict:
    if skip := _no_gpu_expected("gpu_xid", node.cfg):
        return skip
    res = node.run(["dmesg", "--kernel", "--nopager"], 30)
    if res is None or res[0] != 0:
        return check("gpu_xid", WARN, "kernel log unreadable (dmesg): Xids not checked")
    xids = parse_xids(res[1])
    fatal = sorted({x["xid"] for x in xids if x["xid"] in node.cfg["xid_fatal"]})
    if fatal:
        return check(
            "gpu_xid", FAIL, f"Xid {', '.join(map(str, fatal))} in the kernel log since boot", xids=xids
        )
    if xids:
        return check(
            "gpu_xid",
            WARN,
            f"Xid {', '.join(sorted({str(x['xid']) for x in xids}))} in the kernel log",
            xids=xids,
        )
    return check("gpu_xid", PASS, "no Xid in the kernel log since boot")


def check_gpu_clocks_power(node: Node) -> dict:
    if skip := _no_gpu_expected("gpu_clocks_power", node.cfg):
        return skip
    gpus, err = _xml_gpus(node, "gpu_clocks_power")
    if err:
        return err
    bad, warn = [], []
    for g in gpus:
        act = set(g["throttle_active"])
        if act & {"hw_slowdown", "hw_power_brake_slowdown"}:
            bad.append(f"GPU{g['index']} hardware slowdown active")
        if act & {"hw_thermal_slowdown", "sw_thermal_slowdown"}:
            warn.append(f"GPU{g['index']} thermal slowdown active")
        lim, dflt = g["power_limit_w"], g["power_default_limit_w"]
        if lim and dflt and lim < 0.95 * dflt:
            warn.append(f"GPU{g['index']} power limit {lim:g} W below its default {dflt:g} W")
    data = {
        "gpus": [
            {
                k: g[k]
                for k in (
                    "index",
                    "throttle_active",
                    "power_draw_w",
                    "power_limit_w",
                    "power_default_limit_w",
                    "sm_clock_max_mhz",
                )
            }
            for g in gpus
        ]
    }
    if bad:
        return check("gpu_clocks_power", FAIL, "; ".join(bad), **data)
    if warn:
        return check("gpu_clocks_power", WARN, "; ".join(warn), **data)
    return check(
        "gpu_clocks_power", PASS, f"no slowdown, power limits at default on {len(gpus)} GPU(s)", **data
    )


def check_gpu_topology(node: Node) -> dict:
    want = int(node.cfg["expect_gpus"])
    nvlink = node.cfg["expect_nvlink"]
    if nvlink is None:
        nvlink = want > 1
    if want == 0:
        return check("gpu_topology", PASS, "no GPU expected")
    if not nvlink:
        return check("gpu_topology", PASS, "NVLink not expected for this type")
    res = node.run([node.cfg["nvidia_smi"], "topo", "-m"], 60)
    if res is None:
        return check("gpu_topology", FAIL, "nvidia-smi not found")
    if res[0] != 0:
        return check(
            "gpu_topology", FAIL, f"nvidia-smi topo -m failed: {first_line(res[2] or res[1]) or res[0]}"
        )
    cells = parse_topo(res[1])
    missing = sorted(f"GPU{i}-GPU{j}" for (i, j), v in cells.items() if i < j and not v.startswith("NV"))
    if not cells:
        return check("gpu_topology", FAIL, "nvidia-smi topo -m lists no GPU pair")
    if missing:
        return check(
            "gpu_topology",
            FAIL,
            f"no NVLink between {', '.join(missing[:4])}"
            + (f" and {len(missing) - 4} more pair(s)" if len(missing) > 4 else ""),
            matrix=_topo_data(cells),
        )
    links = sorted(set(cells.values()))
    return check(
        "gpu_topology", PASS, f"NVLink between every GPU pair ({', '.join(links)})", matrix=_topo_data(cells)
    )


def _topo_data(cells: dict) -> dict:
    return {f"{i}-{j}": v for (i, j), v in sorted(cells.items())}


def check_efa(node: Node) -> dict:
    want = int(node.cfg["expect_efa"])
    if want == 0:
        return check("efa", PASS, "no EFA expected")
    res = node.run([node.cfg["fi_info"], "-p", "efa"], 60)
    if res is None:
        return check(
            "efa", FAIL, f"{want} EFA device(s) expected, fi_info not found (EFA installer missing?)"
        )
    if res[0] != 0:
        return check(
            "efa", FAIL, f"{want} EFA device(s) expected, fi_info -p efa: {first_line(res[2] or res[1])}"
        )
    devices = parse_fi_info(res[1])
    if len(devices) < want:
        return check(
            "efa", FAIL, f"{len(devices)} EFA device(s) from fi_info, {want} expected", devices=devices
        )
    return check("efa", PASS, f"{len(devices)} EFA device(s)", devices=devices)


def check_disk(node: Node) -> dict:
    need = float(node.cfg["disk_min_free_gib"])
    free, bad, warn = {}, [], []
    for path in node.cfg["disk_paths"]:
        try:
            gib = shutil.disk_usage(path).free / 2**30
        except OSError as exc:
            bad.append(f"{path}: {exc.strerror}")
            continue
        free[path] = round(gib, 1)
        if gib < need:
            bad.append(f"{path} {gib:.1f} GiB free < {need:g} GiB")
        elif gib < 2 * need:
            warn.append(f"{path} {gib:.1f} GiB free (< 2x {need:g} GiB)")
    if bad:
        return check("disk", FAIL, "; ".join(bad), free_gib=free)
    if warn:
        return check("disk", WARN, "; ".join(warn), free_gib=free)
    return check("disk", PASS, ", ".join(f"{p} {g:g} GiB free" for p, g in free.items()), free_gib=free)


def read_meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    out = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            key, _sep, rest = line.partition(":")
            if rest.split():
                out[key] = int(rest.split()[0])  # kB
    return out


def check_memory(node: Node, meminfo: dict | None = None) -> dict:
    info = meminfo if meminfo is not None else read_meminfo()
    avail = info.get("MemAvailable", info.get("MemFree", 0)) / 2**20
    total = info.get("MemTotal", 0) / 2**20
    need = float(node.cfg["mem_min_available_gib"])
    data = {"available_gib": round(avail, 1), "total_gib": round(total, 1)}
    if avail < need:
        return check("memory", FAIL, f"{avail:.1f} GiB available < {need:g} GiB", **data)
    return check("memory", PASS, f"{avail:.1f} of {total:.1f} GiB available", **data)


def check_ulimits(node: Node, limits: dict | None = None) -> dict:
    lim = limits or {
        "memlock": resource.getrlimit(resource.RLIMIT_MEMLOCK)[0],
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }
    show = {k: "unlimited" if v == resource.RLIM_INFINITY else v for k, v in lim.items()}
    need_memlock = node.cfg["memlock_unlimited"]
    if need_memlock is None:
        need_memlock = int(node.cfg["expect_gpus"]) > 0 or int(node.cfg["expect_efa"]) > 0
    bad = []
    if need_memlock and lim["memlock"] != resource.RLIM_INFINITY:
        bad.append(f"memlock {show['memlock']} (EFA/GPUDirect need unlimited)")
    if lim["nofile"] != resource.RLIM_INFINITY and lim["nofile"] < int(node.cfg["nofile_min"]):
        bad.append(f"nofile {lim['nofile']} < {node.cfg['nofile_min']}")
    if bad:
        return check("ulimits", FAIL, "; ".join(bad), **show)
    return check("ulimits", PASS, f"memlock {show['memlock']}, nofile {show['nofile']}", **show)


TORCH_SCREEN = (
    "import json, torch; c = torch.cuda.is_available(); print(json.dumps({"
    "'torch': torch.__version__, 'cuda': torch.version.cuda, 'cuda_available': c,"
    "'devices': torch.cuda.device_count() if c else 0,"
    "'cudnn': str(torch.backends.cudnn.version()) if c else None,"
    "'nccl': '.'.join(map(str, torch.cuda.nccl.version())) if c else None}))"
)


def check_torch(node: Node) -> dict:
    want = int(node.cfg["expect_gpus"])
    res = node.run([node.cfg["python"], "-c", TORCH_SCREEN], 120)
    if res is None or res[0] != 0:
        lines = [] if res is None else (res[2] or res[1]).strip().splitlines()
        why = "not found" if res is None else (lines[-1] if lines else f"rc={res[0]}")
        status = FAIL if want else WARN
        return check("torch", status, f"{node.cfg['python']} cannot import torch: {why}")
    env = json.loads(res[1].strip().splitlines()[-1])
    desc = f"torch {env['torch']}" + (
        f", CUDA {env['cuda']}, cuDNN {env['cudnn']}, NCCL {env['nccl']}"
        if env["cuda_available"]
        else " (no CUDA device)"
    )
    if want and env["devices"] != want:
        return check("torch", FAIL, f"{desc}: torch sees {env['devices']} GPU(s), {want} expected", **env)
    return check("torch", PASS, desc, **env)


def check_nccl(node: Node) -> dict:
    want = int(node.cfg["expect_gpus"])
    floor = float(node.cfg["nccl_busbw_min_gbps"])
    nbytes = int(node.cfg["nccl_bytes"])
    if want < 2 or floor <= 0:
        return check(
            "nccl_allreduce",
            PASS,
            "no NCCL threshold for this type"
            if want > 1
            else "no one-node all-reduce with fewer than 2 GPUs",
        )
    code = node.cfg["nccl_code_dir"]
    with tempfile.TemporaryDirectory(prefix="awsome-health-nccl-") as out:
        env = dict(
            os.environ,
            PYTHONPATH=f"{code}/common:{code}/collectives/src",
            OMP_NUM_THREADS="1",
            NCCL_NVLS_ENABLE="0",
            TORCH_SYMM_MEM_DISABLE_MULTICAST="1",
            NVSHMEM_DISABLE_NVLS="1",
        )
        res = node.run(
            [
                node.cfg["python"],
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc-per-node={want}",
                f"{code}/collectives/src/collectives.py",
                "--ops",
                "all_reduce",
                "--min-bytes",
                str(nbytes),
                "--max-bytes",
                str(nbytes),
                "--iters",
                "20",
                "--warmup-iters",
                "5",
                "--dtype",
                "bf16",
                "--device",
                "cuda",
                "--output-dir",
                out,
            ],
            600,
            env,
        )
        metrics = os.path.join(out, "metrics-rank0.jsonl")
        if res is None or res[0] != 0 or not os.path.exists(metrics):
            tail = (res[2] or res[1]).strip().splitlines()[-1:] if res else ["python not found"]
            return check("nccl_allreduce", FAIL, f"all_reduce run failed: {tail[0] if tail else res[0]}")
        busbw, correct = busbw_from_metrics(metrics, nbytes)
    return grade_busbw(busbw, correct, floor, nbytes, want)


def grade_busbw(busbw: float | None, correct: bool, floor: float, nbytes: int, gpus: int) -> dict:
    size = f"{nbytes / 2**20:g} MiB"
    if busbw is None:
        return check("nccl_allreduce", FAIL, f"no all_reduce result at {size} in the metrics")
    if not correct:
        return check("nccl_allreduce", FAIL, f"all_reduce at {size} gave a wrong result", busbw_gbps=busbw)
    data = {"busbw_gbps": busbw, "min_gbps": floor, "bytes": nbytes, "gpus": gpus}
    if busbw < floor:
        return check(
            "nccl_allreduce",
            FAIL,
            f"all_reduce busbw {busbw:.1f} GB/s < {floor:g} GB/s ({gpus} GPUs, {size})",
            **data,
        )
    return check(
        "nccl_allreduce",
        PASS,
        f"all_reduce busbw {busbw:.1f} GB/s >= {floor:g} GB/s ({gpus} GPUs, {size})",
        **data,
    )


QUICK = [
    check_gpu_count,
    check_gpu_ecc,
    check_gpu_xid,
    check_gpu_clocks_power,
    check_gpu_topology,
    check_efa,
    check_disk,
    check_memory,
    check_ulimits,
]
FULL = [*QUICK, check_torch, check_nccl]


def run_checks(node: Node, quick: bool) -> dict:
    results = []
    for fn in QUICK if quick else FULL:
        try:
            results.append(fn(node))
        except Exception as exc:  # a check that breaks is a failed check, not a crashed program
            results.append(
                check(fn.__name__.removeprefix("check_"), FAIL, f"check raised {type(exc).__name__}: {exc}")
            )
    status = grade(results)
    failed = [r for r in results if r["status"] == FAIL]
    return {
        "host": socket.gethostname().split(".")[0],
        "time": round(time.time(), 3),
        "mode": "quick" if quick else "full",
        "status": status,
        "reason": "; ".join(f"{r['name']}: {r['reason']}" for r in failed),
        "checks": results,
    }


# ---------------------------------------------------------------- Slurm


def slurm_reason(report: dict) -> str:
    # scontrol keeps the reason on one line; keep it short enough for `sinfo -R`.
    return f"{REASON_PREFIX} {report['reason']}"[:200].replace('"', "'")


def slurm_action(report: dict, current_state: str, current_reason: str) -> str | None:
    """'drain', 'resume' or None: resume only a node this program drained."""
    drained = any(s in current_state.lower() for s in ("drain", "drng", "drained"))
    if report["status"] == FAIL:
        return (
            "drain"
            if not (
                drained
                and current_reason.startswith(REASON_PREFIX)
                and current_reason == slurm_reason(report)
            )
            else None
        )
    if drained and current_reason.startswith(REASON_PREFIX):
        return "resume"
    return None


def parse_scontrol_node(out: str) -> tuple[str, str]:
    state = re.search(r"\bState=(\S+)", out)
    reason = re.search(r"\bReason=(.*?)(?: \[[^\]]*\])?\s*$", out, re.MULTILINE)
    return (state.group(1) if state else ""), (reason.group(1).strip() if reason else "")


def apply_slurm(report: dict, cfg: dict, runner=run) -> str | None:
    node = report["host"]
    res = runner([cfg["scontrol"], "show", "node", node], 30)
    if res is None or res[0] != 0:
        report["slurm"] = "scontrol show node failed"
        return None
    state, reason = parse_scontrol_node(res[1])
    action = slurm_action(report, state, reason)
    if action == "drain":
        runner(
            [cfg["scontrol"], "update", f"nodename={node}", "state=drain", f"reason={slurm_reason(report)}"],
            30,
        )
    elif action == "resume":
        runner([cfg["scontrol"], "update", f"nodename={node}", "state=resume"], 30)
    report["slurm"] = action or "unchanged"
    return action


# ---------------------------------------------------------------- entry point


def load_config(path: str | None, overrides: list[str]) -> dict:
    cfg = dict(DEFAULTS)
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            cfg.update(json.load(fh))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in DEFAULTS:
            raise SystemExit(
                f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(DEFAULTS))}"
            )
        try:
            cfg[key] = json.loads(value)
        except ValueError:
            cfg[key] = value
    return cfg


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="/etc/awsome/healthcheck.json")
    p.add_argument(
        "--quick", action="store_true", help="leave out the NCCL all-reduce and the PyTorch screen"
    )
    p.add_argument("--slurm", action="store_true", help="drain this node on failure, resume it after")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.set)
    report = run_checks(Node(cfg), args.quick)
    if args.slurm:
        apply_slurm(report, cfg)
    print(json.dumps(report, indent=1))
    if report["status"] == FAIL:
        print(f"{REASON_PREFIX} {report['reason']}", file=sys.stderr)
    return 1 if report["status"] == FAIL else 0


if __name__ == "__main__":
    sys.exit(main())
