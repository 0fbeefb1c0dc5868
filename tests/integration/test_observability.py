"""Exporters -> Prometheus -> rules, alerts and every dashboard panel, on loopback.

No simulated cluster: each exporter runs on 127.0.0.1 as its own process, as the systemd units run
them (the OS Python and the OS prometheus-client), over fixtures where the real source cannot exist
here: the EFA exporter reads a copy of tests/fixtures/efa_sysfs (FIXTURE, made up in the driver's
layout), the Slurm exporter runs stand-in sinfo/squeue that print output recorded from Slurm 22.05
(tests/fixtures/slurm_exporter, FIXTURE), and the GPU exporter runs for real and says it sees no GPU.
node_exporter is Debian's binary. The GPU panels read a second target, a page the GPU exporter
wrote on an H200 machine with real NVML (tests/fixtures/gpu_exporter/h200_metrics.prom, RECORDED),
served as it is.

roles/prometheus renders prometheus.yml and the rules (promtool checks them as it writes them)
through ansible-playbook against localhost, twice: the defaults plus AMP remote_write (promtool test
rules runs the rule unit tests on these rules), and short intervals for the running Prometheus.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from helpers import REPO, run_playbook

FIXTURES = REPO / "tests" / "fixtures"
DASHBOARDS = REPO / "roles" / "prometheus" / "files" / "dashboards"
PKG_DIR = REPO / "roles" / "_exporter_common" / "files"
JOBS = ["node", "gpu", "efa", "slurm", "gpu-recorded"]
NODE = "gpu-st-p5-1"  # the node name of the recorded Slurm output
# What Grafana would put for the dashboards' variables.
VARIABLES = {"$__rate_interval": "1m", "${node}": ".+", "$node": ".+", "${job_id}": ".+", "$job_id": ".+"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float = 30.0, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


class Recorded(BaseHTTPRequestHandler):
    page = b""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args):
        pass


RENDER = """
- name: Render the Prometheus role's files twice
  hosts: monitor
  gather_facts: false
  # Play vars reach every include: nothing is installed, no service is touched, all lands under out.
  vars:
    prometheus_install: false
    prometheus_service_manage: false
    prometheus_grafana_dir: ""
  tasks:
    - name: Defaults, with remote_write to Amazon Managed Prometheus
      ansible.builtin.include_role: {name: awsome.distributed_training.prometheus}
      vars:
        prometheus_config_dir: "{{ out }}/default"
        prometheus_amp_workspace_url: https://aps-workspaces.us-west-2.amazonaws.com/workspaces/ws-0123456789/
        prometheus_amp_region: us-west-2
    - name: Short intervals, one job per exporter and the recorded GPU page
      ansible.builtin.include_role: {name: awsome.distributed_training.prometheus}
      vars:
        prometheus_config_dir: "{{ out }}/fast"
        prometheus_grafana_dir: "{{ out }}/grafana"
        prometheus_scrape_interval: 1s
        prometheus_evaluation_interval: 1s
        prometheus_rules_window: 10s
        prometheus_node_down_for: 10s
        prometheus_scrape_jobs: "{{ jobs }}"
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("observability")
    ports = {job: free_port() for job in [*JOBS, "prometheus"]}
    inventory = {"all": {
        "hosts": {"monitor": {"ansible_connection": "local",
                              "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
        "children": {
            "slurm_controller": {"hosts": {NODE: {"ansible_host": "127.0.0.1",
                                                  "prometheus_scrape_ports": ports}}},
            "slurm_compute": {"hosts": {NODE: {}}}}}}
    (tmp / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp / "render.yml").write_text(RENDER)
    jobs = [{"name": j, "group": "slurm_controller" if j == "slurm" else "slurm_compute", "port": ports[j]}
            for j in JOBS]
    proc = run_playbook(str(tmp / "render.yml"), "-e", json.dumps({"out": str(tmp), "jobs": jobs}),
                        inventory=tmp / "inventory.yml", timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:]

    sysfs = tmp / "sysfs"
    shutil.copytree(FIXTURES / "efa_sysfs", sysfs)
    Recorded.page = (FIXTURES / "gpu_exporter" / "h200_metrics.prom").read_bytes()
    server = ThreadingHTTPServer(("127.0.0.1", ports["gpu-recorded"]), Recorded)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    # No __pycache__ in the role's files/: the role copies that directory to the nodes.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PKG_DIR), "PYTHONDONTWRITEBYTECODE": "1"}
    exporter = ["/usr/bin/python3", "-m"]
    commands = {
        "node": ["/usr/bin/prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{ports['node']}"],
        "gpu": [*exporter, "awsome_exporters.gpu", "--listen", f"127.0.0.1:{ports['gpu']}"],
        "efa": [*exporter, "awsome_exporters.efa", "--listen", f"127.0.0.1:{ports['efa']}",
                "--sysfs-root", str(sysfs)],
        "slurm": [*exporter, "awsome_exporters.slurm", "--listen", f"127.0.0.1:{ports['slurm']}"],
        "prometheus": ["/usr/bin/prometheus", f"--config.file={tmp / 'fast' / 'prometheus.yml'}",
                       f"--storage.tsdb.path={tmp / 'data'}",
                       f"--web.listen-address=127.0.0.1:{ports['prometheus']}"],
    }
    envs = {"slurm": {**env, "PATH": f"{FIXTURES / 'slurm_exporter' / 'bin'}:/usr/bin:/bin"}}
    procs = {}
    try:
        for name, cmd in commands.items():
            log = (tmp / f"{name}.log").open("w")
            procs[name] = subprocess.Popen(cmd, env=envs.get(name, env), stdout=log, stderr=subprocess.STDOUT)
        api = f"http://127.0.0.1:{ports['prometheus']}/api/v1"

        def targets_up():
            try:
                targets = get(api, "targets")["activeTargets"]
            except OSError:  # not listening yet
                return False
            return len(targets) == len(JOBS) and all(t["health"] == "up" for t in targets)

        wait_for("every target up", targets_up, timeout=60)
        yield {"api": api, "tmp": tmp, "sysfs": sysfs, "procs": procs}
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        server.shutdown()


def get(api: str, path: str, **params) -> dict:
    url = f"{api}/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
    except urllib.error.HTTPError as exc:  # a bad query: say which
        raise AssertionError(f"{path} {params}: {exc.read().decode()}") from None
    assert body["status"] == "success", body
    return body["data"]


def query(api: str, expr: str) -> list:
    return get(api, "query", query=expr)["result"]


def panels() -> list[tuple[str, str, str]]:
    found = []
    for board in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(board.read_text())["panels"]:
            for target in panel["targets"]:
                found.append((board.stem, panel["title"], target["expr"]))
    return found


def substitute(expr: str) -> str:
    for var, val in VARIABLES.items():
        expr = expr.replace(var, val)
    assert not re.search(r"\$(?!\d)", expr), f"unknown dashboard variable in {expr}"  # $1: label_replace
    return expr


def alerts(api: str, name: str) -> list[dict]:
    return [a for a in get(api, "alerts")["alerts"] if a["labels"]["alertname"] == name]


def test_rule_unit_tests_pass_on_the_default_rules(stack):
    shutil.copy(FIXTURES / "prometheus_rules" / "awsome_rules_test.yml", stack["tmp"] / "default")
    proc = subprocess.run(["promtool", "test", "rules", "awsome_rules_test.yml"],
                          cwd=stack["tmp"] / "default", capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_amp_remote_write_rendered_and_valid(stack):
    config = yaml.safe_load((stack["tmp"] / "default" / "prometheus.yml").read_text())
    assert config["remote_write"] == [{
        "url": "https://aps-workspaces.us-west-2.amazonaws.com/workspaces/ws-0123456789/api/v1/remote_write",
        "sigv4": {"region": "us-west-2"},
        "queue_config": {"max_samples_per_send": 1000, "max_shards": 200, "capacity": 2500}}]
    proc = subprocess.run(["promtool", "check", "config", str(stack["tmp"] / "default" / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "remote_write" not in (stack["tmp"] / "fast" / "prometheus.yml").read_text()


def test_scrape_config_comes_from_the_inventory(stack):
    config = yaml.safe_load((stack["tmp"] / "default" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j["static_configs"] for j in config["scrape_configs"]}
    # Defaults: node on every host (monitor has no address but its name), GPU/EFA on slurm_compute,
    # Slurm on slurm_controller; the host's prometheus_scrape_ports override the ports.
    assert sorted(jobs) == ["efa", "gpu", "node", "slurm"]
    assert {c["labels"]["node"] for c in jobs["node"]} == {"monitor", NODE}
    assert jobs["slurm"][0]["labels"] == {"node": NODE}
    assert jobs["slurm"][0]["targets"][0].startswith("127.0.0.1:")


def test_gpu_exporter_without_gpu_says_so(stack):
    result = query(stack["api"], 'awsome_gpu_count{job="gpu"}')
    assert [r["value"][1] for r in result] == ["0"]
    up = query(stack["api"], 'awsome_gpu_nvml_up{job="gpu"}')
    assert up[0]["value"][1] == "0" and up[0]["metric"]["error"]


def test_every_dashboard_panel_returns_data(stack):
    found = panels()
    assert len({b for b, _unused, _unused in found}) == 6 and len(found) >= 40
    empty = []

    def all_answer():
        empty[:] = [(b, t, e) for b, t, e in found if not query(stack["api"], substitute(e))]
        return not empty

    wait_for("every panel's query to return series", all_answer, timeout=40, interval=2)
    assert not empty


def test_dashboard_variables_have_values(stack):
    for board in DASHBOARDS.glob("*.json"):
        for var in json.loads(board.read_text())["templating"]["list"]:
            if var["type"] != "query":
                continue
            metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", var["query"]["query"]).groups()
            values = {r["metric"].get(label) for r in query(stack["api"], metric)} - {None}
            assert values, (board.name, var["name"])


def test_slurm_alerts_fire_with_the_reason(stack):
    drained = wait_for("SlurmNodeDrained", lambda: alerts(stack["api"], "SlurmNodeDrained"))
    assert [(a["labels"]["slurm_node"], a["state"]) for a in drained] == [("gpu-st-p5-3", "firing")]
    assert drained[0]["annotations"]["description"] == "Reason: gpu health: XID 79 on GPU 2"
    down = alerts(stack["api"], "SlurmNodeDown")
    assert [a["labels"]["slurm_node"] for a in down] == ["gpu-st-p5-2"]
    assert alerts(stack["api"], "NodeDown") == [] and alerts(stack["api"], "EfaErrorsRising") == []


def test_efa_alert_fires_when_a_counter_moves_and_clears_after(stack):
    counter = stack["sysfs"] / "rdmap16s27" / "ports" / "1" / "hw_counters" / "retrans_timeout_events"
    counter.write_text("3\n")
    fired = wait_for("EfaErrorsRising to fire",
                     lambda: [a for a in alerts(stack["api"], "EfaErrorsRising") if a["state"] == "firing"])
    moved = {(a["labels"]["device"], a["labels"]["counter"]) for a in fired}
    assert moved == {("rdmap16s27", "retrans_timeout_events")}
    # The counter stays at 3: once the 10 s window has passed, the increase is 0 and the alert resolves.
    wait_for("EfaErrorsRising to clear", lambda: not alerts(stack["api"], "EfaErrorsRising"), timeout=40)
