"""The HyperPod lifecycle bundle: on_create.sh on simulated nodes, and its upload to S3 (moto).

on_create.sh runs for real over SSH on the simulated cluster's nodes (network namespaces with their own
hostname and sshd) with HyperPod's two config files: it works out the role from the node's own
address, installs the collection from the bundle's tarball and runs playbooks/hyperpod/node.yml
locally. The bad-config cases run it here with NODE_IP set (lifecycle/examples, as HyperPod writes them).
The FSx mount and the Slurm configuration need real HyperPod nodes, so the run on the simulated nodes
is pointed at the playbook's `record` phase, and `healthcheck` on the worker (LIFECYCLE_ANSIBLE_ARGS=
--tags record[,healthcheck]) - what is checked is that each node got its role and the cluster
inventory it needs, and that the worker got the health check with its instance type's expectations
and ran it once (under the test's directories, with thresholds this machine meets, except the p5
worker's GPUs it has not).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from moto_fixtures import REPO, VENV_BIN, ansible_env, aws_env, moto, moto_session, run, run_playbook  # pylint: disable=unused-import  # noqa: F401

EXAMPLES = REPO / "lifecycle" / "examples"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    run(["lifecycle/build_bundle.sh", str(out), str(EXAMPLES / "provisioning_parameters.json")],
        check=True, timeout=300)
    return out


def on_create(bundle: Path, tmp: Path, node_ip: str, *, resource: Path = EXAMPLES / "resource_config.json",
              params: Path | None = None) -> tuple[subprocess.CompletedProcess, str]:
    """Run on_create.sh as HyperPod would, with the test's log/work dirs; return (process, log)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}  # a node has no repo config
    env.update(PATH=f"{VENV_BIN}:{env['PATH']}", PROVISION_LOG_DIR=str(tmp / "log"), NODE_IP=node_ip,
               RESOURCE_CONFIG=str(resource), LIFECYCLE_WORK_DIR=str(tmp / "work"),
               LIFECYCLE_ANSIBLE_ARGS=f"--tags record -e hyperpod_node_record={tmp}/hyperpod_node.json")
    if params:
        env["PROVISIONING_PARAMETERS"] = str(params)
    proc = subprocess.run([str(bundle / "on_create.sh")], env=env, text=True, capture_output=True,
                          timeout=300, check=False)
    log = tmp / "log" / "provisioning.log"
    return proc, log.read_text() if log.exists() else ""


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "resource_config.json not found: "),
    ("malformed", "is not valid JSON: Expecting ',' delimiter at line"),
    ("stranger", "this node (10.9.9.9) is not an instance in resource_config.json"),
    ("no_controller", "provisioning_parameters.json: controller_group is missing"),
])
def test_bad_config_fails_with_a_clear_log_line(bundle, tmp_path, case, message):
    resource, params, ip = EXAMPLES / "resource_config.json", None, "10.1.20.11"
    if case == "missing":
        resource = tmp_path / "absent.json"
    elif case == "malformed":
        resource = tmp_path / "resource_config.json"
        resource.write_text((EXAMPLES / "resource_config.json").read_text().replace('",', '"', 1))
    elif case == "stranger":
        ip = "10.9.9.9"
    else:
        params = tmp_path / "provisioning_parameters.json"
        data = json.loads((EXAMPLES / "provisioning_parameters.json").read_text())
        del data["controller_group"]
        params.write_text(json.dumps(data))
    proc, log = on_create(bundle, tmp_path, ip, resource=resource, params=params)
    assert proc.returncode != 0
    errors = [line for line in log.splitlines() if "ERROR:" in line]
    assert len(errors) == 1 and message in errors[0], log
    assert message in proc.stderr and "Traceback" not in log
    assert not (tmp_path / "hyperpod_node.json").exists()


def test_upload_bundle_to_s3(bundle, moto, aws_env):  # noqa: F811
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="sagemaker-lifecycle-demo")
    args = ["-e", f"lifecycle_bundle_dir={bundle}", "-e", "lifecycle_s3_uri=s3://sagemaker-lifecycle-demo/ml-cluster/",
            "-e", f"lifecycle_endpoint_url={moto.endpoint}"]
    env = ansible_env(**aws_env)
    proc = run_playbook("playbooks/hyperpod/upload_lifecycle.yml", *args, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    listed = s3.list_objects_v2(Bucket="sagemaker-lifecycle-demo", Prefix="ml-cluster/")["Contents"]
    keys = sorted(o["Key"].removeprefix("ml-cluster/") for o in listed)
    # Every file of the bundle, the dependency collections' tarballs under dependencies/ too.
    assert keys == sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file())
    body = s3.get_object(Bucket="sagemaker-lifecycle-demo", Key="ml-cluster/on_create.sh")["Body"].read()
    assert body == (bundle / "on_create.sh").read_bytes()
    again = run_playbook("playbooks/hyperpod/upload_lifecycle.yml", *args, env=env, timeout=300)
    assert again.returncode == 0 and "changed=0" in again.stdout

    missing = run_playbook("playbooks/hyperpod/upload_lifecycle.yml", "-e", f"lifecycle_bundle_dir={bundle}",
                           "-e", "lifecycle_s3_uri=s3://sagemaker-absent/x/",
                           "-e", f"lifecycle_endpoint_url={moto.endpoint}", env=env, timeout=300)
    assert missing.returncode != 0
    assert "S3 bucket 'sagemaker-absent' does not exist" in missing.stdout


