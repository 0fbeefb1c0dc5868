"""Read what every node of a run produced and judge it: summary, merged metrics, plots, HTML.

Pure Python + matplotlib (no Ansible imports) so it is unit-tested on hand-made run directories.
Layout read: <run_dir>/nodes/<host>/{metrics-rank*.jsonl, torchrun.log, rc, reason}.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import os
import re
import shlex
from statistics import mean
from typing import Any

from ansible_collections.awsome.distributed_training.plugins.module_utils.job_launch import (
    parse_nccl_log,
    uses_ofi,
)
from ansible_collections.awsome.distributed_training.plugins.module_utils.metrics_adapters import (
    adapter_records,
)
from ansible_collections.awsome.distributed_training.plugins.module_utils.report_html import (
    cell,
    duration,
    e,
    figures,
    number,
    page,
    sparkline,
    table,
    when,
)
from ansible_collections.awsome.distributed_training.plugins.module_utils.run_checks import (
    RunFacts,
    judge,
    loss_trend,
)

# torchrun's own failure banner says nothing about the cause; skip it when quoting a log.
_BANNER = re.compile(r"^\s*(=+|-+|error_file:|traceback\s*:|To enable traceback|\[\d+\]:|Failures:|Root Cause"
                     r"|time\s*:|host\s*:|rank\s*:|exitcode\s*:|local_rank\s*:|<NO_OTHER_FAILURES>)")
_CAUSE = re.compile(r"(Error|Exception|error:|Killed|Traceback|SystemExit|Aborted|Segmentation"
                    r"|terminate called|what\(\):)")
STEADY_FIELDS = ("tokens_per_s_per_device", "tflops_per_device", "mfu", "step_time_s")
COLLECTIVE_COLUMNS = ("op", "dtype", "bytes", "count", "iters", "time_us", "algbw_gbps", "busbw_gbps",
                      "correct")


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def load_records(run_dir: str, plan: dict | None = None) -> list[dict]:
    """Every node's metrics files, plus the events the manifest's metrics adapter reads from the
    logs of a framework that writes none itself (metrics_adapters.py)."""
    records = adapter_records(run_dir, plan) if plan else []
    for path in sorted(glob.glob(os.path.join(run_dir, "nodes", "*", "metrics-rank*.jsonl"))):
        host = os.path.basename(os.path.dirname(path))
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill; the rest of the file still counts
                rec["host"] = host
                records.append(rec)
    records.sort(key=lambda r: (r.get("time", 0), r.get("rank", 0)))
    return records


def node_status(run_dir: str, host: str) -> dict:
    base = os.path.join(run_dir, "nodes", host)

    def read(name: str) -> str | None:
        try:
            with open(os.path.join(base, name), encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return None

    rc_text = read("rc")
    log = read("torchrun.log") or ""
    return {
        "host": host,
        # Nothing at all came back from it: the launcher could not reach it to collect.
        "lost": None if os.path.isdir(base) else "unreachable",
        "rc": int(rc_text.split()[0]) if rc_text and rc_text.split() else None,
        "reason": (read("reason") or "").strip() or None,
        "log_tail": "\n".join(log.rstrip().splitlines()[-40:]),
        "excerpt": log_excerpt(log),
    }


# Slurm's view of a slurm-mode job, written on the head node by roles/launcher/tasks/slurm_view.yml:
# "<kind>: <text>" lines, kind one of job_id, job, node (scontrol --oneliner), srun (the job's
# srun/slurmstepd lines), sacct (JobID|State|ExitCode|NodeList).
_SLURM_FIELD = re.compile(r"(\w+)=(.*?)(?= \w+=|$)")
_SLURM_GONE = {"DOWN", "NOT_RESPONDING", "FAIL", "FAILING"}  # node state flags (not POWERED_DOWN)
_SRUN_NODE_FAILURE = re.compile(r"[Nn]ode fail|NODE_FAIL|not responding|[Cc]ommunication connection failure")


def slurm_view(run_dir: str, plan: dict) -> dict:
    """The attempt's Slurm job id and, for every node Slurm found gone, what Slurm said about it:
    its state and reason (scontrol), srun's node-failure line, and a NODE_FAIL step (sacct, where
    the cluster keeps accounting)."""
    head = plan.get("head") or plan["nodes"][0]
    try:
        with open(os.path.join(run_dir, "nodes", head, "slurm.json"), encoding="utf-8") as fh:
            lines = json.load(fh)["lines"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    said: dict[str, list[str]] = {}
    for line in lines:
        kind, _sep, text = str(line).partition(": ")
        said.setdefault(kind, []).append(text.strip())
    gone: dict[str, list[str]] = {}
    for text in said.get("node", []):
        fields = dict(_SLURM_FIELD.findall(text))
        state = fields.get("State", "")
        if fields.get("NodeName") and _SLURM_GONE & set(state.split("+")):
            reason = re.sub(r"\s*\[[^]]*\]$", "", fields.get("Reason", "")).strip()  # [user@time]
            why = f", {reason}" if reason not in ("", "none") else ""
            gone[fields["NodeName"]] = [f"Slurm: {state}{why}"]
    for host in plan["nodes"]:
        srun = [t for t in said.get("srun", [])
                if re.search(rf"\b{re.escape(host)}\b", t) and _SRUN_NODE_FAILURE.search(t)]
        if srun:
            gone.setdefault(host, []).append(srun[-1])
    # A NODE_FAIL step says that a node failed, not which one: it only backs up the findings above.
    node_fail = [f"sacct: step {t.split('|')[0]} NODE_FAIL"
                 for t in said.get("sacct", []) if "|NODE_FAIL|" in t]
    for words in gone.values():
        words.extend(node_fail[:1])
    job = (said.get("job_id") or [None])[0]
    return {"job_id": int(job) if job and job.isdigit() else job,
            "gone": {host: "; ".join(words) for host, words in gone.items()}}


def nccl_of_node(run_dir: str, host: str) -> dict | None:
    """What NCCL said it loaded on one node (out/nccl-<host>-<pid>.log of every rank), or None."""
    text = ""
    for path in sorted(glob.glob(os.path.join(run_dir, "nodes", host, "nccl-*.log"))):
        with open(path, encoding="utf-8", errors="replace") as fh:
            text += fh.read()
    return parse_nccl_log(text) if text else None


def environment_of(run_dir: str, plan: dict) -> tuple[dict, list[str]]:
    """Per node: what the preflight saw (framework, GPUs, EFA, image and its stack record) and what
    NCCL loaded; and a failure for every node with EFA devices whose NCCL fell back to sockets."""
    env: dict[str, dict] = {}
    failures = []
    checks = plan.get("node_checks") or {}
    for host in plan["nodes"]:
        seen = {k: v for k, v in (checks.get(host) or {}).items()
                if k in ("framework_version", "gpus", "efa_devices", "image", "health", "profiler")}
        nccl = nccl_of_node(run_dir, host)
        if nccl:
            seen["nccl"] = nccl
            if int(seen.get("efa_devices") or 0) > 0 and nccl.get("network") and not uses_ofi(nccl):
                failures.append(f"{host}: has {seen['efa_devices']} EFA device(s) but NCCL used "
                                f"{nccl['network']}: aws-ofi-nccl was not loaded (check the job "
                                f"environment, /etc/awsome/nccl.env)")
        env[host] = seen
    return env, failures


def log_excerpt(log: str, lines: int = 3) -> str:
    """The few lines of a node log most likely to say why it failed.

    torchrun reports a failed worker with its own traceback and banner after the worker's output;
    the cause is in the worker's lines before that report.
    """
    all_lines = log.splitlines()
    cut = next((i for i, ln in enumerate(all_lines) if "failed (exitcode:" in ln), len(all_lines))
    # Metric lines echoed by rank 0 are progress, not causes.
    useful = [ln.strip() for ln in all_lines[:cut]
              if ln.strip() and not _BANNER.match(ln) and not ln.startswith('{"event"')]
    if not useful:
        useful = [ln.strip() for ln in all_lines if ln.strip() and not _BANNER.match(ln)]
    causes = [ln for ln in useful if _CAUSE.search(ln)]
    # Every rank of a node often fails the same way: say it once.
    return " | ".join(list(dict.fromkeys(causes or useful))[-lines:])


def steady_window(steps: list[int]) -> tuple[int, int]:
    """Steps 11-40 when there are enough (the usual benchmark window), else the second half."""
    if not steps:
        return (0, 0)
    last = max(steps)
    if last >= 20:
        return (11, min(last, 40))
    return (last // 2 + 1, last)


def summarize(run_dir: str, plan: dict, records: list[dict] | None = None) -> dict:
    records = load_records(run_dir, plan) if records is None else records
    world = int(plan["world_size"])
    ppn = int(plan["procs_per_node"])
    nodes = list(plan["nodes"])
    statuses = [node_status(run_dir, h) for h in nodes]
    slurm = slurm_view(run_dir, plan)
    for st in statuses:
        # Slurm mode: a node whose job did not end by itself (no exit status, or stopped by the
        # launcher after another node failed) and that Slurm found gone was lost, whatever ssh saw.
        if (not st["lost"] and st["host"] in slurm.get("gone", {})
                and (st["rc"] is None or (st["reason"] or "").startswith("stopped"))):
            st["lost"] = slurm["gone"][st["host"]]
    facts = RunFacts(records, nodes, ppn, world, statuses)
    failures = judge(facts, plan.get("checks", []))
    steps, rank0, reported, collectives = facts.steps, facts.rank0, facts.reported, facts.collectives
    loss_first, loss_last = loss_trend(facts.losses) if facts.losses else (None, None)

    node_env, env_failures = environment_of(run_dir, plan)
    failures[:0] = env_failures  # the environment is the cause of whatever else went wrong

    lo, hi = steady_window([r["step"] for r in rank0])
    # Profiled steps (rank 0 under torch.profiler, the others waiting for it) are not steady state.
    profiled = {r["step"] for r in steps if r.get("profiled")}
    window = [r for r in steps if lo <= r["step"] <= hi and r["step"] not in profiled]
    steady: dict[str, Any] = {"window": [lo, hi]}
    for field in STEADY_FIELDS:
        vals = [r[field] for r in window if _finite(r.get(field))]
        steady[field] = round(mean(vals), 6) if vals else None
    # Cross-check the trainer's own rate against wall-clock time between rank-0 step records.
    r0w = [r for r in rank0 if lo <= r["step"] <= hi and r["step"] not in profiled
           and _finite(r.get("tokens_per_s_per_device"))]
    prev = [r for r in rank0 if r["step"] == lo - 1]
    if r0w and prev and _finite(r0w[0].get("step_time_s")):
        tokens = sum(r["tokens_per_s_per_device"] * r["step_time_s"] for r in r0w)
        wall = r0w[-1]["time"] - prev[0]["time"]
        steady["wall_tokens_per_s_per_device"] = round(tokens / wall, 3) if wall > 0 else None

    times = [r["time"] for r in records if _finite(r.get("time"))]
    first_step = min((r["time"] for r in steps), default=None)
    start_time = float(plan["launched_at"]) if plan.get("launched_at") else min(times, default=None)
    mem = [r["peak_mem_gib"] for r in steps if _finite(r.get("peak_mem_gib"))]
    reserved = [r["peak_reserved_gib"] for r in steps if _finite(r.get("peak_reserved_gib"))]
    summary = {
        "run_id": plan["run_id"],
        "test_case": plan["test_case"],
        "preset": plan["preset"],
        "status": "failed" if failures else "passed",
        "failures": failures,
        "params": plan.get("params", {}),
        "nodes": nodes,
        "procs_per_node": ppn,
        "world_size": world,
        "accelerator": plan.get("accelerator"),
        "rdzv_port": plan.get("rdzv_port"),
        "launch_mode": plan.get("launch_mode", "torchrun"),
        "slurm_job": slurm.get("job_id"),
        "container": plan.get("container"),
        "node_environment": node_env,
        "ranks_reported": reported,
        "launched_at": start_time,
        "finished_at": max(times) if times else None,
        "duration_s": round(max(times) - start_time, 3) if times and start_time else None,
        "time_to_first_step_s": round(first_step - start_time, 3) if first_step and start_time else None,
        "steps": len(rank0),
        "last_step": facts.last_step(),
        "loss_first": loss_first,
        "loss_last": loss_last,
        "steady": steady,
        "peak_mem_gib_max": max(mem) if mem else None,
        "peak_reserved_gib_max": max(reserved) if reserved else None,
        "checkpoints": [{k: r.get(k) for k in ("step", "action", "seconds", "rank")}
                        for r in records if r.get("event") == "checkpoint" and r.get("rank") == 0],
        "collectives": len(collectives),
        "busbw_max_gbps": max((r["busbw_gbps"] for r in collectives if _finite(r.get("busbw_gbps"))),
                              default=None),
        "node_status": statuses,
        # What a restart acts on: nodes that never came back, and nodes whose job died by itself
        # (not stopped by the launcher, not timed out).
        "lost_nodes": [st["host"] for st in statuses if st.get("lost")],
        "died_nodes": [st["host"] for st in statuses if not st.get("lost") and st["rc"] not in (0, None)
                       and not (st["reason"] or "").startswith(("timeout", "stopped"))],
    }
    if plan.get("attempts"):
        # Every attempt of a restarted run, this one last, with the steps each restart trained again.
        chain = [_attempt(s) for s in plan["attempts"]] + [_attempt(summary)]
        for before, after in zip(chain, chain[1:], strict=False):
            if before["last_step"] is not None and after["resumed_from_step"] is not None:
                after["steps_redone"] = before["last_step"] - after["resumed_from_step"]
        summary["attempts"] = chain
    return summary


def _attempt(s: dict) -> dict:
    """One earlier attempt of a restarted run, as the final report lists it."""
    loads = [c["step"] for c in s.get("checkpoints", []) if c.get("action") == "load"]
    return {"run_id": s["run_id"], "nodes": s["nodes"], "status": s["status"],
            "failure": (s.get("failures") or [""])[0], "lost_nodes": s.get("lost_nodes", []),
            "resumed_from_step": loads[0] if loads else None, "last_step": s.get("last_step"),
            "slurm_job": s.get("slurm_job")}


def plot(records: list[dict], spec: dict, path: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in records if r.get("event") == spec.get("event", "step")
            and _finite(r.get(spec["x"])) and _finite(r.get(spec["y"]))]
    if not rows:
        return False
    group_key = spec.get("group")
    groups: dict[str, list[dict]] = {}
    if group_key:
        for r in rows:
            groups.setdefault(str(r.get(group_key)), []).append(r)
    else:
        # One line per node: its lowest rank stands for it.
        first_rank = {}
        for r in rows:
            first_rank[r["host"]] = min(first_rank.get(r["host"], r["rank"]), r["rank"])
        for r in rows:
            if r["rank"] == first_rank[r["host"]]:
                groups.setdefault(r["host"], []).append(r)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, pts in sorted(groups.items()):
        pts.sort(key=lambda r: r[spec["x"]])
        ax.plot([p[spec["x"]] for p in pts], [p[spec["y"]] for p in pts], marker=".", label=name)
    if spec.get("logx"):
        ax.set_xscale("log", base=2)
    ax.set_xlabel(spec["x"])
    ax.set_ylabel(spec["y"])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(spec.get("title", f"{spec['y']} per {spec['x']}"))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def headline(summary: dict) -> list[tuple[str, str]]:
    """The figures a reader looks for first, in order; empty ones are left out by the page."""
    st = summary.get("steady") or {}
    mfu, busbw, mem = st.get("mfu"), summary.get("busbw_max_gbps"), summary.get("peak_mem_gib_max")
    loss = (f"{summary['loss_first']:.3f} → {summary['loss_last']:.3f}"
            if _finite(summary.get("loss_first")) and _finite(summary.get("loss_last")) else "")
    items = [
        ("tokens/s per device", number(st.get("tokens_per_s_per_device"), "{:,.0f}")),
        ("MFU", f"{mfu:.1%}" if _finite(mfu) else ""),
        ("step time", duration(st.get("step_time_s")) if _finite(st.get("step_time_s")) else ""),
        ("TFLOPS per device", number(st.get("tflops_per_device"))),
        ("peak bus bandwidth", f"{busbw:,.1f} GB/s" if _finite(busbw) else ""),
        ("time to first step", duration(summary.get("time_to_first_step_s"))),
        ("loss", loss),
        ("peak memory", f"{mem:.1f} GiB" if _finite(mem) else ""),
    ]
    return items


def reproduce(summary: dict, request: dict) -> str:
    """The command that runs the same case again: every resolved parameter, the same nodes and image."""
    q = shlex.quote
    parts = ["ansible-playbook", "playbooks/run_test_case.yml"]
    for source in request.get("inventory") or ["<inventory>"]:
        parts += ["-i", q(source)]
    parts += ["-e", f"test_case={summary['test_case']}", "-e", f"preset={summary['preset']}",
              "-e", f"nodes={len(summary['nodes'])}", "-e", f"procs_per_node={summary['procs_per_node']}"]
    if request.get("mode", "ssh") != "ssh":
        parts += ["-e", f"mode={request['mode']}"]
    parts += ["-e", f"launch_mode={summary.get('launch_mode', 'torchrun')}"]
    if summary.get("container"):
        parts += ["-e", q(f"container_image={summary['container']['image']}")]
    parts += ["-e", q(json.dumps({"params": summary.get("params", {})}, separators=(",", ":")))]
    return " ".join(parts)


def _log_tail(text: str, lines: int = 25) -> str:
    """The end of a node log without the metric JSON lines rank 0 echoes (they are in the plots)."""
    kept = [ln for ln in text.splitlines() if not ln.startswith('{"event"')]
    return "\n".join(kept[-lines:])


def software_rows(summary: dict) -> list[list[str]]:
    rows = []
    for host in summary["nodes"]:
        seen = (summary.get("node_environment") or {}).get(host, {})
        image = seen.get("image") or {}
        stack = image.get("stack") or {}
        nccl = seen.get("nccl") or {}
        health = seen.get("health") or {}
        rows.append([cell(host), cell(seen.get("framework_version")), cell(seen.get("gpus")),
                     cell(seen.get("efa_devices")),
                     cell(" ".join(x for x in (image.get("ref"), image.get("id")) if x) or "bare"),
                     cell(stack.get("profile")), cell(nccl.get("version")), cell(nccl.get("network")),
                     _health_cell(health)])
    return rows


def _health_cell(health: dict) -> str:
    """The preflight's quick health checks on a node: the status, and why unless it passed."""
    if not health:
        return cell("off")
    status = health.get("status", "")
    why = "" if status == "pass" else health.get("reason") or ", ".join(health.get("warned") or [])
    return f'<span class="{e(status)}">{e(status)}</span>' + (f" {cell(why)}" if why else "")


