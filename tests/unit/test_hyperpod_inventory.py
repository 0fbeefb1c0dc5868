"""The HyperPod inventory plugin: pagination and host vars (botocore Stubber), then the real plugin
through ansible-inventory against a moto server (groups, SSM settings, caching, clear errors)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto_fixtures import VENV_BIN, ansible_env, aws_env, free_port, moto, moto_session, run  # pylint: disable=unused-import  # noqa: F401
from moto_fixtures import create_hyperpod_cluster as make_cluster

from ansible_collections.awsome.distributed_training.plugins.inventory import hyperpod

ARN = "arn:aws:sagemaker:us-west-2:123456789012:cluster/abc123xyz"
LAUNCH = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def summary(node_id: str, group: str, status: str = "Running") -> dict:
    return {"InstanceGroupName": group, "InstanceId": node_id, "InstanceType": "ml.p5.48xlarge",
            "LaunchTime": LAUNCH, "InstanceStatus": {"Status": status}}


def detail(node_id: str, group: str, ip: str) -> dict:
    return {"NodeDetails": {**summary(node_id, group), "PrivatePrimaryIp": ip,
                            "PrivateDnsHostname": f"ip-{ip.replace('.', '-')}", "ThreadsPerCore": 1,
                            "Placement": {"AvailabilityZone": "us-west-2a"}}}


def test_list_nodes_follows_pages_and_filters_status():
    client = boto3.client("sagemaker", region_name="us-west-2",
                          aws_access_key_id="x", aws_secret_access_key="x")
    cluster = {"ClusterArn": ARN, "ClusterName": "ml", "ClusterStatus": "InService", "InstanceGroups": []}
    first_page = [summary("i-1", "controller"), summary("i-2", "workers", "Pending")]
    with Stubber(client) as stub:
        stub.add_response("describe_cluster", cluster, {"ClusterName": "ml"})
        stub.add_response("list_cluster_nodes", {"ClusterNodeSummaries": first_page, "NextToken": "t1"},
                          {"ClusterName": "ml"})
        stub.add_response("describe_cluster_node", detail("i-1", "controller", "10.1.0.5"),
                          {"ClusterName": "ml", "NodeId": "i-1"})
        stub.add_response("list_cluster_nodes", {"ClusterNodeSummaries": [summary("i-3", "workers")]},
                          {"ClusterName": "ml", "NextToken": "t1"})
        stub.add_response("describe_cluster_node", detail("i-3", "workers", "10.1.0.7"),
                          {"ClusterName": "ml", "NodeId": "i-3"})
        nodes = hyperpod.list_nodes(client, "ml", ["Running"])
        stub.assert_no_pending_responses()
    assert [n["hyperpod_instance_id"] for n in nodes] == ["i-1", "i-3"]
    worker = nodes[1]
    assert worker["hyperpod_private_ip"] == "10.1.0.7"
    assert worker["hyperpod_availability_zone"] == "us-west-2a"
    assert worker["instance_type"] == "p5.48xlarge" and worker["hyperpod_instance_type"] == "ml.p5.48xlarge"
    assert worker["hyperpod_launch_time"] == "2026-01-02T03:04:05+00:00"
    json.dumps(nodes)  # cacheable as JSON
    assert hyperpod.ssm_target({**worker, "hyperpod_cluster_arn": ARN}) == \
        "sagemaker-cluster:abc123xyz_workers-i-3"
    assert hyperpod.hostname(worker, ["private_dns", "instance_id"]) == "ip-10-1-0-7"
    assert hyperpod.hostname({**worker, "hyperpod_private_dns": ""}, ["private_dns", "instance_id"]) == "i-3"


def inventory(tmp_path: Path, env: dict, text: str, *args: str) -> tuple[int, dict | str]:
    path = tmp_path / "demo.hyperpod.yml"
    path.write_text(text)
    proc = run([str(VENV_BIN / "ansible-inventory"), "-i", str(path), "--list", *args],
               env=ansible_env(ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="true", **env), timeout=120)
    if proc.returncode != 0 or "{" not in proc.stdout:
        return proc.returncode, proc.stdout
    return 0, json.loads(proc.stdout[proc.stdout.index("{"):], object_hook=plain)


def plain(obj: dict):
    """ansible-inventory marks values from plugins as unsafe ({"__ansible_unsafe": value}): unwrap them."""
    return obj["__ansible_unsafe"] if set(obj) == {"__ansible_unsafe"} else obj


def config(endpoint: str, cluster: str = "ml-cluster", extra: str = "") -> str:
    return (f"plugin: awsome.distributed_training.hyperpod\nregions: [us-east-1]\nendpoint_url: {endpoint}\n"
            f"cluster_names: [{cluster}]\n{extra}")


@pytest.mark.slow
def test_inventory_from_moto_groups_ssm_and_cache(moto, aws_env, tmp_path):  # noqa: F811
    client = moto.client("sagemaker")
    make_cluster(client, "ml-cluster", workers=12)  # > one page of list_cluster_nodes
    cache = tmp_path / "cache"
    rc, inv = inventory(tmp_path, aws_env, config(moto.endpoint, extra=(
        "use_ssm: true\nssm_bucket_name: ssm-xfer\ncache: true\ncache_plugin: ansible.builtin.jsonfile\n"
        f"cache_connection: {cache}\nkeyed_groups:\n  - key: instance_type\n    prefix: type\n")))
    assert rc == 0, inv
    assert inv["hyperpod_ml_cluster"]["children"] == ["controller_machine", "worker_group_1"]
    workers = inv["worker_group_1"]["hosts"]
    assert len(workers) == 12 and inv["controller_machine"]["hosts"] == ["controller-machine-0"]
    assert sorted(inv["type_p5_48xlarge"]["hosts"]) == sorted(workers)
    hv = inv["_meta"]["hostvars"]["worker-group-1-3"]
    cluster_id = client.describe_cluster(ClusterName="ml-cluster")["ClusterArn"].rsplit("/", 1)[-1]
    assert hv["ansible_connection"] == "amazon.aws.aws_ssm"
    target = f"sagemaker-cluster:{cluster_id}_worker-group-1-worker-group-1-3"
    assert hv["ansible_aws_ssm_instance_id"] == target
    assert hv["ansible_aws_ssm_bucket_name"] == "ssm-xfer" and hv["region"] == "us-east-1"
    assert hv["hyperpod_instance_status"] == "Running" and hv["instance_type"] == "p5.48xlarge"

    # Served from the cache once the cluster is gone; a flushed cache sees the truth.
    client.delete_cluster(ClusterName="ml-cluster")
    rc, cached = inventory(tmp_path, aws_env, config(moto.endpoint, extra=(
        f"cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: {cache}\n")))
    assert rc == 0 and len(cached["worker_group_1"]["hosts"]) == 12
    cached_config = config(moto.endpoint, extra=(
        f"cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: {cache}\n"))
    rc, out = inventory(tmp_path, aws_env, cached_config, "--flush-cache")
    assert rc != 0 and "hyperpod inventory: SageMaker HyperPod cluster 'ml-cluster' (us-east-1)" in out


def test_missing_cluster_and_unreachable_endpoint_are_one_line(moto, aws_env, tmp_path):  # noqa: F811
    rc, out = inventory(tmp_path, aws_env, config(moto.endpoint, cluster="nope"))
    assert rc != 0
    assert ("hyperpod inventory: SageMaker HyperPod cluster 'nope' (us-east-1) was rejected at "
            f"{moto.endpoint}") in out
    assert "Traceback" not in out
    endpoint = f"http://127.0.0.1:{free_port()}"
    rc, out = inventory(tmp_path, aws_env, config(endpoint))
    assert rc != 0
    assert (f"SageMaker HyperPod cluster 'ml-cluster' (us-east-1): AWS endpoint unreachable at "
            f"{endpoint}") in out
