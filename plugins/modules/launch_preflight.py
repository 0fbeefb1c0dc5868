#!/usr/bin/python
"""Check, in one call per node, that the node can start its part of a run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: launch_preflight
short_description: Check that a node can run a test case, in one call
description:
  - Finds the case's framework with the case's interpreter (or inside its container image) and reads
    its installed version, without importing it (seconds per node for torch); checks
    the container runtime, the image and the mount sources, counts GPUs and EFA devices, and reads
    the image's stack record.
  - Changes nothing. Problems come back as one line each in C(problems); the launcher refuses the
    run before anything starts when any node has one.
options:
  python: {description: The case's interpreter on the node (bare launches)., type: str, required: true}
  framework_module: {description: "Module that must be installed for the framework (found, not imported).", type: str, required: true}
  accelerator: {description: "cpu, cuda or neuron.", type: str, default: cpu}
  procs_per_node: {description: Processes this node runs (CUDA needs as many GPUs)., type: int, default: 1}
  container: {description: "The plan's container (image, mounts) or null for a bare launch.", type: dict}
  runtime: {description: podman or enroot (ssh mode) or pyxis (slurm mode)., type: str, default: podman, choices: [podman, enroot, pyxis]}
  container_python: {description: The interpreter inside the image., type: str, default: python3}
  env_hint: {description: How to build the case's environment (quoted when the import fails)., type: str, default: ""}
  shared_marker:
    description: A file the head node just wrote in the shared directory; every node must see it.
    type: str
    default: ""
  resume_dir:
    description: Checkpoint directory a resumed run reads; it must hold a complete checkpoint (step-*/COMPLETE).
    type: str
    default: ""
  health_checks:
    description:
      - The quick health checks of the healthcheck role (C(awsome_healthcheck.py --quick)) on this node.
        C(refuse) makes a failed check a problem; C(skip) returns it in C(health_skip) instead, for the
        launcher to leave the node out; C(off) runs nothing.
      - A node without the check program is reported as C(unchecked), not refused.
    type: str
    default: "off"
    choices: ["off", refuse, skip]
  health_program:
    description: The check program the healthcheck role installs.
    type: str
    default: /opt/awsome/bin/awsome_healthcheck.py
  health_config:
    description: The node's expectations and thresholds the healthcheck role writes.
    type: str
    default: /etc/awsome/healthcheck.json
  profiler:
    description: C(nsys) needs Nsight Systems on the node (or in the podman image) to wrap the ranks.
    type: str
    default: none
    choices: [none, nsys]
  nsys:
    description: The Nsight Systems command (a name on PATH or a path).
    type: str
    default: nsys
  directories:
    description:
      - Run and cache directories of this node (work root, environments root); each one, and every
        directory above it, must belong to the connecting user or root and be writable by no one else,
        or the node is refused (a missing one is judged by the directories above it).
      - The shared root, a resumed run's checkpoint directory and the directory of a bare launch's
        interpreter (C(python), e.g. the case's virtualenv) are checked whether listed or not.
    type: list
    elements: str
    default: []
author: awsome.distributed_training developers (@awsome)
"""

EXAMPLES = r"""
- name: Check the node
  awsome.distributed_training.launch_preflight:
    python: /usr/bin/python3
    framework_module: torch
    container: {image: localhost/awsome-training:cpu, mounts: []}
"""

RETURN = r"""
problems: {description: One line per problem (empty when the node can run)., returned: always, type: list, elements: str}
framework_version: {description: Installed version of the framework (its package metadata) for the case's interpreter or image., returned: always, type: str}
gpus: {description: GPUs the node shows., returned: always, type: int}
efa_devices: {description: EFA devices in /sys/class/infiniband., returned: always, type: int}
image: {description: The image's id and the stack record it holds (/opt/awsome/stack.json)., returned: with a container, type: dict}
health:
  description: "The quick health checks: status (pass, warn, fail or unchecked), reason, failed checks."
  returned: unless health_checks is off
  type: dict
health_skip:
  description: "health_checks=skip: why the launcher should leave this node out (empty when it passed)."
  returned: always
  type: str
profiler:
  description: The profiler found (tool, path, version), for the report.
  returned: when profiler is not none
  type: dict
"""

import glob
import json
import os
import shutil
import subprocess
import sys

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.awsome.distributed_training.plugins.module_utils.trusted_dirs import (
    directory_problems,
)

# Runs with the case's python (or inside the image): the framework's installed version and the image's
# record. The framework is found and its version read from its package metadata, not imported:
# importing torch costs seconds on every node of every launch, and a package that is installed but
# broken fails the run's first line anyway (the report names the node and the error).
PROBE = r"""
import importlib.metadata as md, importlib.util, json, shutil, sys
def version(dist):
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return ""
name = sys.argv[1]
out = {"tools": {tool: shutil.which(tool) or "" for tool in sys.argv[2:]}}
try:
    if importlib.util.find_spec(name) is None:
        raise ModuleNotFoundError(f"No module named {name!r}")
    # The distribution is usually named like the module (torch, jax); else ask the metadata which one.
    out["version"] = version(name) or next(
        (v for v in map(version, md.packages_distributions().get(name, [])) if v), "present")
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
try:
    with open("/opt/awsome/stack.json") as fh:
        out["stack"] = json.load(fh)
except (OSError, ValueError):
    pass
print(json.dumps(out))
"""


