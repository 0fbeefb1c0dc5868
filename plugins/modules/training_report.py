#!/usr/bin/python
"""Judge a finished run from the files gathered from its nodes, and write its report."""

from __future__ import annotations

DOCUMENTATION = r"""
module: training_report
short_description: Write summary.json, metrics.jsonl, plots and report.html for a test-case run
description:
  - Reads C(<run_dir>/nodes/<host>/) (metrics JSON lines, logs, exit status) gathered by the launcher,
    applies the manifest's success checks and writes the run's results.
  - Fails with a one-line message listing every failed check when the run did not succeed.
options:
  run_dir: {description: The run's results directory on the controller., type: path, required: true}
  plan: {description: The plan returned by M(awsome.distributed_training.testcase_plan)., type: dict, required: true}
  fail_on_failure:
    description: Fail the task when the run failed (false between the attempts of a restarted run).
    type: bool
    default: true
author: awsome.distributed_training developers (@awsome)
"""

EXAMPLES = r"""
- name: Write the report
  awsome.distributed_training.training_report:
    run_dir: "{{ playbook_dir }}/../results/{{ plan.run_id }}"
    plan: "{{ plan }}"
"""

RETURN = r"""
summary:
  description: The content of summary.json.
  returned: always
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.awsome.distributed_training.plugins.module_utils.run_report import write_report


def main() -> None:
    module = AnsibleModule(
        argument_spec={"run_dir": {"type": "path", "required": True},
                       "plan": {"type": "dict", "required": True},
                       "fail_on_failure": {"type": "bool", "default": True}},
    )
    run_dir = module.params["run_dir"]
    summary = write_report(run_dir, module.params["plan"])
    latest = os.path.join(os.path.dirname(run_dir), "latest")
    if os.path.islink(latest) or not os.path.exists(latest):
        tmp = latest + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.path.basename(run_dir), tmp)
        os.replace(tmp, latest)
    report = os.path.join(run_dir, "report.html")
    if summary["status"] != "passed" and module.params["fail_on_failure"]:
        module.fail_json(msg=f"{summary['test_case']}/{summary['preset']} failed: " + "; ".join(summary["failures"])
                         + f" (report: {report})", summary=summary, report=report)
    module.exit_json(changed=True, summary=summary, report=report)


if __name__ == "__main__":
    main()
