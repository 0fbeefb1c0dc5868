"""Filter: turn {name, version} into the package manager's "pinned name" spelling."""

from __future__ import annotations

# Documentation: the adjacent <filter name>.yml (ansible-doc reads it).


def pkg_spec(pkg: dict, separator: str) -> str:
    version = str(pkg.get("version") or "")
    return f"{pkg['name']}{separator}{version}" if version else str(pkg["name"])


class FilterModule:
    def filters(self):
        return {"pkg_spec": pkg_spec}
