"""playbooks/validate.yml against this machine (connection local, no simulated cluster): the role
installs the check program, the checks run, the report is written. This is a CPU machine with no
instance type: the GPU checks must say "no GPU expected" and pass; with a wrong expectation
(-e expect_gpus=8) the play must fail in one line that names the check. Also the role's `quick`
entry point (the launcher's preflight) and playbooks/versions.yml on this machine. The GPU path (NVML numbers,
NVLink, the NCCL threshold) runs on the GPU machine (docs/validation.md gives the command).

The program and its config go under tmp_path (role variables), not /opt and /etc. nofile is lowered
to this machine's limit (20000, below the 65536 default for training nodes)."""

from __future__ import annotations

import json

import pytest
import yaml

from helpers import REPO, ansible_env, run_playbook

pytestmark = pytest.mark.slow


@pytest.fixture
def inventory(tmp_path):
    root = tmp_path / "node"
    host = {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
            "healthcheck_bin_dir": str(root / "bin"),
            "healthcheck_config_path": str(root / "etc/health.json"),
            "healthcheck_state_dir": str(root / "state"), "healthcheck_nofile_min": 1024}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"node1": host}}}))
    return path


def _validate(tmp_path, inventory, *extra):
    results = tmp_path / "results"
    proc = run_playbook("playbooks/validate.yml", "-e", "validate_become=false",
                        "-e", f"results_root={results}", *extra,
                        inventory=inventory, env=ansible_env(), timeout=300)
    reports = sorted(results.glob("validate-*/health.json"))
    return proc, (json.loads(reports[-1].read_text()) if reports else None)


def test_validate_passes_on_this_cpu_machine(tmp_path, inventory):
    proc, report = _validate(tmp_path, inventory)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report and report["status"] in ("pass", "warn"), report
    checks = {c["name"]: c for c in report["results"][0]["checks"]}
    for name in ("gpu_count", "gpu_ecc", "gpu_xid", "gpu_clocks_power", "gpu_topology"):
        assert (checks[name]["status"], checks[name]["reason"]) == ("pass", "no GPU expected"), checks[name]
    assert checks["efa"]["reason"] == "no EFA expected"
    assert checks["disk"]["status"] == "pass" and checks["memory"]["status"] == "pass"
    # The full run screens the training Python here (the venv's CPU torch) and skips the all-reduce.
    assert checks["torch"]["status"] == "pass" and checks["torch"]["reason"].startswith("torch 2.")
    assert "fewer than 2 GPUs" in checks["nccl_allreduce"]["reason"]
    run_dir = next((tmp_path / "results").glob("validate-*"))
    assert (run_dir / "nodes" / "node1.json").is_file()
    html = (run_dir / "report.html").read_text()
    assert "Node health" in html and "no GPU expected" in html


def test_validate_fails_naming_a_wrong_expectation(tmp_path, inventory):
    proc, report = _validate(tmp_path, inventory, "-e", "expect_gpus=8", "-e", "validate_quick=true")
    assert proc.returncode != 0
    lines = [ln for ln in proc.stdout.splitlines()
             if ln.startswith("[ERROR]") and "health check failed on node1: gpu_count: " in ln]
    why = "8 GPU(s) expected, nvidia-smi failed: nvidia-smi not found"
    assert lines and why in lines[0], proc.stdout[-3000:]
    assert report["status"] == "fail" and report["results"][0]["mode"] == "quick"
    assert report["failures"][0] == f"node1: gpu_count: {why}"


