#!/usr/bin/python
"""Ansible module: facts about the NVIDIA GPUs of a node, read from nvidia-smi."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_facts
short_description: NVIDIA GPU facts from nvidia-smi
description:
  - Runs C(nvidia-smi --query-gpu) once and returns the GPUs it lists.
  - A node without nvidia-smi, or whose driver does not answer, gets an empty result
    (C(gpu_count=0)) rather than a failure; the reason is in C(gpu_error).
options:
  nvidia_smi:
    description: nvidia-smi to run (a name looked up on PATH, or a path).
    type: str
    default: nvidia-smi
author: awsome.distributed_training developers (@awsome)
"""

EXAMPLES = r"""
- name: Read the GPUs
  awsome.distributed_training.gpu_facts:
- name: Show them
  ansible.builtin.debug:
    msg: "{{ gpu_count }} x {{ gpu_type }}"
"""

RETURN = r"""
ansible_facts:
  description: gpu_count, gpu_type (short lower-case model such as h100, empty without GPUs),
    gpu_driver_version, gpus (index, name, uuid, memory_mib, pci_bus_id), gpu_error.
  returned: always
  type: dict
"""

import re

from ansible.module_utils.basic import AnsibleModule

QUERY = "index,name,uuid,memory.total,pci.bus_id,driver_version"
# Models Slurm's gres Type is named after; the first match in the marketing name wins.
MODELS = ("gb200", "gh200", "h200", "h100", "h800", "a100", "a10g", "a10", "l40s", "l40", "l4",
          "v100", "t4", "b200", "b100")


def gpu_type(name: str) -> str:
    """Short model of a GPU name: 'NVIDIA H100 80GB HBM3' -> 'h100'."""
    words = re.findall(r"[a-z0-9]+", name.lower())
    for model in MODELS:
        if model in words:
            return model
    return words[-1] if words else ""


def parse(output: str) -> list[dict]:
    """Rows of `nvidia-smi --query-gpu=<QUERY> --format=csv,noheader,nounits`."""
    gpus = []
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 6:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        index, name, uuid, memory, bus_id, driver = fields
        gpus.append({"index": int(index), "name": name, "uuid": uuid, "memory_mib": int(float(memory)),
                     "pci_bus_id": bus_id, "driver_version": driver})
    return sorted(gpus, key=lambda g: g["index"])


def facts(gpus: list[dict], error: str = "") -> dict:
    return {
        "gpu_count": len(gpus),
        "gpu_type": gpu_type(gpus[0]["name"]) if gpus else "",
        "gpu_driver_version": gpus[0]["driver_version"] if gpus else "",
        "gpus": gpus,
        "gpu_error": error,
    }


def main() -> None:
    module = AnsibleModule(argument_spec={"nvidia_smi": {"type": "str", "default": "nvidia-smi"}},
                           supports_check_mode=True)
    smi = module.params["nvidia_smi"]
    path = smi if "/" in smi else module.get_bin_path(smi)
    if not path:
        module.exit_json(changed=False, ansible_facts=facts([], "nvidia-smi not found"))
    rc, out, err = module.run_command([path, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"])
    if rc != 0:
        # No driver loaded (e.g. a CPU instance built from a GPU image): no GPUs, not an error.
        reason = (err or out).strip().splitlines()
        module.exit_json(changed=False, ansible_facts=facts([], reason[0] if reason else f"rc={rc}"))
    try:
        gpus = parse(out)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, ansible_facts=facts(gpus))


if __name__ == "__main__":
    main()
