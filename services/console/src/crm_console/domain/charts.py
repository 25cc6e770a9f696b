"""Charts as server-rendered SVG: bars, a heat map and lines, each with a title for screen readers.

No charting library: these three shapes are what the pages need, and SVG built here needs no
script, passes a strict Content-Security-Policy and renders the same in every browser. Every
text that reaches the markup is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#0b57d0", "#1a7f37", "#b3261e", "#9a6700", "#8250df", "#0a7ea4", "#bc4c00", "#57606a")
_BAR_HEIGHT = 22
_LABEL_WIDTH = 170


def _svg(width: int, height: int, title: str, body: list[str]) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{escape(title)}</title>'
    )
    # Every text in head and body was escaped where it was put in.
    return Markup(head + "".join(body) + "</svg>")


def bar_chart(
    bars: Sequence[tuple[str, float]], title: str, *, value_format: str = "{:,.0f}"
) -> Markup:
    """Horizontal bars, one per (label, value), longest for the largest value."""
    width = 640
    height = max(1, len(bars)) * _BAR_HEIGHT + 8
    top = max((value for _, value in bars), default=0) or 1
    span = width - _LABEL_WIDTH - 90
    body = []
    for i, (label, value) in enumerate(bars):
        y = 4 + i * _BAR_HEIGHT
        length = max(0.0, value) / top * span
        body.append(
            f'<text x="{_LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{_LABEL_WIDTH}" y="{y + 3}" width="{length:.1f}" height="{_BAR_HEIGHT - 6}"'
            f' fill="{PALETTE[0]}"/>'
            f'<text x="{_LABEL_WIDTH + length + 6:.1f}" y="{y + 15}">'
            f"{escape(value_format.format(value))}</text>"
        )
    return _svg(width, height, title, body)


def column_chart(labels: Sequence[str], values: Sequence[float], title: str) -> Markup:
    """Vertical columns (a histogram): labels under every few columns, counts on top."""
    width, height, bottom, left = 640, 240, 40, 10
    top = max(values, default=0) or 1
    step = (width - 2 * left) / max(1, len(values))
    label_every = max(1, len(values) // 8)
    body = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - left}" '
            f'y2="{height - bottom}" stroke="#8c959f"/>']  # fmt: skip
    for i, value in enumerate(values):
        bar = max(0.0, value) / top * (height - bottom - 24)
        x = left + i * step
        body.append(
            f'<rect x="{x + 1:.1f}" y="{height - bottom - bar:.1f}" width="{step - 2:.1f}" '
            f'height="{bar:.1f}" fill="{PALETTE[1]}"><title>{escape(labels[i])}: '
            f"{value:,.0f}</title></rect>"
        )
        if value:
            body.append(
                f'<text x="{x + step / 2:.1f}" y="{height - bottom - bar - 4:.1f}" '
                f'text-anchor="middle">{value:,.0f}</text>'
            )
        if i % label_every == 0:
            body.append(f'<text x="{x:.1f}" y="{height - bottom + 16}">{escape(labels[i])}</text>')
    return _svg(width, height, title, body)


def heat_map(
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
    title: str,
    *,
    value_format: str = "{:.0%}",
) -> Markup:
    """A grid of cells shaded by value (0 to the largest); None leaves a cell blank."""
    cell_w, cell_h, left, head = 52, 24, 110, 28
    width = left + cell_w * max(1, len(columns)) + 10
    height = head + cell_h * max(1, len(rows)) + 10
    top = max((v for row in values for v in row if v is not None), default=0) or 1
    body = [
        f'<text x="{left + j * cell_w + cell_w / 2}" y="{head - 8}" text-anchor="middle">'
        f"{escape(column)}</text>"
        for j, column in enumerate(columns)
    ]
    for i, row in enumerate(rows):
        y = head + i * cell_h
        body.append(f'<text x="{left - 6}" y="{y + 16}" text-anchor="end">{escape(row)}</text>')
        for j, value in enumerate(values[i]):
            if value is None:
                continue
            shade = 0.08 + 0.92 * (max(0.0, value) / top)
            ink = "on-dark" if shade > 0.55 else "on-light"
            x = left + j * cell_w
            body.append(
                f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="{PALETTE[0]}" fill-opacity="{shade:.2f}"/>'
                f'<text x="{x + cell_w / 2 - 1}" y="{y + 16}" text-anchor="middle" '
                f'class="{ink}">{escape(value_format.format(value))}</text>'
            )
    return _svg(width, height, title, body)


def line_chart(
    x_labels: Sequence[str], series: Mapping[str, Sequence[float]], title: str
) -> Markup:
    """One line per series over the same x labels, with a legend."""
    width, height, left, bottom, right = 640, 260, 50, 40, 130
    top = max((v for values in series.values() for v in values), default=0) or 1
    n = max(1, len(x_labels) - 1)
    plot_w, plot_h = width - left - right, height - bottom - 16

    def x(i: int) -> float:
        return left + i * plot_w / n

    def y(v: float) -> float:
        return 16 + plot_h - v / top * plot_h

    body = [
        f'<line x1="{left}" y1="{16 + plot_h}" x2="{left + plot_w}" y2="{16 + plot_h}" '
        f'stroke="#8c959f"/><text x="{left - 6}" y="{y(top) + 4:.1f}" text-anchor="end">'
        f'{top:,.0f}</text><text x="{left - 6}" y="{16 + plot_h}" text-anchor="end">0</text>'
    ]
    every = max(1, len(x_labels) // 6)
    for i, label in enumerate(x_labels):
        if i % every == 0:
            body.append(f'<text x="{x(i):.1f}" y="{height - 18}">{escape(label)}</text>')
    for k, (name, values) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        body.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        body.append(
            f'<rect x="{width - right + 10}" y="{16 + k * 18}" width="10" height="10" '
            f'fill="{colour}"/><text x="{width - right + 26}" y="{25 + k * 18}">'
            f"{escape(name)}</text>"
        )
    return _svg(width, height, title, body)
