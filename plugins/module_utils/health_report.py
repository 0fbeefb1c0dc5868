"""Cluster health and version reports: grade every node's checks, compare versions, write JSON + HTML.

Pure Python (no Ansible imports) so it is unit-tested on recorded node reports. The pages are drawn
with the test cases' report helpers (plugins/module_utils/report_html.py): one look for every report.
"""

from __future__ import annotations

import json
import os
import re

from ansible_collections.awsome.distributed_training.plugins.module_utils.report_html import (
    cell,
    e,
    figures,
    page,
    table,
    when,
)

RANK = {"pass": 0, "warn": 1, "fail": 2}

# Version report rows: component -> (label, the stack/versions.yml pin it is compared with or None).
VERSION_ROWS = [
    ("driver", "NVIDIA driver", "nvidia_driver"),
    ("cuda", "CUDA toolkit", "cuda"),
    ("nccl_host", "NCCL (host library)", "nccl"),
    ("nccl_image", "NCCL (image stack.json)", "nccl"),
    ("nccl_torch", "NCCL (loaded by torch)", None),
    ("aws_ofi_nccl", "aws-ofi-nccl", "aws_ofi_nccl"),
    ("libfabric", "libfabric", None),
    ("efa_installer", "EFA installer", "efa_installer"),
    ("neuron_driver", "Neuron driver", None),
    ("neuron_runtime", "Neuron runtime", None),
    ("slurm", "Slurm", "slurm"),
    ("torch", "PyTorch", None),
    ("torch_cuda", "CUDA (torch build)", None),
]


def worst(statuses) -> str:
    return max(statuses, key=RANK.__getitem__, default="pass")


def summarize(results: list[dict], run_id: str) -> dict:
    """One cluster verdict from the per-node reports of awsome_healthcheck.py."""
    nodes = sorted(results, key=lambda r: r.get("inventory_hostname", r.get("host", "")))
    failures = [f"{_name(n)}: {c['name']}: {c['reason']}" for n in nodes for c in n["checks"]
                if c["status"] == "fail"]
    warnings = [f"{_name(n)}: {c['name']}: {c['reason']}" for n in nodes for c in n["checks"]
                if c["status"] == "warn"]
    return {"run_id": run_id, "status": worst(n["status"] for n in nodes) if nodes else "fail",
            "nodes": [_name(n) for n in nodes], "node_status": {_name(n): n["status"] for n in nodes},
            "failures": failures, "warnings": warnings, "results": nodes}


def _name(node: dict) -> str:
    return node.get("inventory_hostname") or node.get("host", "?")


def one_line(summary: dict) -> str:
    """The message a failed validation stops with."""
    if summary["status"] != "fail":
        return f"health checks {summary['status']} on {len(summary['nodes'])} node(s)"

    def failed(node: dict) -> str:
        return "; ".join(f"{c['name']}: {c['reason']}" for c in node["checks"] if c["status"] == "fail")

    per_node = [f"{_name(n)}: {failed(n)}" for n in summary["results"] if n["status"] == "fail"]
    return "health check failed on " + " | ".join(per_node or ["no node reported"])


def headline(summary: dict) -> list[tuple[str, str]]:
    """What a reader looks for first: how many nodes passed, warned, failed; how many checks failed."""
    counts = {st: sum(1 for n in summary["results"] if n["status"] == st) for st in RANK}
    times = [n["time"] for n in summary["results"] if isinstance(n.get("time"), int | float)]
    modes = sorted({n.get("mode") for n in summary["results"] if n.get("mode")})
    return [
        ("nodes passed", f"{counts['pass']} of {len(summary['results'])}"),
        ("nodes warned", str(counts["warn"]) if counts["warn"] else ""),
        ("nodes failed", str(counts["fail"]) if counts["fail"] else ""),
        ("failed checks", str(len(summary["failures"])) if summary["failures"] else ""),
        ("checks", "/".join(modes)),
        ("checked", when(min(times)) if times else ""),
    ]


def health_html(summary: dict) -> str:
    nodes = summary["results"]
    checks: list[str] = []
    for n in nodes:
        for c in n["checks"]:
            if c["name"] not in checks:
                checks.append(c["name"])
    rows, classes = [], []
    for name in checks:
        row, cls = [e(name)], [""]
        for n in nodes:
            c = next((c for c in n["checks"] if c["name"] == name), None)
            row.append("not run" if c is None else f"<b>{e(c['status'])}</b> {e(c['reason'])}")
            cls.append("" if c is None else c["status"])
        rows.append(row)
        classes.append(cls)
    node_rows = [[cell(_name(n)), f'<span class="{e(n["status"])}">{e(n["status"])}</span>',
                  cell(n.get("host")), cell(n.get("mode")), cell(when(n.get("time")))]
                 for n in nodes]
    lists = "".join(f"<h2>{title}</h2><ul>{''.join(f'<li>{e(x)}</li>' for x in items)}</ul>"
                    for title, items in (("Failures", summary["failures"]), ("Warnings", summary["warnings"]))
                    if items)
    body = (figures(headline(summary)) + lists
            + "<h2>Checks</h2>" + table(["check", *(_name(n) for n in nodes)], rows, classes)
            + "<h2>Nodes</h2>" + table(["node", "status", "hostname", "checks", "checked"], node_rows))
    subtitle = f"run {e(summary['run_id'])} &middot; {len(nodes)} node(s)"
    return page("Node health", summary["status"], subtitle, body)