def profiles_html(run_dir: str) -> str:
    """Links to the Nsight Systems reports the nodes wrote (-e profiler=nsys), with their sizes."""
    found = sorted(glob.glob(os.path.join(run_dir, "nodes", "*", "*.nsys-rep")))
    if not found:
        return ""
    items = "".join(f'<li><a href="{e(os.path.relpath(f, run_dir))}">{e(os.path.relpath(f, run_dir))}</a> '
                    f"({os.path.getsize(f) / 2**20:,.1f} MiB)</li>" for f in found)
    return (f"<h2>Profiles (Nsight Systems)</h2><ul>{items}</ul>"
            "<p>open with <code>nsys-ui</code>, or <code>nsys stats FILE</code></p>")


def attempts_html(summary: dict) -> str:
    attempts = summary.get("attempts") or []
    if not attempts:
        return ""
    slurm = any(a.get("slurm_job") is not None for a in attempts)  # slurm mode: each attempt's job
    rows = [[cell(a["run_id"]), *([cell(a.get("slurm_job"))] if slurm else []), cell(", ".join(a["nodes"])),
             f'<span class="{e(a["status"])}">{e(a["status"])}</span>', cell(a.get("failure")),
             cell(a.get("resumed_from_step")), cell(a.get("last_step")), cell(a.get("steps_redone"))]
            for a in attempts]
    header = ["attempt", *(["Slurm job"] if slurm else []), "nodes", "status", "what happened first",
              "resumed from step", "last step", "steps trained again"]
    return "<h2>Attempts</h2>" + table(header, rows)


