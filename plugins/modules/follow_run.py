"""Documentation of the follow_run action plugin (plugins/action/follow_run.py does the work)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: follow_run
short_description: Follow a test-case run on one node until it ends, fails elsewhere, or times out
description:
  - Polls the node's run directory (the C(pid) and C(rc) files written by launch.sh), prints
    progress lines while the job runs, and sees failures of the other nodes through marker files in
    the controller's I(markers_dir), stopping its own node's job at once instead of waiting for a
    collective timeout.
  - An action plugin; the launcher role calls it for every node of a run.
options:
  dir: {description: The run directory on the node., type: str, required: true}
  timeout: {description: Seconds before the run is stopped., type: float, required: true}
  interval: {description: "Seconds between polls (in between, the node looks for the job's end every 0.2 s).", type: float, default: 3}
  markers_dir: {description: Directory on the controller where nodes mark their failures., type: path, required: true}
  progress_file: {description: Metrics file (relative to I(dir)) whose last line gives progress., type: str}
  total_steps: {description: "Steps of the run, for the progress line.", type: int}
  show_progress: {description: Print progress lines (one node of a run does)., type: bool, default: false}
  label: {description: Name of the run in progress lines., type: str, default: run}
author: awsome.distributed_training developers (@awsome)
"""

EXAMPLES = r"""
- name: Wait for the run on every node
  awsome.distributed_training.follow_run:
    dir: "{{ launcher_run_dir }}"
    timeout: 600
    markers_dir: "{{ launcher_results_dir }}/.markers"
    show_progress: "{{ inventory_hostname == launcher_plan.head }}"
    progress_file: out/metrics-rank0.jsonl
"""

RETURN = r"""
rc: {description: Exit status of the job on this node., returned: when the job ended, type: int}
elapsed_s: {description: Seconds the run was followed., returned: when the job ended, type: float}
"""
