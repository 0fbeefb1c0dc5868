"""Versions that installed shared libraries carry in their file names (libnccl.so.2.27.7): what the
stack record (filter nccl_installed) and the version report (module version_facts) both read."""

from __future__ import annotations

import os
import re


def libnccl_versions(names) -> list[str]:
    """Every X.Y.Z of a libnccl.so.X.Y.Z among file names or paths, oldest first (the soname links
    libnccl.so and libnccl.so.2 say less)."""
    found = {tuple(int(x) for x in m.groups()) for name in names or []
             if (m := re.fullmatch(r"libnccl\.so\.(\d+)\.(\d+)\.(\d+)", os.path.basename(str(name))))}
    return [".".join(map(str, v)) for v in sorted(found)]
