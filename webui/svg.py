"""Small server-rendered SVG charts (dashboard rates over time, queue depths).

Pure string building with every label escaped; no JavaScript, no external assets.

>>> svg = bar_chart([("AA", 3), ("AE", 1)], title="ACK")
>>> svg.startswith("<svg") and "AE" in svg
True
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape


def _frame(width: int, height: int, title: str, body: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(title)}" class="chart"><title>{escape(title)}</title>{body}</svg>')


def line_chart(points: Sequence[tuple[str, float]], *, title: str, width: int = 600, height: int = 180) -> str:
    """A polyline of ``(label, value)`` points with the first/last labels and the maximum."""
    pad = 28
    top = max((v for _, v in points), default=0.0) or 1.0
    n = max(len(points) - 1, 1)
    xy = [(pad + i * (width - 2 * pad) / n, height - pad - v / top * (height - 2 * pad))
          for i, (_, v) in enumerate(points)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    labels = ""
    if points:
        labels = (f'<text x="{pad}" y="{height - 6}" font-size="11">{escape(points[0][0])}</text>'
                  f'<text x="{width - pad}" y="{height - 6}" font-size="11" text-anchor="end">'
                  f'{escape(points[-1][0])}</text>')
    body = (f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#9aa"/>'
            f'<text x="4" y="{pad - 8}" font-size="11">{top:g}</text>'
            f'<polyline fill="none" stroke="#2f6f6a" stroke-width="2" points="{line}"/>{labels}')
    return _frame(width, height, title, body)


def bar_chart(bars: Sequence[tuple[str, float]], *, title: str, width: int = 600, height: int = 180) -> str:
    """Vertical bars with their labels and values."""
    pad = 24
    top = max((v for _, v in bars), default=0.0) or 1.0
    slot = (width - 2 * pad) / max(len(bars), 1)
    parts = []
    for i, (label, value) in enumerate(bars):
        h = value / top * (height - 2 * pad - 12)
        x = pad + i * slot + slot * 0.15
        parts.append(f'<rect x="{x:.1f}" y="{height - pad - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                     f'fill="#2f6f6a"/><text x="{x + slot * 0.35:.1f}" y="{height - 8}" font-size="11" '
                     f'text-anchor="middle">{escape(label)}</text><text x="{x + slot * 0.35:.1f}" '
                     f'y="{height - pad - h - 4:.1f}" font-size="11" text-anchor="middle">{value:g}</text>')
    return _frame(width, height, title, "".join(parts))
