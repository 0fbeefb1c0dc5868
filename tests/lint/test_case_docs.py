"""Every test case's page documents every parameter of its manifest: docs/test_cases/<name>.md has a
`## Parameters` table with one row per parameter of test_cases/<case>/testcase.yml (name in
backticks in the first cell, several names to a row allowed: `` `steps`, `warmup_steps` ``) whose
default cell shows the manifest's default. Reads YAML and Markdown only (well under a second)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from helpers import REPO

NAMES_CELL = re.compile(r"`[^`]+`(?:,\s*`[^`]+`)*")


def cells(row: str) -> list[str]:
    """The cells of a Markdown table row; a `|` inside backticks belongs to its cell."""
    out, cell, in_code = [], "", False
    for char in row.strip().strip("|"):
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            out.append(cell.strip())
            cell = ""
        else:
            cell += char
    return [*out, cell.strip()]


def parameters_section(page: str) -> list[str] | None:
    """The lines of the page's `## Parameters` section (code fences left out), None if it has none."""
    lines, inside, fenced = [], False, False
    for line in page.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.startswith("## "):
            if inside:
                break
            inside = line.strip() == "## Parameters"
        elif inside:
            lines.append(line)
    return lines if inside else None


def documented_defaults(section: list[str]) -> tuple[dict[str, str], list[str]]:
    """{parameter: the default cell's text for it} from the section's table rows, and the rows whose
    defaults cannot be paired with their names."""
    found, unpaired = {}, []
    for line in section:
        if not line.startswith("|"):
            continue
        row = cells(line)
        if len(row) < 2 or not NAMES_CELL.fullmatch(row[0]):
            continue                    # the header, the separator, or a row that names no parameter
        names = re.findall(r"`([^`]+)`", row[0])
        defaults = [row[1]] if len(names) == 1 else [d.strip() for d in row[1].split(", ")]
        if len(defaults) == 1:
            defaults = defaults * len(names)   # one default shared by every name of the row
        if len(defaults) != len(names):
            unpaired.append(line)
            continue
        found.update(zip(names, defaults, strict=True))
    return found, unpaired


def shown(cell: str) -> str:
    """A default cell as a value: backticks off, a trailing note in parentheses off, `""` is empty."""
    text = cell.replace("`", "").strip()
    text = re.sub(r"\s+\(.*\)$", "", text)
    return "" if text in ('""', "''") else text


def default_matches(cell: str, value) -> bool:
    text = shown(cell)
    if isinstance(value, bool):
        return text == str(value).lower()
    if isinstance(value, int | float):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return text == ("" if value is None else str(value))


def page_problems(page_path: Path, parameters: dict, name: str) -> list[str]:
    """What the page (shown as `name`) lacks against the manifest's parameters, one string per problem."""
    if not page_path.is_file():
        return [f"no page: write {name} with a '## Parameters' table of {', '.join(parameters)}"]
    section = parameters_section(page_path.read_text())
    if section is None:
        return [f"no '## Parameters' section: add one with a table row for each of {', '.join(parameters)}"]
    rows, unpaired = documented_defaults(section)
    problems = [f"row whose defaults do not pair with its names (one default per name, ', ' between "
                f"them, or one for all): {line}" for line in unpaired]
    missing = [name for name in parameters if name not in rows]
    if missing:
        problems.append(f"no row for: {', '.join(missing)}")
    problems += [f"`{name}`: the page shows default {rows[name]!r}, the manifest has {spec.get('default')!r}"
                 for name, spec in parameters.items()
                 if name in rows and not default_matches(rows[name], spec.get("default"))]
    stale = [name for name in rows if name not in parameters]
    if stale:
        problems.append(f"rows for parameters the manifest does not declare: {', '.join(stale)}")
    return problems


def case_problems(repo: Path = REPO) -> dict[str, list[str]]:
    """{"<case> (<page>)": [problem, ...]} for every test case whose page is incomplete."""
    report = {}
    for manifest in sorted(repo.glob("test_cases/*/testcase.yml")):
        doc = yaml.safe_load(manifest.read_text())
        page = Path("docs", "test_cases", f"{doc['name']}.md")
        problems = page_problems(repo / page, doc.get("parameters") or {}, page.as_posix())
        if problems:
            report[f"{manifest.parent.name} ({page.as_posix()})"] = problems
    return report


def test_every_case_page_documents_every_parameter():
    assert list(REPO.glob("test_cases/*/testcase.yml")), "no test case manifests found"
    report = case_problems()
    assert not report, "test case pages out of step with their manifests:\n" + "\n".join(
        f"  {case}:\n" + "\n".join(f"    - {p}" for p in problems) for case, problems in report.items())


def test_the_check_finds_what_a_page_lacks(tmp_path):
    """The checker itself, on a made-up case: a missing row, a wrong default, a stale row, a row whose
    defaults do not pair, a shared default, a `|` in backticks, a table in a code fence, no page."""
    (tmp_path / "test_cases" / "demo").mkdir(parents=True)
    (tmp_path / "test_cases" / "none").mkdir(parents=True)
    (tmp_path / "docs" / "test_cases").mkdir(parents=True)
    params = {"steps": {"type": "int", "default": 20}, "lr": {"type": "float", "default": 0.003},
              "dp": {"type": "int", "default": 1}, "tp": {"type": "int", "default": 1},
              "data_path": {"type": "str", "default": ""}, "compile": {"type": "bool", "default": False},
              "ops": {"type": "str", "default": "a|b"}, "seed": {"type": "int", "default": 0},
              "mode": {"type": "str", "default": "x"}, "kind": {"type": "str", "default": "y"}}
    (tmp_path / "test_cases" / "demo" / "testcase.yml").write_text(yaml.safe_dump(
        {"name": "demo", "parameters": params}, sort_keys=False))
    (tmp_path / "test_cases" / "none" / "testcase.yml").write_text(yaml.safe_dump({"name": "none",
                                                                                  "parameters": {"a": {}}}))
    (tmp_path / "docs" / "test_cases" / "demo.md").write_text("""# demo
```
## Parameters
| `seed` | 0 | in a code fence: not a row |
```
## Parameters
| parameter | default | meaning |
| --- | --- | --- |
| `steps`, `lr` | 20, 0.0030 | steps; lr |
| `dp`, `tp` | 1 | axis sizes |
| `data_path` | `""` | staged data |
| `compile` | true (the default here) | wrong default |
| `ops` | `a|b` | pipe inside backticks |
| `mode`, `kind` | `x`, `y`, `z` | three defaults for two names |
| `gone` | 3 | a parameter the manifest dropped |

## Next
| `seed` | 0 | after the section: not a row |
""")
    report = case_problems(tmp_path)
    assert set(report) == {"demo (docs/test_cases/demo.md)", "none (docs/test_cases/none.md)"}
    assert report["none (docs/test_cases/none.md)"] == [
        "no page: write docs/test_cases/none.md with a '## Parameters' table of a"]
    assert report["demo (docs/test_cases/demo.md)"] == [
        "row whose defaults do not pair with its names (one default per name, ', ' between them, "
        "or one for all): | `mode`, `kind` | `x`, `y`, `z` | three defaults for two names |",
        "no row for: seed, mode, kind",
        "`compile`: the page shows default 'true (the default here)', the manifest has False",
        "rows for parameters the manifest does not declare: gone"]
