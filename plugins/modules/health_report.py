#!/usr/bin/python
"""Write a validation run's health report (JSON + HTML) from every node's check results."""

from __future__ import annotations

DOCUMENTATION = r"""
module: health_report
short_description: Grade the cluster's health checks and write health.json, nodes/*.json and report.html
description:
  - Takes the report of C(awsome_healthcheck.py) from every node (the healthcheck role's
    C(healthcheck_result)) and writes C(<run_dir>/health.json), C(<run_dir>/nodes/<host>.json) and
    C(<run_dir>/report.html) on the controller.
  - Does not fail on failed checks; C(status) and C(message) say what failed, the playbook decides.
options:
  run_dir: {description: The run's results directory., type: path, required: true}
  results: {description: One check report per node., type: list, elements: dict, required: true}
author: awsome.distributed_training developers (@awsome)
"""

EXAMPLES = r"""
- name: Write the report
  awsome.distributed_training.health_report:
    run_dir: results/validate-20261130-120000
    results: "{{ ansible_play_hosts | map('extract', hostvars, 'healthcheck_result') | list }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
status: {description: "pass, warn or fail (the worst node).", returned: always, type: str}
message: {description: One line naming every failed check per node., returned: always, type: str}
failures: {description: '"host: check: reason" per failed check.', returned: always, type: list}
health_warnings: {description: '"host: check: reason" per warning.', returned: always, type: list}
report: {description: Path of report.html., returned: always, type: str}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.awsome.distributed_training.plugins.module_utils.health_report import (
    one_line,
    write_health,
)


def main() -> None:
    module = AnsibleModule(argument_spec={"run_dir": {"type": "path", "required": True},
                                          "results": {"type": "list", "elements": "dict", "required": True}},
                           supports_check_mode=False)
    summary = write_health(module.params["run_dir"], module.params["results"])
    module.exit_json(changed=True, status=summary["status"], message=one_line(summary),
                     failures=summary["failures"], health_warnings=summary["warnings"],
                     report=os.path.join(module.params["run_dir"], "report.html"))


if __name__ == "__main__":
    main()
