"""The nccl-tests style table rank 0 prints while the sweep runs."""

from __future__ import annotations

_COLUMNS = (("size", "(B)", 12), ("count", "(elements)", 12), ("type", "", 8), ("op", "", 15),
            ("time", "(us)", 10), ("algbw", "(GB/s)", 8), ("busbw", "(GB/s)", 8), ("correct", "", 8))
HEADER = "\n".join("#" + " ".join(f"{col[line]:>{width}}" for *col, width in _COLUMNS).rstrip()
                   for line in (0, 1))


def format_row(row: dict) -> str:
    if not row.get("supported", True):
        return f" {row['bytes']:>12} {row['count']:>12} {row['dtype']:>8} {row['op']:>15} {'unsupported':>37}"
    return (f" {row['bytes']:>12} {row['count']:>12} {row['dtype']:>8} {row['op']:>15} "
            f"{row['time_us']:>10.2f} {row['algbw_gbps']:>8.2f} {row['busbw_gbps']:>8.2f} "
            f"{'yes' if row['correct'] else 'NO':>8}")


def format_footer(rows: list[dict]) -> str:
    """nccl-tests' closing line: average busbw over the sizes, per op."""
    lines = []
    for op in dict.fromkeys(r["op"] for r in rows):
        bws = [r["busbw_gbps"] for r in rows if r["op"] == op and r.get("supported", True)]
        if bws:
            lines.append(f"# {op}: avg bus bandwidth {sum(bws) / len(bws):.3f} GB/s over {len(bws)} sizes")
    return "\n".join(lines)
