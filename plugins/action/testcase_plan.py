"""Resolve a test-case run request into a launch plan, in the controller's own process.

The plan never touches a node: as a module it cost a Python start and a module zip on every launch
(1.3-2.7 s on the 2-core test machine) for a few milliseconds of work. The rules live in
module_utils/testcase.py (unit-tested there); plugins/modules/testcase_plan.py documents the options.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.awsome.distributed_training.plugins.module_utils.testcase import (
    ManifestError,
    load_manifest,
    resolve,
)

ARGUMENT_SPEC = {
    "test_case": {"type": "str", "required": True},
    "test_cases_dir": {"type": "path", "required": True},
    "preset": {"type": "str"},
    "params": {"type": "raw"},
    "nodes": {"type": "raw"},
    "procs_per_node": {"type": "raw"},
    "hosts": {"type": "list", "elements": "str", "required": True},
    "target": {"type": "str", "required": True},
    "run_id": {"type": "str"},
    "timeout_s": {"type": "raw"},
    "launch_mode": {"type": "str"},
    "container_image": {"type": "str"},
    "render_only": {"type": "bool", "default": False},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, p = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            manifest = load_manifest(p["test_cases_dir"], p["test_case"])
            plan = resolve(manifest, preset=p["preset"], params=p["params"], nodes=p["nodes"],
                           procs_per_node=p["procs_per_node"], hosts=p["hosts"], target=p["target"],
                           run_id=p["run_id"], timeout_s=p["timeout_s"], launch_mode=p["launch_mode"],
                           container_image=p["container_image"], render_only=p["render_only"])
        except ManifestError as exc:
            raise AnsibleActionFail(str(exc)) from None
        result.update(changed=False, plan=plan)
        return result
