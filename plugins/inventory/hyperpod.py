# Copyright: awsome.distributed_training contributors
# MIT-0 (see galaxy.yml)
"""Inventory of the nodes of SageMaker HyperPod clusters."""

from __future__ import annotations

DOCUMENTATION = r"""
name: hyperpod
short_description: SageMaker HyperPod cluster nodes as an inventory
version_added: 0.1.0
author: awsome.distributed_training developers (@awsome)
description:
  - Lists the nodes of one or more SageMaker HyperPod clusters (C(ListClusterNodes), paginated, then
    C(DescribeClusterNode) per node) and adds them as hosts.
  - Every node joins the group named after its instance group, dashes replaced by underscores
    (C(controller-machine) gives C(controller_machine)), and that group is a child of C(hyperpod_<cluster name>).
  - Host variables - C(hyperpod_cluster_name), C(hyperpod_cluster_arn), C(hyperpod_instance_id),
    C(hyperpod_instance_group), C(hyperpod_instance_type), C(hyperpod_instance_status),
    C(hyperpod_availability_zone), C(hyperpod_private_ip), C(hyperpod_private_dns), C(hyperpod_launch_time),
    C(hyperpod_threads_per_core), C(region), and C(instance_type) without the C(ml.) prefix, so that the
    per-instance-type table in C(inventories/aws/group_vars) applies to HyperPod nodes as to EC2 ones.
  - With O(use_ssm), hosts are reached through Session Manager using HyperPod's target
    C(sagemaker-cluster:<cluster id>_<instance group>-<instance id>); otherwise C(ansible_host) is the
    node's private IP.
  - The configuration file must end with C(hyperpod.yml) or C(hyperpod.yaml).
options:
  plugin:
    description: Token that ensures this is a source file for the plugin.
    required: true
    choices: [awsome.distributed_training.hyperpod]
  cluster_names:
    description: Clusters to list. Empty means every cluster in each region.
    type: list
    elements: str
    default: []
  regions:
    description: Regions to look in. Empty means the configured region (O(region), C(AWS_REGION), profile).
    type: list
    elements: str
    default: []
  statuses:
    description: Node statuses to include (C(Running), C(Pending), C(Failure), C(ShuttingDown), C(SystemUpdating),
      C(DeepHealthCheckInProgress)); C(all) includes every node.
    type: list
    elements: str
    default: [Running]
  hostnames:
    description: Host name sources, first available wins.
    type: list
    elements: str
    choices: [private_dns, private_ip, instance_id]
    default: [private_dns, instance_id]
  use_ssm:
    description: Connect through AWS Systems Manager Session Manager instead of SSH.
    type: bool
    default: false
  ssm_connection:
    description: Connection plugin used with O(use_ssm) (formerly C(community.aws.aws_ssm)).
    type: str
    default: amazon.aws.aws_ssm
  ssm_bucket_name:
    description: S3 bucket the SSM connection uses for file transfers (required by the plugin with O(use_ssm)).
    type: str
extends_documentation_fragment:
  - inventory_cache
  - constructed
  - amazon.aws.boto3
  - amazon.aws.common.plugins
  - amazon.aws.region.plugins
  - amazon.aws.assume_role.plugins
"""

EXAMPLES = r"""
# inventories/aws/hyperpod.yml
plugin: awsome.distributed_training.hyperpod
regions: [us-west-2]
cluster_names: [ml-cluster]
use_ssm: true
ssm_bucket_name: my-ssm-transfer-bucket
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible-hyperpod
keyed_groups:
  - key: hyperpod_instance_type
    prefix: type
compose:
  slurm_role: "'controller' if hyperpod_instance_group == 'controller' else 'worker'"
"""

from ansible.errors import AnsibleError
from ansible.inventory.group import to_safe_group_name

try:
    import botocore
except ImportError:
    botocore = None  # reported by AWSInventoryBase.require_aws_sdk

from ansible_collections.amazon.aws.plugins.plugin_utils.inventory import AWSInventoryBase
from ansible_collections.awsome.distributed_training.plugins.module_utils.aws_errors import describe_aws_error


def cluster_names(client, wanted):
    if wanted:
        return list(wanted)
    names = []
    for page in client.get_paginator("list_clusters").paginate():
        names.extend(c["ClusterName"] for c in page.get("ClusterSummaries", []))
    return names