def test_quick_entry_point_lists_bad_nodes(tmp_path, inventory):
    """roles/healthcheck tasks_from: quick, as the launcher's preflight calls it."""
    play = tmp_path / "preflight.yml"
    role = "awsome.distributed_training.healthcheck"
    out = tmp_path / "preflight.json"
    keep = {"content": "{{ {'bad': healthcheck_bad_nodes, 'status': healthcheck_result.status} | to_json }}",
            "dest": str(out), "mode": "0644"}
    play.write_text(yaml.safe_dump([{
        "name": "Preflight", "hosts": "all", "gather_facts": False,
        "tasks": [
            {"name": "Install", "ansible.builtin.include_role": {"name": role}},
            {"name": "Quick checks", "ansible.builtin.include_role": {"name": role, "tasks_from": "quick"}},
            {"name": "Keep the result", "ansible.builtin.copy": keep}]}]))
    proc = run_playbook(str(play), "-e", "expect_gpus=4", inventory=inventory, env=ansible_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    result = json.loads(out.read_text())
    assert result["status"] == "fail" and len(result["bad"]) == 1
    assert result["bad"][0].startswith("node1: gpu_count: 4 GPU(s) expected, nvidia-smi failed"), result


def test_versions_playbook_reads_this_machine(tmp_path, inventory):
    """playbooks/versions.yml here: torch is read from the training Python (the venv's CPU build);
    this machine has no driver, CUDA toolkit, NCCL, EFA or Slurm, so those rows are absent."""
    results = tmp_path / "results"
    proc = run_playbook("playbooks/versions.yml", "-e", f"results_root={results}", "-e", "python=python3",
                        "-e", "versions_strict=true", inventory=inventory, env=ansible_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = json.loads(next(results.glob("versions-*/versions.json")).read_text())
    torch_version = report["nodes"]["node1"]["torch"]
    assert torch_version.startswith("2.") and report["flags"] == []
    assert [r["component"] for r in report["rows"]] == ["torch"]
    assert "PyTorch" in proc.stdout and torch_version in proc.stdout


def test_launch_preflight_refuses_or_skips_a_bad_node_and_an_absent_profiler(tmp_path):
    """The launcher's per-node preflight module with the healthcheck role's program (its file, as the
    role installs it): node2's config asks for more free disk than any machine has, a fixture of a node
    that fails its quick checks. refuse makes it one problem line naming the check; skip hands it back
    in health_skip for the launcher to leave the node out; off runs nothing; a node without the program
    runs unchecked. profiler=nsys is refused in one line where nsys is absent and passes where it is
    (a stand-in nsys here: this machine has no Nsight Systems). One playbook run for all of it."""
    program = REPO / "roles/healthcheck/files/awsome_healthcheck.py"
    fake_nsys = tmp_path / "bin/nsys"
    fake_nsys.parent.mkdir()
    version = "NVIDIA Nsight Systems version 2025.3.1.90-253135822126v0"
    fake_nsys.write_text(f"#!/bin/sh\necho '{version}'\n")
    fake_nsys.chmod(0o755)
    hosts = {}
    for node, need_gib in (("node1", 0), ("node2", 10**9)):
        cfg = tmp_path / f"{node}.json"
        cfg.write_text(json.dumps({"disk_paths": [str(tmp_path)], "disk_min_free_gib": need_gib,
                                   "mem_min_available_gib": 0, "nofile_min": 1024}))
        hosts[node] = {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
                       "cfg": str(cfg)}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    call = {"python": "/usr/bin/python3", "framework_module": "json", "health_program": str(program),
            "health_config": "{{ cfg }}"}
    runs = {"refuse": {"health_checks": "refuse"}, "skip": {"health_checks": "skip"},
            "off": {"health_checks": "off"},
            "absent": {"health_checks": "refuse", "health_program": str(tmp_path / "none.py")},
            "no_nsys": {"profiler": "nsys", "nsys": "awsome-no-such-nsys"},
            "nsys": {"profiler": "nsys", "nsys": str(fake_nsys)}}
    tasks = [{"name": f"Preflight {name}", "awsome.distributed_training.launch_preflight": {**call, **args},
              "register": f"check_{name}"} for name, args in runs.items()]
    tasks.append({"name": "Keep the results", "ansible.builtin.copy": {
        "content": "{{ {" + ", ".join(f"'{n}': check_{n}" for n in runs) + "} | to_json }}",
        "dest": str(tmp_path / "{{ inventory_hostname }}.out.json"), "mode": "0644"}})
    play = tmp_path / "preflight.yml"
    play.write_text(yaml.safe_dump([{"name": "Preflight", "hosts": "all", "gather_facts": False,
                                     "tasks": tasks}]))
    proc = run_playbook(str(play), inventory=tmp_path / "hosts.yml", env=ansible_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    good, bad = (json.loads((tmp_path / f"{n}.out.json").read_text()) for n in ("node1", "node2"))

    assert good["refuse"]["problems"] == [] and good["refuse"]["health"]["status"] in ("pass", "warn")
    assert good["skip"]["health_skip"] == ""
    (line,) = bad["refuse"]["problems"]
    assert line.startswith(f"health check failed: disk: {tmp_path} ") and "GiB free < 1e+09 GiB" in line, line
    assert bad["refuse"]["health"]["failed"] == ["disk"]
    assert bad["skip"]["problems"] == []
    assert bad["skip"]["health_skip"].startswith("health check failed: disk: ")
    assert "health" not in bad["off"] and bad["off"]["problems"] == []
    assert bad["absent"]["problems"] == [] and bad["absent"]["health"]["status"] == "unchecked"
    assert bad["absent"]["health"]["reason"].startswith(f"{tmp_path}/none.py is not installed")
    assert good["no_nsys"]["problems"] == [
        "profiler=nsys: awsome-no-such-nsys not found on this node (install Nsight Systems there, or set "
        "launcher_nsys to its path; leave out -e profiler=nsys to run unprofiled)"]
    assert good["nsys"]["problems"] == [] and good["nsys"]["profiler"] == {
        "tool": "nsys", "path": str(fake_nsys), "version": version}
