"""An entry point's command line, generated from its test case's manifest.

The manifest (`test_cases/<case>/testcase.yml`) declares every parameter once: type, default,
choices, bounds, help. The launcher validates a run request against it and passes the values as
`--name-with-dashes VALUE` (booleans `--name` / `--no-name`); the entry point parses them with the
parser built here, so there is no second set of defaults. Relations between parameters
(`constraints:`) are the launcher's to check, before anything starts.

The launcher stages the manifest's parameters as `testcase.json` beside the case's code (a node's
Python may have no YAML parser); run by hand from the repository, the YAML manifest is read. A case
that runs from its own virtualenv without PyYAML (jax) takes the same file written by hand:
`python -m dtcase.params test_cases/<case>/testcase.yml DIR` (needs PyYAML, e.g. the collection's venv).

This module needs only the standard library (no torch): every case's entry point imports it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

MANIFESTS = ("testcase.json", "testcase.yml")
_TYPES = {"int": int, "float": float, "str": str}


def find_manifest(entry_file: str | Path) -> Path:
    """The manifest of the case whose code holds `entry_file` (its directory or one above)."""
    here = Path(entry_file).resolve().parent
    for directory in (here, *list(here.parents)[:3]):
        for name in MANIFESTS:
            if (directory / name).is_file():
                return directory / name
    raise FileNotFoundError(f"no {' or '.join(MANIFESTS)} above {entry_file}")


def load_parameters(entry_file: str | Path) -> dict[str, dict]:
    path = find_manifest(entry_file)
    if path.suffix == ".json":
        return json.loads(path.read_text())["parameters"]
    try:
        import yaml  # only where the repository's manifest is read: the collection's venv has it
    except ImportError:
        raise SystemExit(f"{path}: no YAML parser in {sys.executable}; stage the parameters first: "
                         f"python -m dtcase.params {path} {Path(entry_file).resolve().parent}") from None
    return yaml.safe_load(path.read_text())["parameters"]


def stage(manifest: str | Path, directory: str | Path) -> Path:
    """Write `testcase.json` into `directory` as the launcher stages it (name and parameters)."""
    import yaml

    data = yaml.safe_load(Path(manifest).read_text())
    out = Path(directory) / MANIFESTS[0]
    out.write_text(json.dumps({"name": data["name"], "parameters": data["parameters"]}, indent=4) + "\n")
    return out


def _bounded(name: str, spec: dict):
    """An argparse type that converts and checks the declared bounds, with one-line errors."""
    convert = _TYPES[spec["type"]]

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {spec['type']}, got {text!r}") from None
        if "min" in spec and value < spec["min"]:
            raise argparse.ArgumentTypeError(f"must be >= {spec['min']}, got {value}")
        if "max" in spec and value > spec["max"]:
            raise argparse.ArgumentTypeError(f"must be <= {spec['max']}, got {value}")
        return value

    parse.__name__ = name
    return parse


def manifest_parser(entry_file: str | Path, description: str) -> argparse.ArgumentParser:
    """The manifest's parameters, plus the directories the launcher always passes."""
    p = argparse.ArgumentParser(description=description)
    for name, spec in load_parameters(entry_file).items():
        flag = "--" + name.replace("_", "-")
        kwargs: dict[str, Any] = {"default": spec.get("default"), "help": spec.get("help")}
        if spec["type"] == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if "choices" in spec:
            kwargs["choices"] = spec["choices"]
        p.add_argument(flag, type=_bounded(name, spec), **kwargs)
    p.add_argument("--output-dir", default="out", help="node-local: metrics-rank<R>.jsonl")
    p.add_argument("--checkpoint-dir", default=None, help="shared by all nodes")
    return p


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m dtcase.params test_cases/<case>/testcase.yml DIR")
    print(stage(sys.argv[1], sys.argv[2]))
