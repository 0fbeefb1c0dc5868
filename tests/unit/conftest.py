"""Make the collection's Python importable as `ansible_collections.awsome.distributed_training`
and the test cases' shared package as `dtcase`, without installing anything; fixtures the unit
tests share."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
collections = REPO / ".collections"
link = collections / "ansible_collections" / "awsome" / "distributed_training"
if not link.exists():
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("../../..")
for path in (collections, REPO / "test_cases" / "common"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture
def one_rank_group():
    """A one-rank gloo process group in this process (no rendezvous), and its DistContext."""
    import torch  # here, not at the top: dtcase is importable once the path above is set
    import torch.distributed as dist

    from dtcase.runtime import DistContext

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    dist.destroy_process_group()
