"""Fixtures of the lint session: the collection tarball, built once from a snapshot of the tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from collection_build import build, snapshot


@pytest.fixture(scope="session")
def collection_tree(tmp_path_factory) -> Path:
    return snapshot(tmp_path_factory.mktemp("tree"))


@pytest.fixture(scope="session")
def collection_tarball(collection_tree, tmp_path_factory) -> Path:
    """`ansible-galaxy collection build` of the tree, as a user or Galaxy gets it."""
    return build(collection_tree, tmp_path_factory.mktemp("dist"))
