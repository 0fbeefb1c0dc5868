"""Version specs and the stack compatibility rules (pure Python: used by the filter plugin and tests).

A rule is data (stack/compat.yml):
  {id, when: {component: spec}, require: {component: spec}}  or  {id, same: [a, b]}
and `check` returns one human-readable message per violated rule, naming both versions.
"""

from __future__ import annotations

import re

_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([0-9][0-9A-Za-z.\-]*)\s*$")
_OPS = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


class SpecError(ValueError):
    """A version or spec that cannot be parsed."""


def parse_version(version: object) -> tuple[int, ...]:
    """'2.26.5-1' -> (2, 26, 5, 1); '1.14.2-aws' -> (1, 14, 2). Trailing zeros are dropped."""
    text = str(version).strip()
    if not re.match(r"^[0-9]", text):
        raise SpecError(f"not a version: {version!r}")
    parts = [int(p) for p in re.findall(r"\d+", text.split("+", maxsplit=1)[0])]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def matches(version: object, spec: str) -> bool:
    """True when `version` satisfies every comma-separated clause of `spec` (e.g. '>=12.8,<12.9')."""
    have = parse_version(version)
    for clause in str(spec).split(","):
        m = _CLAUSE.match(clause)
        if not m:
            raise SpecError(f"bad version spec clause {clause!r} in {spec!r}")
        op, want = m.groups()
        if not _OPS[op](have, parse_version(want)):
            return False
    return True


def _applies(rule: dict, versions: dict, components: set | None) -> bool:
    named = set(rule.get("when", {})) | set(rule.get("require", {})) | set(rule.get("same", []))
    if components is not None and not named <= components:
        return False
    return all(versions.get(c) not in (None, "") for c in named)


def check(versions: dict, rules: list, components: list | None = None) -> list[str]:
    """Messages for every rule the versions break; [] when the stack is compatible."""
    active = set(components) if components is not None else None
    errors: list[str] = []
    for rule in rules:
        rid = rule.get("id", "?")
        if not ("same" in rule or "require" in rule):
            raise SpecError(f"rule {rid}: needs 'require' or 'same'")
        if not _applies(rule, versions, active):
            continue
        if "same" in rule:
            names = rule["same"]
            found = {parse_version(versions[c]) for c in names}
            if len(found) > 1:
                pairs = " vs ".join(f"{c} {versions[c]}" for c in names)
                errors.append(f"incompatible stack: {pairs} must be the same version (rule {rid})")
            continue
        if not all(matches(versions[c], s) for c, s in rule.get("when", {}).items()):
            continue
        for comp, spec in rule["require"].items():
            if not matches(versions[comp], spec):
                cause = ", ".join(f"{c} {versions[c]}" for c in rule.get("when", {}))
                errors.append(f"incompatible stack: {cause} needs {comp} {spec}, "
                              f"but {comp} is {versions[comp]} (rule {rid})")
    return errors


def manifest_errors(versions: dict, artifacts: dict) -> list[str]:
    """Artifacts whose `version` differs from stack_versions (the manifest must agree with itself)."""
    errors = []
    for name, spec in sorted(artifacts.items()):
        pinned = versions.get(name)
        have = (spec or {}).get("version")
        if pinned is not None and have is not None and str(pinned) != str(have):
            errors.append(f"stack_artifacts.{name}.version is {have} but stack_versions.{name} is {pinned}")
    return errors