def write_health(run_dir: str, results: list[dict]) -> dict:
    run_id = os.path.basename(os.path.normpath(run_dir))
    summary = summarize(results, run_id)
    os.makedirs(os.path.join(run_dir, "nodes"), exist_ok=True)
    for node in summary["results"]:
        with open(os.path.join(run_dir, "nodes", f"{_name(node)}.json"), "w", encoding="utf-8") as fh:
            json.dump(node, fh, indent=1)
    with open(os.path.join(run_dir, "health.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1)
    with open(os.path.join(run_dir, "report.html"), "w", encoding="utf-8") as fh:
        fh.write(health_html(summary))
    return summary


# ---------------------------------------------------------------- versions

def _norm(v: str) -> str:
    v = str(v).strip().lower().removeprefix("v")
    return re.sub(r"-\d+$", "", v)  # a package release ("2.26.5-1") is not a different version


def matches_pin(found: str | None, pin: str | None) -> bool | None:
    """True/False when both are known; a found version may carry a build suffix (2.11.0+cu130)."""
    if not found or not pin:
        return None
    f, p = _norm(found), _norm(pin)
    return f == p or (f.startswith(p) and not f[len(p)].isdigit() and f[len(p)] != ".")


def versions_table(nodes: dict[str, dict], pins: dict[str, str]) -> dict:
    """Rows per component: each node's value, the pin, and flags (differs from pin / between nodes)."""
    hosts = sorted(nodes)
    rows, flags = [], []
    for key, label, pin_key in VERSION_ROWS:
        values = {h: (nodes[h].get(key) or None) for h in hosts}
        if not any(values.values()):
            continue
        pin = pins.get(pin_key) if pin_key else None
        seen = {v for v in values.values() if v}
        row = {"component": key, "label": label, "pinned": pin, "values": values, "off_pin": [],
               "differs_between_nodes": len(seen) > 1 or (len(seen) == 1 and None in values.values())}
        for h, v in values.items():
            if matches_pin(v, pin) is False:
                row["off_pin"].append(h)
        if row["off_pin"]:
            flags.append(f"{label}: {', '.join(f'{h} {values[h]}' for h in row['off_pin'])} "
                         f"differ(s) from the pin {pin}")
        if row["differs_between_nodes"]:
            flags.append(f"{label} differs between nodes: "
                         + ", ".join(f"{h} {values[h] or 'absent'}" for h in hosts))
        rows.append(row)
    return {"hosts": hosts, "rows": rows, "flags": flags}


def versions_text(table: dict) -> str:
    """The printed summary: a plain-text table, then the flags."""
    head = ["component", "pinned", *table["hosts"]]
    lines = [[r["label"], r["pinned"] or "-", *[(r["values"][h] or "-") + ("*" if h in r["off_pin"] else "")
                                                for h in table["hosts"]]] for r in table["rows"]]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head).rstrip(), *(fmt.format(*ln).rstrip() for ln in lines)]
    out.append("flags: " + ("; ".join(table["flags"]) if table["flags"] else "none"))
    return "\n".join(out)


def versions_html(versions: dict, run_id: str) -> str:
    rows, classes = [], []
    for r in versions["rows"]:
        hosts = versions["hosts"]
        rows.append([e(r["label"]), e(r["pinned"] or ""), *(e(r["values"][h] or "absent") for h in hosts)])
        differs = "differs" if r["differs_between_nodes"] else ""
        classes.append(["", "", *("fail" if h in r["off_pin"] else differs for h in hosts)])
    flags = "".join(f"<li>{e(f)}</li>" for f in versions["flags"])
    differing = sum(1 for r in versions["rows"] if r["off_pin"] or r["differs_between_nodes"])
    tiles = [("difference(s)", str(len(versions["flags"]))), ("nodes", str(len(versions["hosts"]))),
             ("components read", str(len(versions["rows"]))),
             ("components that differ", str(differing) if differing else "")]
    body = (figures(tiles)
            + (f"<h2>Differences</h2><ul>{flags}</ul>" if flags else "")
            + "<h2>Versions</h2>" + table(["component", "pinned", *versions["hosts"]], rows, classes))
    subtitle = (f"run {e(run_id)} &middot; read from each node (libraries, modinfo, package database), "
                f"compared with stack/versions.yml and between nodes")
    return page("Cluster versions", "fail" if versions["flags"] else "pass", subtitle, body)


def write_versions(run_dir: str, nodes: dict[str, dict], pins: dict[str, str]) -> dict:
    run_id = os.path.basename(os.path.normpath(run_dir))
    table = versions_table(nodes, pins)
    table["text"] = versions_text(table)
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "versions.json"), "w", encoding="utf-8") as fh:
        json.dump({"run_id": run_id, "nodes": nodes, "pins": pins, **table}, fh, indent=1)
    with open(os.path.join(run_dir, "versions.html"), "w", encoding="utf-8") as fh:
        fh.write(versions_html(table, run_id))
    return table
