#!/usr/bin/python
"""Ansible module: facts about the EFA devices of a node, read from sysfs."""

from __future__ import annotations

DOCUMENTATION = r"""
module: efa_facts
short_description: Elastic Fabric Adapter devices from sysfs
description:
  - Lists the RDMA devices under C(/sys/class/infiniband) whose kernel driver is C(efa).
  - A node without EFA gets C(efa_count=0).
options:
  sysfs_root:
    description: Root of sysfs (tests point it at a fixture tree).
    type: path
    default: /sys
author: awsome.distributed_training developers (@awsome)
"""

EXAMPLES = r"""
- name: Count the EFA devices
  awsome.distributed_training.efa_facts:
"""

RETURN = r"""
ansible_facts:
  description: efa_count and efa_devices (sorted device names such as rdmap16s27).
  returned: always
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule


def efa_devices(sysfs_root: str) -> list[str]:
    base = os.path.join(sysfs_root, "class", "infiniband")
    if not os.path.isdir(base):
        return []
    found = []
    for dev in os.listdir(base):
        driver = os.path.join(base, dev, "device", "driver")
        if os.path.basename(os.path.realpath(driver)) == "efa":
            found.append(dev)
    return sorted(found)


def main() -> None:
    module = AnsibleModule(argument_spec={"sysfs_root": {"type": "path", "default": "/sys"}},
                           supports_check_mode=True)
    devices = efa_devices(module.params["sysfs_root"])
    module.exit_json(changed=False, ansible_facts={"efa_count": len(devices), "efa_devices": devices})


if __name__ == "__main__":
    main()
