"""Documentation of the testcase_plan action plugin (plugins/action/testcase_plan.py does the work)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: testcase_plan
short_description: Validate a test-case run request and resolve it into a launch plan
description:
  - Reads C(test_cases/<test_case>/testcase.yml), checks the preset, parameters and node count
    against the manifest and the inventory, and returns the plan every launcher step uses.
  - Changes nothing. Bad input fails with a one-line message naming the problem.
  - An action plugin, run in the controller's own process.
options:
  test_case: {description: Test case name (a directory under I(test_cases_dir))., type: str, required: true}
  test_cases_dir: {description: Directory holding the test cases., type: path, required: true}
  preset: {description: Preset name from the manifest., type: str}
  params: {description: Parameter overrides., type: raw}
  nodes: {description: Number of nodes (default from the preset)., type: raw}
  procs_per_node: {description: Processes per node (default from the preset)., type: raw}
  hosts: {description: "Hosts of the target inventory group, in order.", type: list, elements: str, required: true}
  target: {description: Name of the target inventory group (for messages)., type: str, required: true}
  run_id: {description: Fixed run id (default generated)., type: str}
  timeout_s: {description: Seconds before the run is stopped (default from the manifest)., type: raw}
  launch_mode:
    description: How ranks start, C(torchrun) or C(command) (default from the manifest's C(launch.mode)).
    type: str
  container_image:
    description:
      - Empty to let the manifest decide, C(default) for the manifest's image, C(none) for a bare
        launch, or an image (podman reference, or a squashfs path for Enroot/Pyxis).
    type: str
  render_only:
    description:
      - The run only writes every node's launch (the launcher's C(render_only)). A case whose manifest
        is marked C(render_only) is refused without it, in one line saying why.
    type: bool
    default: false
author: awsome.distributed_training developers (@awsome)
"""

EXAMPLES = r"""
- name: Plan an fsdp run on two nodes
  awsome.distributed_training.testcase_plan:
    test_case: fsdp
    test_cases_dir: "{{ playbook_dir }}/../test_cases"
    preset: cpu-tiny
    params: {steps: 20}
    hosts: "{{ groups['cluster'] }}"
    target: cluster
"""

RETURN = r"""
plan:
  description: Resolved run (run_id, nodes, head, world_size, args, env, checks, metrics, ...).
  returned: success
  type: dict
"""
