#!/usr/bin/python
"""Write the cluster's version table (JSON + HTML) and flag every difference."""

from __future__ import annotations

DOCUMENTATION = r"""
module: version_report
short_description: One versions table for the cluster, differences from the pins and between nodes flagged
description:
  - Takes every node's C(node_versions) (M(awsome.distributed_training.version_facts)) and the pins of
    stack/versions.yml, and writes C(<run_dir>/versions.json) and C(<run_dir>/versions.html).
  - Does not fail on differences; C(flags) lists them and C(text) is the printed table.
options:
  run_dir: {description: Where the report goes., type: path, required: true}
  nodes: {description: Host -> its node_versions., type: dict, required: true}
  pins: {description: stack_versions of stack/versions.yml., type: dict, default: {}}
author: awsome.distributed_training developers (@awsome)
"""

EXAMPLES = r"""
- name: Write the version report
  awsome.distributed_training.version_report:
    run_dir: results/versions-20261130-120000
    nodes: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'node_versions'))) }}"
    pins: "{{ stack_versions }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
flags: {description: "One line per difference (from a pin, or between nodes).", returned: always, type: list}
text: {description: "The table as plain text, then the flags.", returned: always, type: str}
report: {description: Path of versions.html., returned: always, type: str}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.awsome.distributed_training.plugins.module_utils.health_report import write_versions


def main() -> None:
    module = AnsibleModule(argument_spec={"run_dir": {"type": "path", "required": True},
                                          "nodes": {"type": "dict", "required": True},
                                          "pins": {"type": "dict", "default": {}}})
    table = write_versions(module.params["run_dir"], module.params["nodes"],
                           {k: str(v) for k, v in module.params["pins"].items()})
    module.exit_json(changed=True, flags=table["flags"], text=table["text"],
                     report=os.path.join(module.params["run_dir"], "versions.html"))


if __name__ == "__main__":
    main()
