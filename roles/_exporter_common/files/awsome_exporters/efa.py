"""EFA exporter: every hw_counters file of every RDMA device and port under sysfs, plus link state.

Counter names are kept as the driver writes them (label `counter`), so counters that a newer EFA
driver adds show up without a change here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .serve import parser, run

SYSFS_ROOT = "/sys/class/infiniband"
# hw_counters files that are settings, not counts.
NOT_COUNTERS = {"lifespan"}


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_counters(directory: Path) -> dict[str, int]:
    if not directory.is_dir():
        return {}
    found = {}
    for f in sorted(directory.iterdir()):
        if f.name in NOT_COUNTERS or not f.is_file():
            continue
        value = read_int(f)
        if value is not None:
            found[f.name] = value
    return found


def parse_state(text: str) -> tuple[int, str]:
    """'4: ACTIVE' -> (4, 'ACTIVE')."""
    m = re.match(r"\s*(\d+):\s*(\S+)", text)
    return (int(m.group(1)), m.group(2)) if m else (0, text.strip() or "UNKNOWN")


def parse_rate(text: str) -> float | None:
    """'100 Gb/sec (4X EDR)' -> 100.0 (Gbit/s)."""
    m = re.match(r"\s*([\d.]+)\s*Gb/sec", text)
    return float(m.group(1)) if m else None


def scan(root: Path) -> list[dict]:
    """One dict per device: name, device-level counters and per-port state and counters."""
    devices = []
    if not root.is_dir():
        return devices
    for dev in sorted(d for d in root.iterdir() if d.is_dir()):
        ports = []
        for port in sorted((dev / "ports").glob("*"), key=lambda p: p.name):
            state = phys = (0, "UNKNOWN")
            rate = None
            if (port / "state").is_file():
                state = parse_state((port / "state").read_text())
            if (port / "phys_state").is_file():
                phys = parse_state((port / "phys_state").read_text())
            if (port / "rate").is_file():
                rate = parse_rate((port / "rate").read_text())
            ports.append({"port": port.name, "state": state, "phys_state": phys, "rate_gbps": rate,
                          "counters": read_counters(port / "hw_counters")})
        devices.append({"device": dev.name, "counters": read_counters(dev / "hw_counters"), "ports": ports})
    return devices


class EfaCollector:
    def __init__(self, root: str = SYSFS_ROOT):
        self.root = Path(root)

    def collect(self):
        devices = scan(self.root)
        count = GaugeMetricFamily("awsome_efa_devices", "RDMA devices found under the sysfs root")
        count.add_metric([], len(devices))
        yield count
        up = GaugeMetricFamily("awsome_efa_port_up", "1 when the port state is ACTIVE",
                               labels=["device", "port"])
        state = GaugeMetricFamily("awsome_efa_port_state", "Port state as the driver numbers it (4 = ACTIVE)",
                                  labels=["device", "port", "state"])
        phys = GaugeMetricFamily("awsome_efa_port_phys_state", "Physical port state (5 = LinkUp)",
                                 labels=["device", "port", "phys_state"])
        rate = GaugeMetricFamily("awsome_efa_port_rate_gbps", "Port link rate in Gbit/s",
                                 labels=["device", "port"])
        port_counters = CounterMetricFamily("awsome_efa_hw_counter", "Port hw_counters, driver names",
                                            labels=["device", "port", "counter"])
        dev_counters = CounterMetricFamily("awsome_efa_device_hw_counter", "Device-level hw_counters",
                                           labels=["device", "counter"])
        for dev in devices:
            for name, value in dev["counters"].items():
                dev_counters.add_metric([dev["device"], name], value)
            for p in dev["ports"]:
                labels = [dev["device"], p["port"]]
                up.add_metric(labels, 1 if p["state"][1] == "ACTIVE" else 0)
                state.add_metric([*labels, p["state"][1]], p["state"][0])
                phys.add_metric([*labels, p["phys_state"][1]], p["phys_state"][0])
                if p["rate_gbps"] is not None:
                    rate.add_metric(labels, p["rate_gbps"])
                for name, value in p["counters"].items():
                    port_counters.add_metric([*labels, name], value)
        yield from (up, state, phys, rate, port_counters, dev_counters)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0], 9401)
    p.add_argument("--sysfs-root", default=SYSFS_ROOT, help=f"RDMA devices directory (default {SYSFS_ROOT})")
    args = p.parse_args(argv)
    return run(args, lambda: EfaCollector(args.sysfs_root))


if __name__ == "__main__":
    sys.exit(main())
