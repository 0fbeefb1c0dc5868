"""GPU exporter (NVML): per GPU utilisation, memory, power, clocks, temperature, ECC, retired pages and
remapped rows, XID events, NVLink state and errors, and the Slurm job that holds each GPU.

Without NVML (no driver, no nvidia-ml-py) it serves awsome_gpu_nvml_up 0 and awsome_gpu_count 0
and keeps running: a CPU node scraped by the same Prometheus job says it sees no GPU.

Slurm job per GPU: `scontrol -d -o show job` lists, for each running job, the GPU indices it holds on
each node (`GRES=gpu:h100:2(IDX:0-1)`); GPUs with processes that no such line covers are matched
through the process's cgroup (`.../job_<id>/...`) or its SLURM_JOB_ID. The gres index is Slurm's
(gres.conf order, = the NVML index with AutoDetect=nvml or File=/dev/nvidia[0-N]).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .serve import parser, run
from .slurm import expand_hostlist

try:  # nvidia-ml-py; absent on CPU nodes
    import pynvml
except ImportError:  # pragma: no cover - depends on the node
    pynvml = None


def expand_indices(text: str) -> list[int]:
    """'0-1,3' -> [0, 1, 3]."""
    out = []
    for rng in filter(None, text.split(",")):
        lo, _sep, hi = rng.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def slurm_gpu_jobs(show_job: str, node: str) -> dict[int, str]:
    """GPU index -> job id for running jobs on `node`, from `scontrol -d -o show job`."""
    held = {}
    for line in show_job.splitlines():
        job = re.search(r"\bJobId=(\d+)", line)
        if not job or "JobState=RUNNING" not in line:
            continue
        for nodes, gres in re.findall(r"\bNodes=(\S+) CPU_IDs=\S+ Mem=\S+ GRES=(\S*)", line):
            if node not in expand_hostlist(nodes):
                continue
            for idx in re.findall(r"gpu[^(,]*\(IDX:([\d,-]+)\)", gres):
                for i in expand_indices(idx):
                    held[i] = job.group(1)
    return held


def process_job(pid: int, proc: Path = Path("/proc")) -> str | None:
    """The Slurm job of a process: its cgroup path (job_<id>), else SLURM_JOB_ID in its environment."""
    try:
        m = re.search(r"/job_(\d+)(?:/|$)", (proc / str(pid) / "cgroup").read_text(), re.M)
        if m:
            return m.group(1)
        env = (proc / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"SLURM_JOB_ID="):
            return item.split(b"=", 1)[1].decode()
    return None


class GpuCollector:
    def __init__(self, slurm_node: str | None = None, xid_events: bool = True):
        self.slurm_node = slurm_node or socket.gethostname().split(".")[0]
        self.xid_events = xid_events
        self.error = "" if pynvml else "nvidia-ml-py (pynvml) is not installed"
        self.ready = False
        self.xids: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()

    # ---- NVML
    def init(self) -> bool:
        if self.ready or pynvml is None:
            return self.ready
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...: a CPU node
            self.error = str(exc) or type(exc).__name__
            return False
        self.ready, self.error = True, ""
        if self.xid_events:
            threading.Thread(target=self.watch_xids, daemon=True).start()
        return True

    def watch_xids(self) -> None:
        """Count XID events (critical errors) per GPU and XID code, as NVML reports them."""
        try:
            events = pynvml.nvmlEventSetCreate()
            for i in range(pynvml.nvmlDeviceGetCount()):
                try:
                    pynvml.nvmlDeviceRegisterEvents(pynvml.nvmlDeviceGetHandleByIndex(i),
                                                    pynvml.nvmlEventTypeXidCriticalError, events)
                except pynvml.NVMLError as exc:
                    print(f"gpu exporter: GPU {i}: no XID events: {exc}", file=sys.stderr)
        except pynvml.NVMLError as exc:
            print(f"gpu exporter: no XID events: {exc}", file=sys.stderr)
            return
        while True:
            try:
                data = pynvml.nvmlEventSetWait(events, 5000)
            except pynvml.NVMLError_Timeout:
                continue
            except pynvml.NVMLError as exc:
                print(f"gpu exporter: XID wait: {exc}", file=sys.stderr)
                continue
            key = (str(pynvml.nvmlDeviceGetIndex(data.device)), str(data.eventData))
            with self.lock:
                self.xids[key] = self.xids.get(key, 0) + 1

    def jobs(self, count: int, handles: list) -> dict[int, str]:
        held: dict[int, str] = {}
        if shutil.which("scontrol"):
            try:
                out = subprocess.run(["scontrol", "-d", "-o", "show", "job"], capture_output=True, text=True,
                                     timeout=10, check=True).stdout
                held = slurm_gpu_jobs(out, self.slurm_node)
            except (OSError, subprocess.SubprocessError) as exc:
                print(f"gpu exporter: scontrol: {exc}", file=sys.stderr)
        for i in range(count):
            if i in held:
                continue
            for p in nvml(pynvml.nvmlDeviceGetComputeRunningProcesses, handles[i]) or []:
                job = process_job(p.pid)
                if job:
                    held[i] = job
                    break
        return held

    # ---- scrape
    def collect(self):
        up = GaugeMetricFamily("awsome_gpu_nvml_up", "1 when NVML answered (0: no driver or no GPU)",
                               labels=["error"])
        count = GaugeMetricFamily("awsome_gpu_count", "GPUs NVML sees on this node")
        if not self.init():
            up.add_metric([self.error], 0)
            count.add_metric([], 0)
            yield from (up, count)
            return
        n = pynvml.nvmlDeviceGetCount()
        up.add_metric([""], 1)
        count.add_metric([], n)
        yield from (up, count)
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(n)]
        yield from self.per_gpu(handles)

    def per_gpu(self, handles: list):
        g = {name: GaugeMetricFamily(f"awsome_gpu_{name}", doc, labels=["gpu", *extra])
             for name, doc, extra in GAUGES}
        c = {name: CounterMetricFamily(f"awsome_gpu_{name}", doc, labels=["gpu", *extra])
             for name, doc, extra in COUNTERS}
        driver = nvml(pynvml.nvmlSystemGetDriverVersion) or ""
        for i, h in enumerate(handles):
            gpu = str(i)
            uuid, name = nvml(pynvml.nvmlDeviceGetUUID, h), nvml(pynvml.nvmlDeviceGetName, h)
            g["info"].add_metric([gpu, str(uuid), str(name), str(driver)], 1)
            util = nvml(pynvml.nvmlDeviceGetUtilizationRates, h)
            if util is not None:
                g["utilization_percent"].add_metric([gpu], util.gpu)
                g["memory_utilization_percent"].add_metric([gpu], util.memory)
            mem = nvml(pynvml.nvmlDeviceGetMemoryInfo, h)
            if mem is not None:
                g["memory_used_bytes"].add_metric([gpu], mem.used)
                g["memory_total_bytes"].add_metric([gpu], mem.total)
            add(g["power_watts"], [gpu], nvml(pynvml.nvmlDeviceGetPowerUsage, h), 1e-3)
            add(g["power_limit_watts"], [gpu], nvml(pynvml.nvmlDeviceGetEnforcedPowerLimit, h), 1e-3)
            temp = nvml(pynvml.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU)
            add(g["temperature_celsius"], [gpu], temp)
            for clock, const in (("sm", pynvml.NVML_CLOCK_SM), ("memory", pynvml.NVML_CLOCK_MEM)):
                add(g["clock_hz"], [gpu, clock], nvml(pynvml.nvmlDeviceGetClockInfo, h, const), 1e6)
            for kind, etype in (("corrected", pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED),
                                ("uncorrected", pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)):
                for scope, counter in (("volatile", pynvml.NVML_VOLATILE_ECC),
                                       ("aggregate", pynvml.NVML_AGGREGATE_ECC)):
                    errors = nvml(pynvml.nvmlDeviceGetTotalEccErrors, h, etype, counter)
                    add(c["ecc_errors"], [gpu, kind, scope], errors)
            # Page retirement (up to Volta/Turing); Ampere and later remap rows instead.
            for cause, const in RETIREMENT_CAUSES:
                pages = nvml(pynvml.nvmlDeviceGetRetiredPages, h, const)
                if pages is not None:
                    g["retired_pages"].add_metric([gpu, cause], len(pages))
            add(g["retired_pages_pending"], [gpu], nvml(pynvml.nvmlDeviceGetRetiredPagesPendingStatus, h))
            rows = nvml(pynvml.nvmlDeviceGetRemappedRows, h)
            if rows is not None:
                corr, unc, pending, failure = rows
                g["remapped_rows"].add_metric([gpu, "correctable"], corr)
                g["remapped_rows"].add_metric([gpu, "uncorrectable"], unc)
                g["remapped_rows_pending"].add_metric([gpu], int(pending))
                g["remapped_rows_failure"].add_metric([gpu], int(failure))
            active = 0
            for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
                state = nvml(pynvml.nvmlDeviceGetNvLinkState, h, link)
                if state is None:
                    continue
                active += int(state == pynvml.NVML_FEATURE_ENABLED)
                for kind, const in NVLINK_ERRORS:
                    add(c["nvlink_errors"], [gpu, str(link), kind],
                        nvml(pynvml.nvmlDeviceGetNvLinkErrorCounter, h, link, getattr(pynvml, const)))
            g["nvlink_active_links"].add_metric([gpu], active)
        with self.lock:
            xids = dict(self.xids)
        for (gpu, xid), value in sorted(xids.items()):
            c["xid_errors"].add_metric([gpu, xid], value)
        for gpu in range(len(handles)):
            # Every GPU has this series from 0 on, so that increase() sees a GPU's first XID as a change.
            c["xid_events"].add_metric([str(gpu)], sum(v for k, v in xids.items() if k[0] == str(gpu)))
        for i, job in sorted(self.jobs(len(handles), handles).items()):
            g["slurm_job"].add_metric([str(i), job], 1)
        yield from g.values()
        yield from c.values()


GAUGES = [
    ("info", "GPU identity (value 1)", ["uuid", "name", "driver"]),
    ("utilization_percent", "GPU busy time over NVML's last sample period", []),
    ("memory_utilization_percent", "Memory controller busy time", []),
    ("memory_used_bytes", "Framebuffer memory in use", []),
    ("memory_total_bytes", "Framebuffer memory", []),
    ("power_watts", "Power draw", []),
    ("power_limit_watts", "Enforced power limit", []),
    ("temperature_celsius", "GPU temperature", []),
    ("clock_hz", "Current clock", ["clock"]),
    ("retired_pages", "Pages retired by cause (pre-Ampere GPUs)", ["cause"]),
    ("retired_pages_pending", "1 when a page retirement waits for a reboot", []),
    ("remapped_rows", "Rows remapped (Ampere and later)", ["type"]),
    ("remapped_rows_pending", "1 when a row remapping waits for a GPU reset", []),
    ("remapped_rows_failure", "1 when a row remapping failed", []),
    ("nvlink_active_links", "NVLink links in the active state", []),
    ("slurm_job", "1 for the Slurm job holding the GPU", ["job_id"]),
]
COUNTERS = [
    ("ecc_errors", "ECC errors by type and scope (volatile: since driver load; aggregate: lifetime)",
     ["type", "scope"]),
    ("nvlink_errors", "NVLink errors per link and kind", ["link", "type"]),
    ("xid_errors", "XID critical-error events since the exporter started, per XID code", ["xid"]),
    ("xid_events", "XID critical-error events since the exporter started, all codes", []),
]
RETIREMENT_CAUSES = [
    ("single_bit", getattr(pynvml, "NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS", 0)),
    ("double_bit", getattr(pynvml, "NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR", 1)),
]
NVLINK_ERRORS = [("replay", "NVML_NVLINK_ERROR_DL_REPLAY"), ("recovery", "NVML_NVLINK_ERROR_DL_RECOVERY"),
                 ("crc_flit", "NVML_NVLINK_ERROR_DL_CRC_FLIT"), ("crc_data", "NVML_NVLINK_ERROR_DL_CRC_DATA")]


def nvml(fn, *args):
    """Call an NVML function; None where the GPU does not support it (or the call fails)."""
    try:
        return fn(*args)
    except pynvml.NVMLError:
        return None


def add(family, labels: list[str], value, scale: float = 1.0) -> None:
    if value is not None:
        family.add_metric(labels, value * scale)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0], 9400)
    p.add_argument("--slurm-node", help="this node's Slurm NodeName (default: the short hostname)")
    p.add_argument("--no-xid-events", action="store_true", help="do not listen for XID events")
    args = p.parse_args(argv)
    return run(args, lambda: GpuCollector(args.slurm_node, not args.no_xid_events))


if __name__ == "__main__":
    sys.exit(main())
