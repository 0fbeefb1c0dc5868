"""Filter: pick the local NVMe (instance store) mount a role should put its data on.

container_runtime and enroot both ask "is there a local NVMe scratch mount?"; the answer lives
here once so both roles agree.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: local_nvme_mount
short_description: first candidate path that is a mount point backed by NVMe (or md RAID of NVMe)
description:
  - Given ansible_facts.mounts and a list of candidate mount points, return the first candidate
    mounted from /dev/nvme* or /dev/md*; an empty string when none is.
  - Only known candidates count: on Nitro instances EBS volumes are NVMe devices too, so "any
    NVMe mount" would pick the root volume.
positional: candidates
options:
  _input: {description: ansible_facts.mounts, type: list, required: true}
  candidates: {description: mount points to try, in order, type: list, required: true}
"""

_LOCAL_DEVICE_PREFIXES = ("/dev/nvme", "/dev/md")


def _is_local_nvme(mount: dict) -> bool:
    return str(mount.get("device", "")).startswith(_LOCAL_DEVICE_PREFIXES)


def local_nvme_mount(mounts: list[dict], candidates: list[str]) -> str:
    nvme = {m.get("mount") for m in mounts or [] if _is_local_nvme(m)}
    return next((c for c in candidates or [] if c in nvme), "")


class FilterModule:
    def filters(self):
        return {"local_nvme_mount": local_nvme_mount}