def _run(argv: list[str], timeout: int = 120) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                              check=False)
    except FileNotFoundError:
        return 127, f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, f"{' '.join(argv[:3])}: no answer in {timeout} s"
    return proc.returncode, proc.stdout


def _probe_result(rc: int, out: str) -> dict:
    last = out.strip().splitlines()[-1] if out.strip() else ""
    try:
        return json.loads(last) if rc == 0 else {"error": last or f"exit {rc}"}
    except ValueError:
        return {"error": last[:200]}


def efa_devices() -> int:
    """EFA devices: RDMA devices whose kernel driver is efa."""
    count = 0
    for dev in glob.glob("/sys/class/infiniband/*"):
        driver = os.path.realpath(os.path.join(dev, "device", "driver"))
        count += os.path.basename(driver) == "efa"
    return count


def gpus() -> int:
    return len(glob.glob("/dev/nvidia[0-9]*"))


def check_container(p: dict, problems: list[str], result: dict) -> None:
    container, runtime = p["container"], p["runtime"]
    image, module = container["image"], p["framework_module"]
    for mount in container.get("mounts") or []:
        if not os.path.exists(mount["src"]):
            problems.append(f"container mount source {mount['src']} does not exist")
    if runtime == "podman":
        if not shutil.which("podman"):
            problems.append("podman is not installed (the container_runtime role installs it; "
                            "or set launcher_container_runtime=enroot)")
            return
        rc, out = _run(["podman", "image", "inspect", "--format", "{{.Id}}", image])
        if rc != 0:
            problems.append(f"container image {image} not found (build it: make image PROFILE=training-cpu, "
                            f"or podman load / podman pull it on every node)")
            return
        probe = _probe_result(*_run(["podman", "run", "--rm", "--pull", "never", "--network", "none",
                                     image, p["container_python"], "-c", PROBE, module, *_tools(p)]))
        result["image"] = {"ref": image, "id": out.strip()[:12], "runtime": "podman", "stack": probe.get("stack"),
                           "tools": probe.get("tools") or {}}
    else:  # enroot (ssh) and pyxis (slurm) take a squashfs file or a registry reference
        tool = "enroot" if runtime == "enroot" else "srun"
        if not shutil.which(tool):
            problems.append(f"{tool} is not installed (the {'enroot' if tool == 'enroot' else 'slurm'} role installs it)")
            return
        if runtime == "pyxis":
            rc, out = _run(["srun", "--help"])
            if "--container-image" not in out:
                problems.append("srun has no --container-image: the Pyxis plugin is not loaded "
                                "(plugstack.conf; the pyxis role installs it)")
        if image.startswith("/") and not os.path.isfile(image):
            problems.append(f"container image {image} not found (export it: make image PROFILE=training-cpu "
                            f"writes build/images/*.sqsh; copy it to the shared file system)")
        # The framework inside a squashfs is only seen once enroot creates the container: the run says.
        result["image"] = {"ref": image, "runtime": runtime}
        return
    if "error" in probe:
        problems.append(f"image {image} cannot import {module}: {probe['error']}")
    result["framework_version"] = probe.get("version", "")


def complete_checkpoints(directory: str) -> list[str]:
    """Checkpoints a run may resume from: step-* directories with dtcase's COMPLETE marker."""
    return sorted(os.path.basename(os.path.dirname(p))
                  for p in glob.glob(os.path.join(directory, "step-*", "COMPLETE")))


def check_resume(resume_dir: str, problems: list[str]) -> None:
    if complete_checkpoints(resume_dir):
        return
    # <shared_root>/<run-id>/checkpoints: name the runs that do have one.
    shared_root = os.path.dirname(os.path.dirname(resume_dir.rstrip("/")))
    runs = sorted(os.path.basename(os.path.dirname(os.path.dirname(p)))
                  for p in glob.glob(os.path.join(shared_root, "*", "checkpoints", "step-*", "COMPLETE")))
    known = ", ".join(dict.fromkeys(runs)) or "none"
    problems.append(f"resume_from: no complete checkpoint in {resume_dir} (runs with one: {known})")


def _tools(p: dict) -> list[str]:
    """Commands the launch runs inside the image besides the case's python (the profiler)."""
    return [p["nsys"]] if p["profiler"] == "nsys" else []