def write_html(summary: dict, images: list[str], path: str, request: dict | None = None) -> None:
    fails = "".join(f"<li>{e(f)}</li>" for f in summary["failures"])
    imgs = "".join(f'<figure><img src="{e(i)}" alt="{e(i)}"></figure>' for i in images)
    run_rows = [
        ["run", summary["run_id"]],
        ["launched", when(summary.get("launched_at"))],
        ["finished", when(summary.get("finished_at"))],
        ["duration", duration(summary.get("duration_s"))],
        ["nodes", f"{', '.join(summary['nodes'])} ({summary['procs_per_node']} process(es) each, "
                  f"{summary['world_size']} rank(s), {summary.get('accelerator')})"],
        ["ranks reported", summary.get("ranks_reported")],
        ["launch", summary.get("launch_mode", "torchrun")],
        ["Slurm job", summary.get("slurm_job")],
        ["container", (summary.get("container") or {}).get("image") or "none (bare)"],
        ["steps", summary.get("steps")],
        ["steady window", "steps {}-{}".format(*summary["steady"]["window"])],
        ["checkpoints", "; ".join(f"{c['action']} step {c['step']} ({duration(c.get('seconds'))})"
                                  for c in summary.get("checkpoints", []))],
    ]
    params = [[cell(k), cell(v)] for k, v in sorted((summary.get("params") or {}).items())]
    nodes = [[cell(s["host"]), cell(s["rc"]), cell(s["reason"] or ""),
              f"<pre>{e(_log_tail(s['log_tail']))}</pre>"] for s in summary["node_status"]]
    run_table = table(None, [[cell(k), cell(v)] for k, v in run_rows if v not in ("", None)])
    software = table(["node", "framework", "GPUs", "EFA devices", "image", "image stack", "NCCL",
                      "NCCL network", "health checks"], software_rows(summary))
    body = (figures(headline(summary))
            + (f"<h2>Failures</h2><ul>{fails}</ul>" if fails else "")
            + attempts_html(summary)
            + f"<h2>Plots</h2>{imgs or '<p>no plots</p>'}"
            + profiles_html(os.path.dirname(os.path.abspath(path)))
            + "<h2>Run</h2>" + run_table
            + f"<h2>Reproduce</h2><pre><code>{e(reproduce(summary, request or {}))}</code></pre>"
            + "<h2>Software on each node</h2>" + software
            + "<h2>Parameters</h2>" + table(["parameter", "value"], params)
            + "<h2>Nodes</h2>" + table(["node", "exit", "reason", "log tail"], nodes))
    subtitle = (f"run {e(summary['run_id'])} &middot; {len(summary['nodes'])} node(s), "
                f"{summary['world_size']} rank(s) &middot; {e(when(summary.get('launched_at')))} &middot; "
                f'<a href="../index.html">all runs</a>')
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page(f"{summary['test_case']} / {summary['preset']}", summary["status"], subtitle, body))