def list_nodes(client, cluster, statuses):
    """Details of every node of `cluster` whose status is in `statuses` (or all with 'all')."""
    arn = client.describe_cluster(ClusterName=cluster)["ClusterArn"]
    nodes = []
    for page in client.get_paginator("list_cluster_nodes").paginate(ClusterName=cluster):
        for summary in page.get("ClusterNodeSummaries", []):
            status = summary.get("InstanceStatus", {}).get("Status")
            if "all" not in statuses and status not in statuses:
                continue
            detail = client.describe_cluster_node(ClusterName=cluster, NodeId=summary["InstanceId"])
            nodes.append(node_vars(cluster, arn, {**summary, **detail["NodeDetails"]}))
    return nodes


def node_vars(cluster, arn, node):
    """Host variables of one node (JSON-safe, so they can be cached)."""
    instance_type = node.get("InstanceType", "")
    launch = node.get("LaunchTime")
    return {
        "hyperpod_cluster_name": cluster,
        "hyperpod_cluster_arn": arn,
        "hyperpod_instance_id": node["InstanceId"],
        "hyperpod_instance_group": node.get("InstanceGroupName", ""),
        "hyperpod_instance_type": instance_type,
        "hyperpod_instance_status": node.get("InstanceStatus", {}).get("Status", ""),
        "hyperpod_availability_zone": node.get("Placement", {}).get("AvailabilityZone", ""),
        "hyperpod_private_ip": node.get("PrivatePrimaryIp", ""),
        "hyperpod_private_dns": node.get("PrivateDnsHostname", ""),
        "hyperpod_launch_time": launch.isoformat() if hasattr(launch, "isoformat") else str(launch or ""),
        "hyperpod_threads_per_core": node.get("ThreadsPerCore"),
        "instance_type": instance_type.removeprefix("ml."),
    }


def group_name(name):
    """HyperPod names have dashes (worker-group-1); Ansible group names should not: worker_group_1."""
    return to_safe_group_name(name, force=True, silent=True)


def ssm_target(host):
    cluster_id = host["hyperpod_cluster_arn"].rsplit("/", 1)[-1]
    return f"sagemaker-cluster:{cluster_id}_{host['hyperpod_instance_group']}-{host['hyperpod_instance_id']}"


def hostname(host, preferences):
    sources = {"private_dns": "hyperpod_private_dns", "private_ip": "hyperpod_private_ip",
               "instance_id": "hyperpod_instance_id"}
    for preference in preferences:
        if host.get(sources[preference]):
            return host[sources[preference]]
    return host["hyperpod_instance_id"]


class InventoryModule(AWSInventoryBase):
    NAME = "awsome.distributed_training.hyperpod"
    INVENTORY_FILE_SUFFIXES = ("hyperpod.yml", "hyperpod.yaml")

    def fetch(self):
        regions = self.get_option("regions") or [self.region]
        if not regions or regions == [None]:
            raise AnsibleError("hyperpod inventory: no AWS region given (set regions, region or AWS_REGION)")
        statuses = self.get_option("statuses")
        endpoint = self.get_option("endpoint_url")
        hosts = []
        for region in regions:
            client = self.client("sagemaker", region=region)
            resource = f"SageMaker HyperPod clusters in {region}"
            try:
                for cluster in cluster_names(client, self.get_option("cluster_names")):
                    resource = f"SageMaker HyperPod cluster '{cluster}' ({region})"
                    hosts.extend({**h, "region": region} for h in list_nodes(client, cluster, statuses))
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                raise AnsibleError(f"hyperpod inventory: {describe_aws_error(exc, resource, endpoint)}") from None
        return hosts

    def populate(self, hosts):
        strict = self.get_option("strict")
        for host in hosts:
            name = hostname(host, self.get_option("hostnames"))
            cluster_group = self.inventory.add_group(group_name(f"hyperpod_{host['hyperpod_cluster_name']}"))
            group = self.inventory.add_group(group_name(host["hyperpod_instance_group"]))
            self.inventory.add_child(cluster_group, group)
            self.inventory.add_host(name, group=group)
            for key, value in host.items():
                self.inventory.set_variable(name, key, value)
            if self.get_option("use_ssm"):
                self.inventory.set_variable(name, "ansible_connection", self.get_option("ssm_connection"))
                self.inventory.set_variable(name, "ansible_aws_ssm_instance_id", ssm_target(host))
                self.inventory.set_variable(name, "ansible_aws_ssm_region", host["region"])
                bucket = self.get_option("ssm_bucket_name")
                if bucket:
                    self.inventory.set_variable(name, "ansible_aws_ssm_bucket_name", bucket)
            elif host["hyperpod_private_ip"]:
                self.inventory.set_variable(name, "ansible_host", host["hyperpod_private_ip"])
            hostvars = self.inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        cached, hosts = self.get_cached_result(path, cache)
        if not cached:
            hosts = self.fetch()
        self.populate(hosts)
        self.update_cached_result(path, cache, hosts)
