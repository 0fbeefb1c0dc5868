"""Render every role's README.md and docs/roles/<role>.md from its meta/argument_specs.yml.

The argument spec is the one place a role's interface is written down (ansible-core checks it on
every run); these pages are its readable form, so they are generated, never edited by hand.
Each entry point's `short_description` becomes the page's summary, its `description` the intro
paragraphs, its `options` a table (sub-options as `parent.child`).

    python3 scripts/gen_role_docs.py           write the pages (`make role-docs`)
    python3 scripts/gen_role_docs.py --check   list stale or missing pages, exit 1 if any
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
COLLECTION = "awsome.distributed_training"
HEADER = ("<!-- Generated from meta/argument_specs.yml by scripts/gen_role_docs.py "
          "(`make role-docs`): edit the spec, not this file. -->")
# Ansible doc markup -> Markdown: I(option), C(code), B(bold), U(url), L(text,url), O/V/E/M(code).
MARKUP = [
    (re.compile(r"L\(([^)]*?),\s*([^)]*)\)"), r"[\1](\2)"),
    (re.compile(r"U\(([^)]*)\)"), r"<\1>"),
    (re.compile(r"I\(([^)]*)\)"), r"*\1*"),
    (re.compile(r"B\(([^)]*)\)"), r"**\1**"),
    (re.compile(r"[COVEM]\(([^)]*)\)"), r"`\1`"),
]


def markdown(text) -> str:
    """One line of Markdown from a description (a string or a list of paragraphs)."""
    if isinstance(text, list):
        text = " ".join(str(t) for t in text)
    text = " ".join(str(text or "").split())
    for pattern, repl in MARKUP:
        text = pattern.sub(repl, text)
    return text


def paragraphs(text) -> list[str]:
    if not text:
        return []
    return [markdown(t) for t in (text if isinstance(text, list) else [text])]


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def show(value) -> str:
    """A default or choice as it would be written in YAML."""
    if value is None:
        return ""
    dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    dumped = dumped.removesuffix("\n...").removesuffix("...").strip()
    return f"`{dumped}`"


def option_rows(options: dict, prefix: str = "") -> list[str]:
    rows = []
    for name in sorted(options or {}):
        spec = options[name] or {}
        kind = spec.get("type", "str")
        if kind == "list" and spec.get("elements"):
            kind = f"list of {spec['elements']}"
        notes = []
        if spec.get("required"):
            notes.append("**Required.**")
        if "choices" in spec:
            notes.append("Choices: " + ", ".join(show(c) for c in spec["choices"]) + ".")
        desc = " ".join(filter(None, [markdown(spec.get("description")), *notes]))
        rows.append(f"| `{prefix}{name}` | {kind} | {cell(show(spec.get('default')))} | {cell(desc)} |")
        rows += option_rows(spec.get("options"), f"{prefix}{name}.")
    return rows


def render(role: str, specs: dict) -> str:
    main = specs.get("main") or next(iter(specs.values()))
    fqcn = f"{COLLECTION}.{role}"
    lines = [HEADER, "", f"# {fqcn}", "", markdown(main.get("short_description")), ""]
    for para in paragraphs(main.get("description")):
        lines += [para, ""]
    required = {k: v for k, v in (main.get("options") or {}).items() if (v or {}).get("required")}
    lines += ["## Example", "", "```yaml", f"- name: Apply {role}", "  hosts: all", "  become: true",
              "  roles:", f"    - role: {fqcn}"]
    if required:
        lines.append("      vars:")
        lines += [f"        {name}: {show(spec.get('default')).strip('`') or '...'}  # required"
                  for name, spec in sorted(required.items())]
    lines += ["```", ""]
    for entry, spec in specs.items():
        spec = spec or {}
        title = "Options" if entry == "main" else f"Entry point `{entry}`"
        lines += [f"## {title}", ""]
        if entry != "main":
            lines += [f"`tasks_from: {entry}`: {markdown(spec.get('short_description'))}", ""]
            lines += [p + "\n" for p in paragraphs(spec.get("description"))]
            if spec.get("options") == main.get("options") and entry != "main":
                lines += ["Same options as `main`.", ""]
                continue
        rows = option_rows(spec.get("options"))
        if rows:
            lines += ["| option | type | default | description |", "| --- | --- | --- | --- |", *rows, ""]
        else:
            lines += ["No options.", ""]
    return "\n".join(lines).rstrip() + "\n"


def index(roles: dict[str, dict]) -> str:
    lines = [HEADER, "", "# Roles", "",
             "One page per role, generated from its argument spec. Roles whose name starts with an",
             "underscore, or that say so in their summary, are internal: other roles call them.", "",
             "| role | what it does |", "| --- | --- |"]
    for role, specs in sorted(roles.items()):
        main = specs.get("main") or next(iter(specs.values()))
        lines.append(f"| [{role}]({role}.md) | {cell(markdown(main.get('short_description')))} |")
    return "\n".join(lines) + "\n"


def pages(repo: Path = REPO) -> dict[Path, str]:
    """{path: content} of every generated page."""
    roles = {}
    for spec_file in sorted((repo / "roles").glob("*/meta/argument_specs.yml")):
        role = spec_file.parent.parent.name
        roles[role] = (yaml.safe_load(spec_file.read_text()) or {}).get("argument_specs") or {}
    out = {}
    for role, specs in roles.items():
        text = render(role, specs)
        out[repo / "roles" / role / "README.md"] = text
        out[repo / "docs" / "roles" / f"{role}.md"] = text
    out[repo / "docs" / "roles" / "README.md"] = index(roles)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale pages, write nothing")
    args = parser.parse_args(argv)
    wanted = pages()
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text() != text]
    # A page of a role that is gone (generated pages carry the header).
    gone = [p for p in (REPO / "docs" / "roles").glob("*.md")
            if p not in wanted and p.read_text().startswith(HEADER)]
    if args.check:
        for path in stale + gone:
            print(f"stale: {path.relative_to(REPO)}")
        if stale or gone:
            print("regenerate with `make role-docs`")
        return 1 if stale or gone else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[path])
    for path in gone:
        path.unlink()
    print(f"{len(stale)} written, {len(gone)} removed, {len(wanted) - len(stale)} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
