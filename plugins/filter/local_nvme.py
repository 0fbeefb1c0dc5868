"""Filter: pick the local NVMe (instance store) mount a role should put its data on.

container_runtime and enroot both ask "is there a local NVMe scratch mount?"; the answer lives
here once so both roles agree.
"""

from __future__ import annotations

# Documentation: the adjacent <filter name>.yml (ansible-doc reads it).

_LOCAL_DEVICE_PREFIXES = ("/dev/nvme", "/dev/md")


def _is_local_nvme(mount: dict) -> bool:
    return str(mount.get("device", "")).startswith(_LOCAL_DEVICE_PREFIXES)


def local_nvme_mount(mounts: list[dict], candidates: list[str]) -> str:
    nvme = {m.get("mount") for m in mounts or [] if _is_local_nvme(m)}
    return next((c for c in candidates or [] if c in nvme), "")


class FilterModule:
    def filters(self):
        return {"local_nvme_mount": local_nvme_mount}
