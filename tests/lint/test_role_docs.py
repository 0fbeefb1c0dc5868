"""Every role's README.md and docs/roles/<role>.md are what scripts/gen_role_docs.py renders from
its meta/argument_specs.yml (regenerate with `make role-docs`)."""

from __future__ import annotations

import subprocess

import yaml

from helpers import REPO, VENV_BIN, load_module

gen_role_docs = load_module(REPO / "scripts" / "gen_role_docs.py")


def test_role_docs_are_current():
    proc = subprocess.run([str(VENV_BIN / "python"), "scripts/gen_role_docs.py", "--check"], cwd=REPO,
                          text=True, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_role_gets_a_readme_and_a_page():
    roles = {p.parent.parent.name for p in REPO.glob("roles/*/meta/argument_specs.yml")}
    pages = {p.relative_to(REPO).as_posix() for p in gen_role_docs.pages()}
    assert {f"roles/{r}/README.md" for r in roles} | {f"docs/roles/{r}.md" for r in roles} <= pages
    assert roles >= {p.parent.name for p in REPO.glob("roles/*/tasks")}, "a role without argument_specs"


def test_page_carries_the_spec(tmp_path):
    """Rendering: summary, intro, an options row with type, default, choices and markup, sub-options,
    and a second entry point."""
    role = tmp_path / "roles" / "demo" / "meta"
    role.mkdir(parents=True)
    (role / "argument_specs.yml").write_text(yaml.safe_dump({"argument_specs": {
        "main": {"short_description": "Demo role", "description": ["Does I(one) thing with C(x|y)."],
                 "options": {"demo_mode": {"type": "str", "default": "fast", "choices": ["fast", "slow"],
                                           "description": "How."},
                             "demo_name": {"type": "str", "required": True, "description": "Name."},
                             "demo_map": {"type": "dict", "description": "Map.",
                                          "options": {"key": {"type": "int", "default": 3,
                                                              "description": "Key."}}}}},
        "extra": {"short_description": "Another door", "options": {}}}}))
    page = gen_role_docs.pages(tmp_path)[tmp_path / "roles" / "demo" / "README.md"]
    assert "# awsome.distributed_training.demo\n\nDemo role\n\nDoes *one* thing with `x|y`." in page
    assert "| `demo_mode` | str | `fast` | How. Choices: `fast`, `slow`. |" in page
    assert "| `demo_name` | str |  | Name. **Required.** |" in page
    assert "| `demo_map.key` | int | `3` | Key. |" in page
    assert "demo_name: ...  # required" in page
    assert "## Entry point `extra`\n\n`tasks_from: extra`: Another door" in page
