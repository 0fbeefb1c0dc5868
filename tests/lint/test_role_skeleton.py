"""Every role in roles/ has the one skeleton (docs/development.md, "Adding a role").

- meta/main.yml and meta/argument_specs.yml; the `main` entry point's options are the keys of
  defaults/main.yml (no undocumented default, no option without a default unless required) and a
  default the spec states equals the one in defaults/main.yml;
- tasks/main.yml is a table of contents: it only includes or imports;
- OS data comes through the one chain (_stack's tasks/os_vars.yml, reached through the
  role's meta dependency): no other first_found loader, no two identical OS data files in a role,
  and a role with OS data files depends on the shared preflight with stack_role = its name;
- node-stack roles (all but the controller-side ones below) run the shared preflight;
- packages are installed only through _stack's packages.yml (and the internal _vendor_repo
  role, which pins and holds vendor packages);
- internal roles (a leading underscore, or "Internal" in meta/main.yml) say so in every entry point
  and refuse a play's direct call.
Static checks on the files: the Molecule scenarios test what the roles do.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from helpers import REPO

ROLES = REPO / "roles"
COLLECTION = "awsome.distributed_training"
# The shared preflight, the one package install and the one OS-vars loader live in this role.
PREFLIGHT_ROLE = "_stack"
PACKAGES_ENTRY = f"{PREFLIGHT_ROLE}/tasks/packages.yml"
OS_VARS_LOADER = f"{PREFLIGHT_ROLE}/tasks/os_vars.yml"
# Roles that run on the Ansible controller or stage data, not the node stack: no OS data, no preflight.
CONTROLLER_ROLES = {"launcher", "local_cluster", "stage_data"}
# Files other than the packages entry point allowed to call a package module: the internal role
# that adds a signed vendor repository, then installs pinned versions and holds them.
PACKAGE_MODULE_ALLOWED = {PACKAGES_ENTRY, "_vendor_repo/tasks/apt_packages.yml",
                          "_vendor_repo/tasks/dnf_packages.yml"}
PACKAGE_MODULES = {p + m for m in ("package", "apt", "dnf", "yum") for p in ("", "ansible.builtin.")}
INCLUDES = {f"ansible.builtin.{m}" for m in ("include_tasks", "import_tasks", "include_role", "import_role")}
# An OS data file: <distribution>-<version>.yml or <os_family>.yml (what os_vars.yml looks for).
OS_FILE = re.compile(r"^[A-Z][A-Za-z]+(-[0-9][0-9.]*)?\.yml$")


def _roles() -> list[str]:
    return sorted(p.name for p in ROLES.iterdir() if p.is_dir() and (p / "tasks").is_dir())


def _load(path: Path):
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _internal(role: str) -> bool:
    try:
        meta = _load(ROLES / role / "meta" / "main.yml") or {}
    except yaml.YAMLError:  # test_meta_and_argument_specs_match_defaults reports it
        meta = {}
    description = str(meta.get("galaxy_info", {}).get("description", ""))
    return role.startswith("_") or description.startswith("Internal")


def _tasks(node):
    """Every task of a task list, blocks unrolled."""
    for task in node or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _dependencies(role: str) -> list[dict]:
    meta = _load(ROLES / role / "meta" / "main.yml") or {}
    return [d if isinstance(d, dict) else {"role": d} for d in meta.get("dependencies") or []]


def _runs_preflight(role: str) -> bool:
    return _preflight_dependency(role) is not None


def _preflight_dependency(role: str) -> dict | None:
    """The meta dependency on the shared preflight for this role (stack_role as a role param or in vars)."""
    names = (PREFLIGHT_ROLE, f"{COLLECTION}.{PREFLIGHT_ROLE}")
    return next((d for d in _dependencies(role) if d.get("role") in names
                 and (d.get("stack_role") or (d.get("vars") or {}).get("stack_role")) == role), None)


@pytest.mark.parametrize("role", _roles())
def test_meta_and_argument_specs_match_defaults(role):
    base = ROLES / role
    assert (base / "meta" / "main.yml").is_file(), f"{role}: no meta/main.yml"
    meta = _load(base / "meta" / "main.yml")
    assert meta.get("galaxy_info", {}).get("description"), f"{role}: meta/main.yml lacks a description"
    specs = (_load(base / "meta" / "argument_specs.yml") or {}).get("argument_specs")
    assert specs and "main" in specs, f"{role}: meta/argument_specs.yml has no main entry point"
    options = specs["main"].get("options") or {}
    defaults = _load(base / "defaults" / "main.yml") or {}
    undocumented = sorted(set(defaults) - set(options))
    assert not undocumented, f"{role}: defaults without an argument_specs option: {undocumented}"
    no_default = sorted(k for k, o in options.items() if k not in defaults and not o.get("required"))
    assert not no_default, f"{role}: options neither required nor in defaults/main.yml: {no_default}"
    differ = {k: (o["default"], defaults[k]) for k, o in options.items()
              if "default" in o and k in defaults and o["default"] != defaults[k]}
    assert not differ, f"{role}: argument_specs default != defaults/main.yml (spec, defaults): {differ}"
    for name, entry in specs.items():
        assert entry.get("short_description"), f"{role}: entry point {name} has no short_description"


@pytest.mark.parametrize("role", _roles())
def test_tasks_main_is_a_table_of_contents(role):
    main = ROLES / role / "tasks" / "main.yml"
    assert main.is_file(), f"{role}: no tasks/main.yml"
    for task in _load(main) or []:
        kind = [k for k in task if k in INCLUDES or k == "block"]
        assert kind, f"{role}: tasks/main.yml task {task.get('name')!r} is not an include/import"
        if "block" in task:
            for inner in _tasks(task["block"]):
                assert set(inner) & INCLUDES, f"{role}: main.yml task {inner.get('name')!r} is not an include"


@pytest.mark.parametrize("role", _roles())
def test_os_data_comes_through_the_one_chain(role):
    base = ROLES / role
    for path in sorted(base.rglob("*.yml")):
        rel = str(path.relative_to(ROLES))
        if rel != OS_VARS_LOADER and path.parent.name in ("tasks", "handlers"):
            assert "first_found" not in path.read_text(), f"{rel}: first_found loader (use the OS-vars chain)"
    os_files = sorted(p for p in base.glob("vars/*.yml") if OS_FILE.match(p.name))
    contents = [(p.name, _load(p)) for p in os_files + [base / "vars" / "main.yml"] if p.is_file()]
    for i, (name, data) in enumerate(contents):
        for other, other_data in contents[i + 1:]:
            assert data != other_data, f"{role}: vars/{name} and vars/{other} are identical (keep one)"
    if os_files:
        assert _runs_preflight(role), (
            f"{role}: has OS data files {[p.name for p in os_files]} but no meta dependency on "
            f"{PREFLIGHT_ROLE} with stack_role: {role} (the one loader of OS data)")


@pytest.mark.parametrize("role", [r for r in _roles() if r not in CONTROLLER_ROLES and not _internal(r)])
def test_node_stack_role_runs_the_shared_preflight(role):
    assert _runs_preflight(role), (
        f"{role}: meta/main.yml must depend on {COLLECTION}.{PREFLIGHT_ROLE} with stack_role: {role} "
        "and tags: [always] (docs/development.md, Adding a role)")
    tags = _preflight_dependency(role).get("tags") or []
    assert "always" in tags, f"{role}: the preflight dependency needs tags: [always] (so --tags runs it)"


@pytest.mark.parametrize("role", _roles())
def test_packages_only_through_the_entry_point(role):
    for path in sorted((ROLES / role).rglob("*.yml")):
        rel = str(path.relative_to(ROLES))
        if path.parent.name not in ("tasks", "handlers") or rel in PACKAGE_MODULE_ALLOWED:
            continue
        for task in _tasks(_load(path)):
            for module in set(task) & PACKAGE_MODULES:
                args = task[module] if isinstance(task[module], dict) else {}
                installs = ("name" in args or "deb" in args) and args.get("state", "present") != "absent"
                assert not installs, (
                    f"{rel}: task {task.get('name')!r} installs with {module}; use "
                    f"include_role {COLLECTION}.{PREFLIGHT_ROLE} tasks_from: packages.yml")


@pytest.mark.parametrize("role", [r for r in _roles() if _internal(r)])
def test_internal_role_says_so_and_refuses_a_direct_call(role):
    specs = _load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]
    for name, entry in specs.items():
        assert entry["short_description"].startswith("Internal only"), f"{role}: {name} not 'Internal only'"
    first = (_load(ROLES / role / "tasks" / "main.yml") or [{}])[0]
    target = first.get("ansible.builtin.import_tasks") or first.get("ansible.builtin.include_tasks") or {}
    target = target.get("file") if isinstance(target, dict) else target
    assert target == "refuse_direct.yml", f"{role}: tasks/main.yml must start with refuse_direct.yml"
    refusal = next(_tasks(_load(ROLES / role / "tasks" / "refuse_direct.yml")))
    message = refusal.get("ansible.builtin.assert", {}).get("fail_msg", "")
    assert "is internal" in message, f"{role}: refuse_direct.yml does not refuse"


def test_the_shared_pieces_exist():
    """The chain, the package entry point and the preflight the tests above point roles at."""
    for rel in (OS_VARS_LOADER, PACKAGES_ENTRY, f"{PREFLIGHT_ROLE}/tasks/main.yml"):
        assert (ROLES / rel).is_file(), rel
    assert "first_found" in (ROLES / OS_VARS_LOADER).read_text()
