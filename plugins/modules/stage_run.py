"""Documentation of the stage_run action plugin (plugins/action/stage_run.py does the work)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: stage_run
short_description: Stage a run's code and scripts on a node in one transfer
description:
  - Packs directories and files of the controller into one gzip'd tar and unpacks it on the node
    with C(tar) in a single command (no Python on the node, one round trip), creating I(dirs) first
    and removing I(remove) after.
  - Python bytecode (C(__pycache__), C(*.pyc)) is left out; symbolic links are followed. Files are
    owned by the connecting (or become) user.
  - An action plugin; the launcher role calls it once per node of a run.
options:
  dest: {description: Directory on the node the archive unpacks into (created)., type: str, required: true}
  dirs: {description: More directories to create on the node (absolute paths)., type: list, elements: str, default: []}
  trees:
    description: Directories of the controller to stage, as C(dest) (relative to I(dest)) to C(src) (a directory).
    type: dict
    default: {}
  files:
    description:
      - Files, each as C(dest) (relative to I(dest)), C(mode) (octal string, default C(0644)) and either
        C(content) or C(src) (a file of the role's C(files/) or a path on the controller).
    type: list
    elements: dict
    default: []
  remove: {description: Paths on the node to remove once the files are in place., type: list, elements: str, default: []}
author: awsome.distributed_training developers (@awsome)
"""

EXAMPLES = r"""
- name: Stage the run
  awsome.distributed_training.stage_run:
    dest: /var/tmp/awsome/runs/fsdp-1/node1
    dirs: [/var/tmp/awsome/runs/fsdp-1/node1/out]
    trees: {code/fsdp/src: "{{ playbook_dir }}/../test_cases/fsdp/src"}
    files:
      - {dest: launch.sh, content: "{{ lookup('ansible.builtin.template', 'launch.sh.j2') }}", mode: "0755"}
      - {dest: stop_job.sh, src: stop_job.sh, mode: "0755"}
"""

RETURN = r"""
dest: {description: The directory the files went to., returned: success, type: str}
bytes: {description: Size of the archive sent., returned: success, type: int}
"""