def headline_value(summary: dict) -> tuple[str, float | None]:
    """The one figure the results index trends for a run: throughput, else bandwidth, else time."""
    st = summary.get("steady") or {}
    if _finite(st.get("tokens_per_s_per_device")):
        return "tokens/s per device", st["tokens_per_s_per_device"]
    if summary.get("busbw_max_gbps"):
        return "peak busbw GB/s", summary["busbw_max_gbps"]
    return "duration s", summary.get("duration_s")


def write_index(results_root: str) -> str:
    """results/index.html: every run so far by case and preset, newest last, with the trend of its
    headline figure; the newest run is flagged when it falls 10 % below the median of the ones before."""
    runs = []
    for path in glob.glob(os.path.join(results_root, "*", "summary.json")):
        if os.path.islink(os.path.dirname(path)):  # results/latest names a run already listed
            continue
        try:
            with open(path, encoding="utf-8") as fh:
                runs.append(json.load(fh))
        except (OSError, ValueError):
            continue
    groups: dict[tuple[str, str], list[dict]] = {}
    for s in runs:
        groups.setdefault((s.get("test_case", "?"), s.get("preset", "?")), []).append(s)
    sections = []
    for (case, preset), items in sorted(groups.items()):
        items.sort(key=lambda s: s.get("launched_at") or 0)
        label = headline_value(items[-1])[0]
        values = [headline_value(s)[1] for s in items]
        good = [v for s, v in zip(items, values, strict=True) if s.get("status") == "passed" and _finite(v)]
        regressed = (len(good) >= 3 and _finite(values[-1]) and label.startswith(("tokens", "peak"))
                     and values[-1] < 0.9 * sorted(good[:-1])[len(good[:-1]) // 2])
        rows, classes = [], []
        for s, v in zip(reversed(items), reversed(values), strict=True):
            rows.append([f'<a href="{e(s["run_id"])}/report.html">{e(s["run_id"])}</a>',
                         e(when(s.get("launched_at"))),
                         f'<span class="{e(s["status"])}">{e(s["status"])}</span>',
                         e(number(v)), e(str(len(s.get("nodes", [])))),
                         e((s.get("container") or {}).get("image") or "bare")])
            classes.append(["regressed" if regressed and s is items[-1] else ""] * 6)
        flag = ' <span class="failed">the newest run fell 10 % below the median</span>' if regressed else ""
        sections.append(f"<h2>{e(case)} / {e(preset)}</h2><p>{e(label)} over {len(items)} run(s): "
                        f"{sparkline([v for v in values if _finite(v)])}{flag}</p>"
                        + table(["run", "launched", "status", label, "nodes", "container"], rows, classes))
    out = os.path.join(results_root, "index.html")
    with open(out, "w", encoding="utf-8") as fh:
        fh.write(page("All runs", "", f"{len(runs)} run(s) under {e(results_root)}", "".join(sections)))
    return out


def write_report(run_dir: str, plan: dict) -> dict:
    os.makedirs(run_dir, exist_ok=True)  # an attempt that reached no node still gets its report
    records = load_records(run_dir, plan)
    summary = summarize(run_dir, plan, records)
    with open(os.path.join(run_dir, "metrics.jsonl"), "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    collectives = [r for r in records if r.get("event") == "collective"]
    if collectives:
        with open(os.path.join(run_dir, "collectives.csv"), "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLLECTIVE_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(collectives)
    images = []
    for spec in plan.get("metrics", {}).get("plots", []):
        name = f"{spec['y']}_vs_{spec['x']}.png"
        if plot(records, spec, os.path.join(run_dir, name)):
            images.append(name)
    summary["plots"] = images
    with open(os.path.join(run_dir, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2)
    write_html(summary, images, os.path.join(run_dir, "report.html"), plan.get("request"))
    write_index(os.path.dirname(os.path.abspath(run_dir)))
    return summary
