"""Fixtures of the Molecule-wrapping tests: the fixture artifact mirror served on 127.0.0.1.

The mirror holds TEST FIXTURES standing in for vendor payloads (tests/fixtures/mirror): the roles'
logic is what these tests exercise, never a vendor installer.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "tests" / "fixtures" / "mirror"))
import build_mirror  # noqa: E402
import serve  # noqa: E402


@dataclass
class Mirror:
    url: str        # http://127.0.0.1:<port>
    directory: Path
    overlay: Path   # mirror_versions.yml: stack_artifacts_override with the fixtures' sha256


@pytest.fixture(scope="session")
def artifact_mirror(tmp_path_factory) -> Mirror:
    """The fixture artifact mirror, built once and served for the whole session."""
    out = tmp_path_factory.mktemp("artifact-mirror")
    build_mirror.build(out, REPO / "stack" / "versions.yml")
    with serve.serve(out) as url:
        yield Mirror(url=url, directory=out, overlay=out / "mirror_versions.yml")
