"""Filter: turn {name, version} into the package manager's "pinned name" spelling."""

from __future__ import annotations

DOCUMENTATION = r"""
name: pkg_spec
short_description: "{name: n, version: v} -> 'n=v' (apt) or 'n-v' (dnf); just 'n' without a version"
positional: separator
options:
  _input: {description: a dict with name and optional version, type: dict, required: true}
  separator: {description: "'=' for apt, '-' for dnf", type: str, required: true}
"""


def pkg_spec(pkg: dict, separator: str) -> str:
    version = str(pkg.get("version") or "")
    return f"{pkg['name']}{separator}{version}" if version else str(pkg["name"])


class FilterModule:
    def filters(self):
        return {"pkg_spec": pkg_spec}
