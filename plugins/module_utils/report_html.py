"""The one look of every HTML report (test-case runs, health checks, the results index): a page
frame, headline figures, tables, and the human forms of times and numbers.

Pure Python, no Ansible imports; run_report.py and health_report.py render with it.
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
h1{margin-bottom:.2em} h1 .status{font-size:.8em;margin-left:.4em} .sub{color:#555;margin-top:0}
table{border-collapse:collapse;margin:.5em 0 1.5em} td,th{border:1px solid #ddd;padding:4px 8px;
text-align:left;vertical-align:top} th{background:#f6f6f6} pre{margin:0;font-size:11px;white-space:pre-wrap}
.figures{display:flex;flex-wrap:wrap;gap:12px;margin:1em 0}
.figure{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:130px}
.figure .v{font-size:1.5em;font-weight:600} .figure .k{color:#555;font-size:.85em}
.passed,.pass{color:#070} .warn{color:#a60} .failed,.fail{color:#b00} td.pass{background:#eefbea}
td.warn{background:#fff6e0} td.fail{background:#fde8e8} td.differs{background:#fff6e0}
code{background:#f3f3f3;padding:2px 4px;border-radius:3px} pre code{display:block;word-break:break-all}
figure{display:inline-block;margin:0 1em 1em 0}
.regressed{background:#fde8e8}"""

e = html.escape


def when(ts: Any) -> str:
    """Unix seconds as a UTC date and time; '' when unknown."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(ts)))
    except (TypeError, ValueError):
        return ""


def duration(seconds: Any) -> str:
    """12.3 -> '12.3 s', 68 -> '1 min 8 s', 4000 -> '1 h 6 min'."""
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return ""
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def number(value: Any, fmt: str = "") -> str:
    """A figure for people: thousands separated; small values keep three significant digits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    if fmt:
        return fmt.format(value)
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"


def value(v: Any) -> str:
    """A table cell: strings as they are, lists joined, mappings as key=value; never raw JSON quotes."""
    if isinstance(v, dict):
        return ", ".join(f"{k}={value(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ", ".join(value(x) for x in v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


def figures(items: list[tuple[str, str]]) -> str:
    """Headline figures as tiles; items without a value are left out."""
    tiles = "".join(f'<div class="figure"><div class="v">{e(v)}</div><div class="k">{e(k)}</div></div>'
                    for k, v in items if v)
    return f'<div class="figures">{tiles}</div>' if tiles else ""


def table(header: list[str] | None, rows: list[list[Any]], classes: list[list[str]] | None = None) -> str:
    """Rows of already-escaped HTML cells (use cell() for text); no header row when header is None."""
    head = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>" if header else ""
    body = []
    for i, row in enumerate(rows):
        cls = classes[i] if classes else [""] * len(row)
        body.append("<tr>" + "".join(f'<td class="{c}">{x}</td>' if c else f"<td>{x}</td>"
                                     for x, c in zip(row, cls, strict=False)) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def cell(v: Any) -> str:
    return e(value(v))


def sparkline(points: list[float], width: int = 160, height: int = 30) -> str:
    """An inline SVG line of the values, oldest left; the last point is marked."""
    pts = [p for p in points if isinstance(p, int | float)]
    if len(pts) < 2:
        return ""
    lo, hi = min(pts), max(pts)
    span = (hi - lo) or 1.0
    step = width / (len(pts) - 1)
    xy = [(i * step, height - 3 - (p - lo) / span * (height - 6)) for i, p in enumerate(pts)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    lx, ly = xy[-1]
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'<polyline fill="none" stroke="#357" stroke-width="1.5" points="{path}"/>'
            f'<circle cx="{lx:.1f}" cy="{ly:.1f}" r="2.5" fill="#b00"/></svg>')


def page(title: str, status: str, subtitle: str, body: str) -> str:
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title>'
            f"<style>{STYLE}</style></head><body>"
            f'<h1>{e(title)}<span class="status {e(status)}">{e(status)}</span></h1>'
            f'<p class="sub">{subtitle}</p>{body}</body></html>')


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
