"""Make the collection's Python importable as `ansible_collections.awsome.distributed_training`
and the test cases' shared package as `dtcase`, without installing anything."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
collections = REPO / ".collections"
link = collections / "ansible_collections" / "awsome" / "distributed_training"
if not link.exists():
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("../../..")
for path in (collections, REPO / "test_cases" / "common"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
