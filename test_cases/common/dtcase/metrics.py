"""JSON-lines metrics, one file per rank: the only thing the launcher's report reads.

See docs/development.md for the event schema.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    # JSON has no NaN/Infinity; write them as strings so the report can flag them.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class MetricsWriter:
    """Appends one JSON object per call to ``<output_dir>/metrics-rank<R>.jsonl``."""

    def __init__(self, output_dir: str | os.PathLike, rank: int, world_size: int, echo: bool | None = None):
        self.rank = rank
        self.world_size = world_size
        self.node = socket.gethostname()
        self.path = Path(output_dir) / f"metrics-rank{rank}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", buffering=1)
        # Rank 0 echoes to stdout so a human following the log sees progress.
        self.echo = rank == 0 if echo is None else echo

    def write(self, event: str, **fields: Any) -> dict:
        record = {"event": event, "rank": self.rank, "world_size": self.world_size,
                  "node": self.node, "time": round(time.time(), 3), **fields}
        line = json.dumps(_clean(record), sort_keys=False)
        self._fh.write(line + "\n")
        self._fh.flush()
        if self.echo:
            print(line, flush=True)
        return record

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