def check_health(p: dict, problems: list[str], result: dict) -> None:
    """The healthcheck role's quick checks on this node: a failed one refuses the node (refuse) or asks
    the launcher to leave it out (skip). One line names every failed check and its reason."""
    result["health_skip"] = ""
    if p["health_checks"] == "off":
        return
    program = p["health_program"]
    if not os.path.isfile(program):
        result["health"] = {"status": "unchecked", "reason": f"{program} is not installed (the healthcheck "
                                                             f"role installs it: playbooks/validate.yml)"}
        return
    # The program needs the standard library only: the module's own interpreter runs it.
    rc, out = _run([sys.executable, program, "--quick", "--config", p["health_config"]], timeout=180)
    try:
        report = json.loads(out[out.index("{"):out.rindex("}") + 1])
        status, reason = report["status"], report["reason"]
    except (ValueError, KeyError):
        lines = out.strip().splitlines()
        status, reason, report = "fail", f"the check program failed (exit {rc}): {lines[-1] if lines else ''}", {}
    failed = [c["name"] for c in report.get("checks", []) if c.get("status") == "fail"]
    warned = [c["name"] for c in report.get("checks", []) if c.get("status") == "warn"]
    result["health"] = {"status": status, "reason": reason, "failed": failed, "warned": warned}
    if status != "fail":
        return
    line = f"health check failed: {reason}"
    if p["health_checks"] == "refuse":
        problems.append(line + " (-e health_checks=skip runs without this node, =off without the checks)")
    else:
        result["health_skip"] = line


def check_profiler(p: dict, problems: list[str], result: dict) -> None:
    """A profiled run needs the profiler where the ranks run: on the node, or inside the podman image."""
    if p["profiler"] == "none":
        return
    nsys = p["nsys"]
    image = result.get("image") or {}
    if image.get("runtime") == "podman":
        where, path = f"image {image['ref']}", (image.get("tools") or {}).get(nsys, "")
        if not image.get("id"):
            return  # the image itself is missing: that problem is already named
    elif image:
        result["profiler"] = {"tool": "nsys", "path": "", "note": f"not checked inside {image['ref']}"}
        return  # an enroot/Pyxis squashfs is only opened by the run itself
    else:
        where, path = "this node", shutil.which(nsys) or ""
    if not path:
        problems.append(f"profiler=nsys: {nsys} not found on {where} (install Nsight Systems there, "
                        f"or set launcher_nsys to its path; leave out -e profiler=nsys to run unprofiled)")
        return
    version = ""
    if not image:
        rc, out = _run([path, "--version"], timeout=60)
        version = out.strip().splitlines()[-1] if rc == 0 and out.strip() else ""
    result["profiler"] = {"tool": "nsys", "path": path, "version": version}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "python": {"type": "str", "required": True},
            "framework_module": {"type": "str", "required": True},
            "accelerator": {"type": "str", "default": "cpu"},
            "procs_per_node": {"type": "int", "default": 1},
            "container": {"type": "dict"},
            "runtime": {"type": "str", "default": "podman", "choices": ["podman", "enroot", "pyxis"]},
            "container_python": {"type": "str", "default": "python3"},
            "env_hint": {"type": "str", "default": ""},
            "shared_marker": {"type": "str", "default": ""},
            "resume_dir": {"type": "str", "default": ""},
            "health_checks": {"type": "str", "default": "off", "choices": ["off", "refuse", "skip"]},
            "health_program": {"type": "str", "default": "/opt/awsome/bin/awsome_healthcheck.py"},
            "health_config": {"type": "str", "default": "/etc/awsome/healthcheck.json"},
            "profiler": {"type": "str", "default": "none", "choices": ["none", "nsys"]},
            "nsys": {"type": "str", "default": "nsys"},
            "directories": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    problems: list[str] = []
    result = {"framework_version": "", "gpus": gpus(), "efa_devices": efa_devices()}
    # Run and cache directories another user could have planted or can write to (module_utils/trusted_dirs).
    shared_root = os.path.dirname(p["shared_marker"]) if p["shared_marker"] else ""
    interpreter = os.path.dirname(p["python"]) if os.path.isabs(p["python"]) and not p["container"] else ""
    problems += directory_problems([*p["directories"], shared_root, p["resume_dir"], interpreter])
    if p["container"]:
        check_container(p, problems, result)
    else:
        probe = _probe_result(*_run([p["python"], "-c", PROBE, p["framework_module"]]))
        if "error" in probe:
            hint = f" ({p['env_hint']})" if p["env_hint"] else ""
            problems.append(f"{p['python']} cannot import {p['framework_module']}: {probe['error']}{hint}")
        result["framework_version"] = probe.get("version", "")
    if p["shared_marker"] and not os.path.exists(p["shared_marker"]):
        problems.append(f"{os.path.dirname(p['shared_marker'])} is not shared with the head node (its marker "
                        f"is not there): checkpoints of a multi-node run need launcher_shared_root on a "
                        f"shared file system")
    if p["resume_dir"]:
        check_resume(p["resume_dir"], problems)
    if p["accelerator"] == "cuda" and result["gpus"] < p["procs_per_node"]:
        problems.append(f"{result['gpus']} GPU(s) for {p['procs_per_node']} processes")
    check_profiler(p, problems, result)
    check_health(p, problems, result)
    module.exit_json(changed=False, problems=problems, **result)


if __name__ == "__main__":
    main()
