"""The version report: version_facts' readers on fixture node trees (tests/fixtures/versions) and
recorded command outputs, and the cluster table that flags differences from stack/versions.yml and
between nodes (plugins/module_utils/health_report.py). Also the health report's grading and HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from ansible_collections.awsome.distributed_training.plugins.module_utils import health_report as hr
from ansible_collections.awsome.distributed_training.plugins.module_utils.report_html import STYLE
from ansible_collections.awsome.distributed_training.plugins.modules import version_facts as vf

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests/fixtures/versions"
H200 = REPO / "tests/fixtures/healthcheck/h200x2"
PINS = {
    k: str(v) for k, v in yaml.safe_load((REPO / "stack/versions.yml").read_text())["stack_versions"].items()
}


def commands(outputs: dict):
    def runner(cmd):
        key = " ".join([Path(cmd[0]).name, *cmd[1:3]])
        return next((v for k, v in outputs.items() if key.startswith(k)), None)

    return runner


def test_readers_on_recorded_and_documented_formats():
    assert vf.driver_from_proc((H200 / "proc-driver-nvidia-version.txt").read_text()) == "580.159.04"
    assert (
        vf.nccl_from_names(
            [
                ln.split()[-1]
                for ln in (H200 / "ls-libnccl.txt").read_text().splitlines()
                if ln.startswith("l") or ln.startswith("-")
            ]
        )
        == "2.28.3"
    )
    assert vf.nccl_from_names(["/x/libnccl.so", "/x/libnccl.so.2"]) is None
    assert (
        vf.libfabric_from_fi_info("fi_info: 2.1.0amzn3.0\nlibfabric: 2.1.0amzn3.0\nlibfabric api: 2.1\n")
        == "2.1.0amzn3.0"
    )
    assert vf.slurm_from_sinfo("slurm 24.11.6\n") == "24.11.6"
    assert vf.slurm_from_sinfo("slurm-wlm 22.05.8\n") == "22.05.8"  # Debian's build
    assert vf.cuda_from_files(None, "CUDA Version 12.8.1\n") == "12.8.1"
    assert vf.cuda_from_files("{not json", None) is None


def test_node_tree_read_from_the_system():
    torch_out = json.dumps({"torch": "2.11.0+cu130", "torch_cuda": "13.0", "nccl_torch": "2.28.9"})
    r = vf.Reader(
        None,
        str(FIX / "p5-node"),
        commands(
            {
                "fi_info --version": (
                    0,
                    "fi_info: 2.1.0amzn3.0\nlibfabric: 2.1.0amzn3.0\nlibfabric api: 2.1\n",
                    "",
                ),
                "sinfo -V": (0, "slurm 24.11.6\n", ""),
                "dpkg-query -W -f": (1, "", "dpkg-query: no packages found matching aws-neuronx-dkms\n"),
                "python3 -c": (0, torch_out + "\n", ""),
            }
        ),
    )
    r.read_all(["/usr/lib/x86_64-linux-gnu", "/opt/amazon/ofi-nccl/lib"], "python3", "", "podman")
    assert r.versions == {
        "driver": "580.159.04",
        "cuda": "12.8.1",
        "nccl_host": "2.26.5",
        "aws_ofi_nccl": "1.14.2",
        "libfabric": "2.1.0amzn3.0",
        "efa_installer": "1.41.0",
        "slurm": "24.11.6",
        "torch": "2.11.0+cu130",
        "torch_cuda": "13.0",
        "nccl_torch": "2.28.9",
    }
    assert r.sources["nccl_host"] == "libnccl.so.X.Y.Z file name"
    assert (
        r.sources["aws_ofi_nccl"].startswith("strings ")
        and r.sources["driver"] == "/proc/driver/nvidia/version"
    )

    b = vf.Reader(None, str(FIX / "node-b"), commands({}))
    b.read_all(["/opt/nccl/lib"], "", "", "podman")
    assert b.versions == {"driver": "580.159.04", "cuda": "12.8.1", "nccl_host": "2.27.3"}
    assert b.sources["nccl_host"].endswith("/opt/nccl/lib/libnccl.so")


def test_image_stack_record():
    r = vf.Reader(
        None,
        str(FIX / "node-b"),
        commands({"podman run --rm": (0, json.dumps({"nccl": "2.26.5-1", "cuda": "12.8.1"}), "")}),
    )
    r.read_all([], "", "localhost/awsome-train:cuda", "podman")
    assert r.versions["nccl_image"] == "2.26.5-1"
    assert r.sources["nccl_image"] == "localhost/awsome-train:cuda:/opt/awsome/stack.json"


def test_pin_matching():
    assert hr.matches_pin("2.26.5", "2.26.5-1") and hr.matches_pin("2.26.5-1", "2.26.5-1")
    assert hr.matches_pin("1.14.2-aws", "1.14.2") and hr.matches_pin("v24.11.6", "24.11.6")
    assert hr.matches_pin("570.172.08", "570.172") is False and hr.matches_pin("2.26.50", "2.26.5") is False
    assert hr.matches_pin(None, "1.0") is None and hr.matches_pin("1.0", None) is None


def test_table_flags_pins_and_node_differences(tmp_path):
    nodes = {
        "p5-a": {
            "driver": "570.172.08",
            "cuda": "12.8.1",
            "nccl_host": "2.26.5",
            "nccl_torch": "2.26.2",
            "efa_installer": "1.41.0",
            "slurm": "24.11.6",
        },
        "p5-b": {
            "driver": "570.133.20",
            "cuda": "12.8.1",
            "nccl_host": "2.26.5",
            "nccl_torch": "2.26.2",
            "slurm": "24.11.6",
        },
    }
    table = hr.write_versions(str(tmp_path / "versions-1"), nodes, PINS)
    assert table["flags"] == [
        "NVIDIA driver: p5-b 570.133.20 differ(s) from the pin 570.172.08",
        "NVIDIA driver differs between nodes: p5-a 570.172.08, p5-b 570.133.20",
        "EFA installer differs between nodes: p5-a 1.41.0, p5-b absent",
    ]
    rows = {r["component"]: r for r in table["rows"]}
    assert "libfabric" not in rows and rows["nccl_torch"]["pinned"] is None  # torch's own NCCL has no pin
    assert table["text"].splitlines()[1].split() == [
        "NVIDIA",
        "driver",
        "570.172.08",
        "570.172.08",
        "570.133.20*",
    ]
    saved = json.loads((tmp_path / "versions-1" / "versions.json").read_text())
    assert saved["nodes"] == nodes and saved["flags"] == table["flags"]
    html = (tmp_path / "versions-1" / "versions.html").read_text()
    assert '<td class="fail">570.133.20</td>' in html
    # The shared report look (report_html.py): the count of differences is the first headline figure.
    assert html.index('<div class="figures">') < html.index("<h2>Differences</h2>")
    assert '<div class="v">3</div><div class="k">difference(s)</div>' in html and STYLE in html


def _node(host, *checks):
    return {
        "inventory_hostname": host,
        "host": host,
        "time": 1796000000,
        "mode": "full",
        "status": hr.worst(c[1] for c in checks),
        "checks": [{"name": n, "status": s, "reason": r, "data": {}} for n, s, r in checks],
    }


def test_health_summary_message_and_html(tmp_path):
    results = [
        _node(
            "n2",
            ("gpu_count", "fail", "7 GPU(s) found, 8 expected"),
            ("disk", "pass", "/ 90 GiB free"),
            ("efa", "fail", "31 EFA device(s) from fi_info, 32 expected"),
        ),
        _node("n1", ("gpu_count", "pass", "8 GPU(s)"), ("disk", "warn", "/ 15 GiB free (< 2x 10 GiB)")),
    ]
    summary = hr.write_health(str(tmp_path / "validate-x"), results)
    assert summary["status"] == "fail" and summary["nodes"] == ["n1", "n2"]
    assert summary["warnings"] == ["n1: disk: / 15 GiB free (< 2x 10 GiB)"]
    assert hr.one_line(summary) == (
        "health check failed on n2: gpu_count: 7 GPU(s) found, 8 expected; "
        "efa: 31 EFA device(s) from fi_info, 32 expected"
    )
    assert json.loads((tmp_path / "validate-x/nodes/n2.json").read_text())["status"] == "fail"
    html = (tmp_path / "validate-x/report.html").read_text()
    assert '<td class="fail"><b>fail</b> 7 GPU(s) found, 8 expected</td>' in html
    assert "<td>not run</td>" in html  # n1 has no efa row
    # One look with the run reports: the shared page style, headline figures before the tables,
    # check times as dates (not epoch seconds), and no renderer of its own left in health_report.
    assert STYLE in html and "_STYLE" not in vars(hr)
    order = [html.index(x) for x in ('<div class="figures">', "<h2>Failures</h2>", "<h2>Checks</h2>")]
    assert order == sorted(order)
    tiles = re.findall(r'<div class="v">([^<]*)</div><div class="k">([^<]*)</div>', html)
    assert tiles[:4] == [("0 of 2", "nodes passed"), ("1", "nodes warned"), ("1", "nodes failed"),
                         ("2", "failed checks")], tiles
    assert "2026-11-30 00:53:20 UTC" in html and "1796000000" not in html
    ok = hr.summarize([results[1]], "validate-y")
    assert hr.one_line(ok) == "health checks warn on 1 node(s)"
    assert hr.summarize([], "validate-z")["status"] == "fail"
