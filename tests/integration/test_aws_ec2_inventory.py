"""inventories/aws: the per-instance-type table, and the EC2 inventory driving a real run.

The end-to-end test seeds moto with two EC2 instances that carry the simulated nodes' private IPs
(10.77.0.11/12 in subnet 10.77.0.0/24), tagged as cluster "demo", and runs run_fsdp.yml through
the shipped inventories/aws/aws_ec2.yml unchanged: botocore reads the endpoint from
AWS_ENDPOINT_URL_EC2. SSH user, key and node paths of the simulated cluster come from its own
inventory file, put in group_vars/cluster_demo.yml next to a copy of inventories/aws, as a site's
group_vars would provide them on EC2.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from moto_fixtures import REPO, ansible_env, aws_env, moto, moto_session, run, run_playbook  # pylint: disable=unused-import  # noqa: F401

AWS_INVENTORY = REPO / "inventories" / "aws"


def test_instance_type_table_gives_accelerator_and_efa_and_leaves_the_job_env_to_the_nccl_role(tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(AWS_INVENTORY / "group_vars", inv / "group_vars")
    hosts = {"h100": "p5.48xlarge", "hp_trn": "ml.trn1.32xlarge", "g5": "g5.12xlarge", "misc": "t3.micro"}
    (inv / "hosts.yml").write_text(yaml.safe_dump(
        {"all": {"hosts": {h: {"instance_type": t} for h, t in hosts.items()}}}))
    msg = "{{ {'a': accelerator, 'g': gpus_per_node | int, 'e': efa_devices | int, 'env': instance_env} }}"
    proc = run([str(REPO / ".venv" / "bin" / "ansible"), "all", "-i", str(inv / "hosts.yml"), "-o", "-m",
                "ansible.builtin.debug", "-a", f"msg={msg}"], timeout=120)
    assert proc.returncode == 0, proc.stdout
    facts = {m.group(1): json.loads(m.group(2)) for m in
             re.finditer(r'^(\w+) \| SUCCESS => (\{.*\})$', proc.stdout, re.M)}
    facts = {h: f["msg"] for h, f in facts.items()}
    assert facts["h100"]["a"] == "cuda" and facts["h100"]["g"] == 8 and facts["h100"]["e"] == 32
    # NCCL/EFA variables have one owner, /etc/awsome/nccl.env (nccl role): the table repeats none.
    assert facts["h100"]["env"] == {}
    assert facts["hp_trn"] == {"a": "neuron", "g": 16, "e": 8, "env": {}}
    assert facts["g5"]["a"] == "cuda" and facts["g5"]["e"] == 0
    assert facts["misc"] == {"a": "cpu", "g": 0, "e": 0, "env": {}}


def seed_cluster(ec2) -> None:
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.0.0/24")["Subnet"]["SubnetId"]
    for index, ip in enumerate(("10.77.0.11", "10.77.0.12"), start=1):
        tags = [{"Key": "cluster", "Value": "demo"}, {"Key": "role", "Value": "compute"},
                {"Key": "Name", "Value": f"node{index}"}]
        ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="c5.large",
                          SubnetId=subnet, PrivateIpAddress=ip,
                          TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])


@pytest.mark.slow
def test_fsdp_runs_through_the_ec2_inventory(local_cluster: Path, moto, aws_env, tmp_path):  # noqa: F811
    seed_cluster(moto.client("ec2"))
    env = ansible_env(AWS_ENDPOINT_URL_EC2=moto.endpoint, ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="true",
                      **aws_env)
    graph = run([str(REPO / ".venv" / "bin" / "ansible-inventory"), "-i", str(AWS_INVENTORY / "aws_ec2.yml"),
                 "--graph", "cluster_demo"], env=env, timeout=120)
    assert graph.returncode == 0 and "node1" in graph.stdout and "node2" in graph.stdout, graph.stdout

    inventory = tmp_path / "inventory"
    shutil.copytree(AWS_INVENTORY, inventory)
    site = yaml.safe_load(local_cluster.read_text())["all"]["children"]["cluster"]["vars"]
    (inventory / "group_vars" / "cluster_demo.yml").write_text(yaml.safe_dump(site))
    proc = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", "-e", "target=cluster_demo",
                        inventory=inventory / "aws_ec2.yml", env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    match = re.search(r"(/\S+/results/[^/\s]+)/report\.html", proc.stdout)
    assert match, proc.stdout[-3000:]
    summary = json.loads((Path(match.group(1)) / "summary.json").read_text())
    assert summary["status"] == "passed", summary.get("failures")
    assert summary["nodes"] == ["node1", "node2"] and summary["ranks_reported"] == [0, 1]
