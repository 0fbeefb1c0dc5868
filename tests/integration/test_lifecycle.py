"""The HyperPod lifecycle bundle: on_create.sh on simulated nodes, and its upload to S3 (moto).

Each "node" is this machine given a node IP (NODE_IP) with HyperPod's two config files
(lifecycle/examples, as HyperPod writes them). on_create.sh runs for real: it works out the role,
installs the collection from the bundle's tarball and runs playbooks/hyperpod/node.yml locally.
The FSx mount and the Slurm configuration need real HyperPod nodes, so the run here is pointed at
the playbook's `record` phase only (LIFECYCLE_ANSIBLE_ARGS=--tags record) - what is checked is that
each node got its role and the cluster inventory it needs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from moto_fixtures import REPO, VENV_BIN, ansible_env, aws_env, moto, moto_session, run, run_playbook  # noqa: F401

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
                          timeout=300)
    log = tmp / "log" / "provisioning.log"
    return proc, log.read_text() if log.exists() else ""


@pytest.mark.slow
@pytest.mark.parametrize(("ip", "host", "role"), [
    ("10.1.20.11", "controller-machine-1", "controller"),
    ("10.1.20.12", "login-group-1", "login"),
    ("10.1.30.22", "worker-group-1-2", "worker"),
])
def test_on_create_gives_each_node_its_role(bundle, tmp_path, ip, host, role):
    proc, log = on_create(bundle, tmp_path, ip)
    assert proc.returncode == 0, log[-4000:]
    record = json.loads((tmp_path / "hyperpod_node.json").read_text())
    assert record == {"host": host, "role": role, "instance_group": host.rsplit("-", 1)[0],
                      "instance_type": "p5.48xlarge" if role == "worker" else record["instance_type"],
                      "cluster": "ml-cluster", "controller_ip": "10.1.20.11"}
    assert f"this node is {host}, role {role}" in log and f"done: {host} configured as {role}" in log
    inventory = json.loads((tmp_path / "work" / "inventory.json").read_text())["all"]["children"]
    assert list(inventory["slurm_controller"]["hosts"]) == ["controller-machine-1"]
    assert list(inventory["slurm_compute"]["hosts"]) == ["worker-group-1-1", "worker-group-1-2"]
    assert list(inventory["partition_p5"]["hosts"]) == ["worker-group-1-1", "worker-group-1-2"]
    # Only this node is reached locally; the others are there for their addresses.
    local = [h for g in inventory.values() for h, v in g["hosts"].items() if v.get("ansible_connection")]
    assert local == [host]


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
    assert keys == sorted(p.name for p in bundle.iterdir())
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
    assert names == ["awsome-distributed_training-0.1.0.tar.gz", "node_role.py", "on_create.sh",
                     "provisioning_parameters.json"]
    listing = subprocess.run(["tar", "-tzf", str(bundle / names[0])], capture_output=True, text=True,
                             check=True)
    assert "playbooks/hyperpod/node.yml" in listing.stdout and "MANIFEST.json" in listing.stdout
    assert shutil.which("ansible-galaxy", path=str(VENV_BIN))