def test_bundle_holds_scripts_and_collection(bundle):
    names = sorted(p.name for p in bundle.iterdir())
    assert names == ["awsome-distributed_training-0.1.0.tar.gz", "dependencies", "node_role.py",
                     "on_create.sh", "provisioning_parameters.json"]
    # galaxy.yml's dependencies travel with it (the FSx mount needs ansible.posix on the node)
    deps = sorted(p.name.rsplit("-", 1)[0] for p in (bundle / "dependencies").iterdir())
    assert deps == sorted(d.replace(".", "-") for d in yaml.safe_load((REPO / "galaxy.yml").read_text())
                          ["dependencies"]), deps
    listing = subprocess.run(["tar", "-tzf", str(bundle / names[0])], capture_output=True, text=True,
                             check=True)
    assert "playbooks/hyperpod/node.yml" in listing.stdout and "MANIFEST.json" in listing.stdout
    assert shutil.which("ansible-galaxy", path=str(VENV_BIN))


def cluster_config(tmp: Path, groups: dict[str, list[tuple[str, str]]]) -> Path:
    """A resource_config.json as HyperPod writes it, with instances {group: [(name, ip), ...]}."""
    example = json.loads((EXAMPLES / "resource_config.json").read_text())
    types = {g["Name"]: g["InstanceType"] for g in example["InstanceGroups"]}
    config = {"ClusterConfig": example["ClusterConfig"], "InstanceGroups": [
        {"Name": group, "InstanceType": types[group], "Instances": [
            {"InstanceName": name, "CustomerIpAddress": ip, "AgentIpAddress": f"172.16.54.{10 + i}",
             "InstanceId": f"i-0a1b2c3d4e5f6{i:04d}"} for i, (name, ip) in enumerate(members, start=1)]}
        for group, members in groups.items()]}
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "resource_config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def on_create_over_ssh(bundle: Path, cluster: dict, node: str, resource: Path, tmp: Path,
                       tags: str) -> subprocess.Popen:
    """Start on_create.sh on a simulated node over SSH. The nodes share this machine's file system, so
    each node's log, work and record paths are its own directory under `tmp`; the node finds its IP
    from its own hostname, as on HyperPod."""
    here = tmp / node
    # The health check's files under the test's directory; thresholds this machine meets.
    args = [f"-e {k}={v}" for k, v in {
        "hyperpod_node_record": here / "hyperpod_node.json", "healthcheck_bin_dir": here / "health/bin",
        "healthcheck_config_path": here / "health/health.json",
        "healthcheck_state_dir": here / "health/state", "healthcheck_nofile_min": 1024,
        "healthcheck_disk_min_free_gib": 1,
        "healthcheck_mem_min_available_gib": 0.5}.items()]
    env = {"PATH": f"{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "RESOURCE_CONFIG": resource,
           "PROVISION_LOG_DIR": here / "log", "LIFECYCLE_WORK_DIR": here / "work",
           "LIFECYCLE_ANSIBLE_ARGS": "'" + " ".join([f"--tags {tags}", *args]) + "'"}
    command = " ".join(f"{k}={v}" for k, v in env.items()) + f" {bundle}/on_create.sh"
    # The inventory's ssh options: the node's host key is checked against the cluster's known_hosts.
    ssh = ["ssh", "-i", cluster["vars"]["ansible_ssh_private_key_file"], "-o", "BatchMode=yes",
           *cluster["vars"]["ansible_ssh_common_args"].split(), "-o", "LogLevel=ERROR",
           f"root@{cluster['hosts'][node]['ansible_host']}", command]
    return subprocess.Popen(ssh, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_on_create_on_the_simulated_nodes(bundle, local_cluster, tmp_path):
    """node1 and node2 run on_create.sh over SSH as the controller and a worker of one cluster; then node2
    runs it again as the login node of a second cluster layout (two nodes, three roles)."""
    cluster = yaml.safe_load(local_cluster.read_text())["all"]["children"]["cluster"]
    ip = {node: v["ansible_host"] for node, v in cluster["hosts"].items()}
    first = cluster_config(tmp_path, {
        "controller-machine": [("controller-machine-1", ip["node1"])],
        "login-group": [("login-group-1", "10.77.0.201")],  # listed, not simulated here
        "worker-group-1": [("worker-group-1-1", ip["node2"]), ("worker-group-1-2", "10.77.0.202")]})
    # The health check runs on the worker only: its time is spent once.
    runs = {node: on_create_over_ssh(bundle, cluster, node, first, tmp_path / "a",
                                     tags="record,healthcheck" if node == "node2" else "record")
            for node in ("node1", "node2")}
    outputs = {node: proc.communicate(timeout=300)[0] for node, proc in runs.items()}
    second = cluster_config(tmp_path / "b", {
        "controller-machine": [("controller-machine-1", ip["node1"])],
        "login-group": [("login-group-1", ip["node2"])],
        "worker-group-1": [("worker-group-1-1", "10.77.0.202")]})
    login = on_create_over_ssh(bundle, cluster, "node2", second, tmp_path / "b", tags="record")
    outputs["login"] = login.communicate(timeout=300)[0]
    for proc, out in zip([*runs.values(), login], outputs.values(), strict=True):
        assert proc.returncode == 0, out

    expected = [("a", "node1", "controller-machine-1", "controller"),
                ("a", "node2", "worker-group-1-1", "worker"), ("b", "node2", "login-group-1", "login")]
    for layout, node, host, role in expected:
        here = tmp_path / layout / node
        record = json.loads((here / "hyperpod_node.json").read_text())
        assert record["host"] == host and record["role"] == role, record
        assert record["controller_ip"] == ip["node1"] and record["cluster"] == "ml-cluster"
        log = (here / "log" / "provisioning.log").read_text()
        assert f"this node is {host}, role {role}" in log and f"done: {host} configured as {role}" in log, log
        assert (here / "work" / "collections" / "ansible_collections" / "awsome" / "distributed_training"
                / "MANIFEST.json").is_file()
        facts = json.loads((here / "work" / "node.json").read_text())
        assert facts["ip"] == ip[node], facts  # found from the node's own hostname
        if role == "worker":
            # The health check, with the expectations of the node's instance type (p5.48xlarge: 8 GPUs,
            # 32 EFA devices, the 300 GB/s all-reduce floor), run once into the log: the simulated p5
            # worker has no GPU, and the script still succeeds.
            health = json.loads((here / "health" / "health.json").read_text())
            expected = (health["expect_gpus"], health["expect_efa"], health["nccl_busbw_min_gbps"])
            assert expected == (8, 32, 300.0), health
            assert (here / "health" / "bin" / "awsome-health-slurm").is_file()
            assert "health check fail: gpu_count: 8 GPU(s) expected, nvidia-smi failed" in log, log

    # Slurm's entry point on the worker as slurmd runs it: fails on gpu_count, keeps the result (no
    # scontrol here to drain with: the Molecule slurm scenario shows the drain and the return).
    worker = tmp_path / "a" / "node2" / "health"
    slurm_run = subprocess.run([str(worker / "bin" / "awsome-health-slurm")], capture_output=True, text=True,
                               timeout=120, check=False)
    last = json.loads((worker / "state" / "last.json").read_text())
    assert slurm_run.returncode == 1, slurm_run.stderr
    assert last["status"] == "fail" and last["slurm"] == "scontrol show node failed", last
    # ... and what the playbook tells the slurm role to run: that entry point, on every node.
    play = yaml.safe_load((REPO / "playbooks/hyperpod/node.yml").read_text())[0]
    slurm_task = next(t for t in play["tasks"] if t.get("ansible.builtin.include_role", {}).get("name", "")
                      .endswith(".slurm"))
    assert slurm_task["vars"]["slurm_health_check_program"] == (
        "{{ healthcheck_bin_dir | default('/opt/awsome/bin') }}/awsome-health-slurm")

    inventory = json.loads((tmp_path / "a" / "node2" / "work" / "inventory.json").read_text())
    inventory = inventory["all"]["children"]
    assert list(inventory["slurm_controller"]["hosts"]) == ["controller-machine-1"]
    assert list(inventory["slurm_login"]["hosts"]) == ["login-group-1"]
    assert list(inventory["slurm_compute"]["hosts"]) == ["worker-group-1-1", "worker-group-1-2"]
    assert list(inventory["partition_p5"]["hosts"]) == ["worker-group-1-1", "worker-group-1-2"]
    # Only this node is reached locally; the others are there for their addresses.
    local = [h for g in inventory.values() for h, v in g["hosts"].items() if v.get("ansible_connection")]
    assert local == ["worker-group-1-1"]
