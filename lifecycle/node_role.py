#!/usr/bin/env python3
"""Work out what this HyperPod node is (controller, login or worker) from the two files HyperPod
gives a lifecycle script, and write the Ansible inventory of the whole cluster for the local run.

resource_config.json (written by HyperPod) lists every instance group and instance with its IP;
provisioning_parameters.json (shipped in the bundle) says which group is the controller, which the
login nodes and which groups are workers (with their Slurm partitions). Every node gets the whole
cluster in its inventory so that roles can see the controller's address; on_create.sh then limits
the run to this node and connects to it locally.

Errors are one line on stderr and exit status 2, so that on_create.sh can log them as they are.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
from pathlib import Path

ROLES = ("controller", "login", "worker")


class ConfigError(Exception):
    pass


def load(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} ({path}) is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} ({path}) must hold a JSON object")
    return data


def group_roles(params: dict) -> dict[str, tuple[str, str | None]]:
    """instance group name -> (role, partition)."""
    if params.get("workload_manager", "slurm") != "slurm":
        raise ConfigError(f"provisioning_parameters.json: workload_manager {params['workload_manager']!r} "
                          "is not supported (slurm)")
    if not params.get("controller_group"):
        raise ConfigError("provisioning_parameters.json: controller_group is missing")
    workers = params.get("worker_groups")
    if not isinstance(workers, list) or not workers:
        raise ConfigError("provisioning_parameters.json: worker_groups must be a non-empty list")
    roles = {params["controller_group"]: ("controller", None)}
    if params.get("login_group"):
        roles[params["login_group"]] = ("login", None)
    for worker in workers:
        if not isinstance(worker, dict) or not worker.get("instance_group_name"):
            raise ConfigError("provisioning_parameters.json: every worker_groups entry needs "
                              "instance_group_name")
        roles[worker["instance_group_name"]] = ("worker", worker.get("partition_name", "dev"))
    return roles


def instances(resource: dict) -> list[dict]:
    groups = resource.get("InstanceGroups")
    if not isinstance(groups, list) or not groups:
        raise ConfigError("resource_config.json: InstanceGroups is missing or empty")
    found = []
    for group in groups:
        for inst in group.get("Instances", []):
            if not inst.get("CustomerIpAddress") or not inst.get("InstanceName"):
                raise ConfigError(f"resource_config.json: an instance of group {group.get('Name')!r} lacks "
                                  "InstanceName or CustomerIpAddress")
            found.append({**inst, "Group": group.get("Name"), "InstanceType": group.get("InstanceType", "")})
    return found


def safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def build(resource: dict, params: dict, node_ip: str) -> tuple[dict, dict]:
    """Return (inventory, this node's facts)."""
    roles = group_roles(params)
    nodes = instances(resource)
    groups_present = {n["Group"] for n in nodes}
    for name, (role, _group) in roles.items():
        if name not in groups_present and role != "login":
            present = ", ".join(sorted(groups_present))
            raise ConfigError(f"provisioning_parameters.json names {role} group {name!r}, "
                              f"absent from resource_config.json (groups: {present})")
    controller = next(n for n in nodes if roles.get(n["Group"], ("",))[0] == "controller")
    cluster_vars = {"hyperpod_cluster_name": resource.get("ClusterConfig", {}).get("ClusterName", ""),
                    "hyperpod_controller_ip": controller["CustomerIpAddress"],
                    "fsx_dns_name": params.get("fsx_dns_name", ""),
                    "fsx_mountname": params.get("fsx_mountname", "")}
    inventory = {"all": {"children": {"slurm_controller": {"hosts": {}}, "slurm_login": {"hosts": {}},
                                      "slurm_compute": {"hosts": {}}},
                         "vars": cluster_vars}}
    children = inventory["all"]["children"]
    me = None
    for node in nodes:
        if node["Group"] not in roles:
            raise ConfigError(f"instance group {node['Group']!r} is not named in "
                              "provisioning_parameters.json")
        role, partition = roles[node["Group"]]
        host = node["InstanceName"]
        hostvars = {"ansible_host": node["CustomerIpAddress"], "hyperpod_node_role": role,
                    "hyperpod_instance_group": node["Group"],
                    "instance_type": node["InstanceType"].removeprefix("ml.")}
        group = {"controller": "slurm_controller", "login": "slurm_login", "worker": "slurm_compute"}[role]
        children[group]["hosts"][host] = hostvars
        if partition:
            children.setdefault(f"partition_{safe(partition)}", {"hosts": {}})["hosts"][host] = {}
        if node["CustomerIpAddress"] == node_ip:
            me = {"host": host, "role": role, "group": node["Group"], "partition": partition,
                  "ip": node_ip, "controller_ip": controller["CustomerIpAddress"]}
            hostvars["ansible_connection"] = "local"
            # The python3 that runs this script runs the modules too (no interpreter discovery).
            hostvars["ansible_python_interpreter"] = sys.executable
    if me is None:
        raise ConfigError(f"this node ({node_ip}) is not an instance in resource_config.json")
    return inventory, me


def local_ips() -> list[str]:
    ips = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            ips.add(info[4][0])
    except OSError:
        pass
    return sorted(ips)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resource-config", type=Path, required=True)
    parser.add_argument("--provisioning-parameters", type=Path, required=True)
    parser.add_argument("--node-ip", default="", help="this node's IP (default: from its hostname)")
    parser.add_argument("--inventory", type=Path, required=True, help="inventory file to write (JSON)")
    parser.add_argument("--facts", type=Path, required=True, help="this node's facts file to write (JSON)")
    args = parser.parse_args(argv)
    try:
        resource = load(args.resource_config, "resource_config.json")
        params = load(args.provisioning_parameters, "provisioning_parameters.json")
        candidates = [args.node_ip] if args.node_ip else local_ips()
        error = None
        for ip in candidates or [""]:
            try:
                inventory, me = build(resource, params, ip)
                break
            except ConfigError as exc:
                error = exc
                if "is not an instance" not in str(exc):
                    raise
        else:
            raise error
    except ConfigError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    args.inventory.write_text(json.dumps(inventory, indent=2))
    args.facts.write_text(json.dumps(me, indent=2))
    print(f"{me['role']} {me['host']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
