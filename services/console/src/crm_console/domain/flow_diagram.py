"""Stage moves as a flow diagram: stages left (moved from) and right (moved to), joined by bands.

A band's thickness is its number of customers, so the big moves stand out at a glance, which a
from/to grid of numbers does not give. Built as server-side SVG like the other charts (no script,
strict CSP). For screen readers the SVG carries a title and a description saying what is drawn;
the page puts the numbers next to it as a table, since a picture of bands cannot be read out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from crm_console.domain.charts import PALETTE

_WIDTH = 640
_PLOT_HEIGHT = 320  # height shared by the bands of a column, gaps apart
_GAP = 10
_NODE_WIDTH = 12
_LABEL_WIDTH = 150
_MIN_BAND = 1.5  # px: a move of one customer among thousands stays visible


@dataclass(frozen=True)
class Flow:
    """Customers who moved from one stage to another."""

    source: str
    target: str
    customers: int


def flows_of_matrix(
    from_stages: Sequence[str], to_stages: Sequence[str], customers: Sequence[Sequence[int]]
) -> list[Flow]:
    """The non-zero cells of a from/to matrix as flows, in row then column order."""
    return [
        Flow(source, target, count)
        for source, row in zip(from_stages, customers, strict=True)
        for target, count in zip(to_stages, row, strict=True)
        if count > 0
    ]


def _column(names: Sequence[str], thickness: dict[str, float], top: float) -> dict[str, float]:
    """Each node's top y, stacked from ``top`` with a gap between nodes."""
    tops, y = {}, top
    for name in names:
        tops[name] = y
        y += thickness[name] + _GAP
    return tops


def flow_diagram(flows: Sequence[Flow], title: str, *, element_id: str) -> Markup:
    """Two columns of stage nodes joined by bands as thick as the customers who moved."""
    sources = list(dict.fromkeys(flow.source for flow in flows))
    targets = list(dict.fromkeys(flow.target for flow in flows))
    total = sum(flow.customers for flow in flows)
    description = (
        f"{total:,} stage moves. "
        + "; ".join(f"{f.source} to {f.target}: {f.customers:,}" for f in flows)
        + "."
        if flows
        else "No stage moves in the period."
    )
    gaps = _GAP * max(len(sources), len(targets), 1)
    scale = (_PLOT_HEIGHT - gaps) / total if total else 0.0
    band = {id(f): max(_MIN_BAND, f.customers * scale) for f in flows}
    out_of = {name: sum(band[id(f)] for f in flows if f.source == name) for name in sources}
    into = {name: sum(band[id(f)] for f in flows if f.target == name) for name in targets}
    left_tops, right_tops = _column(sources, out_of, 24), _column(targets, into, 24)
    height = int(
        max([24.0, *(left_tops[n] + out_of[n] for n in sources)]
            + [right_tops[n] + into[n] for n in targets]) + 16
    )  # fmt: skip
    left_x, right_x = _LABEL_WIDTH, _WIDTH - _LABEL_WIDTH - _NODE_WIDTH
    body = [
        f'<text x="{left_x}" y="14" text-anchor="middle">from</text>'
        f'<text x="{right_x + _NODE_WIDTH}" y="14" text-anchor="middle">to</text>'
    ]
    # Bands leave a source in target order and enter a target in source order: no band crosses
    # another within a node.
    leaving = dict(left_tops)
    entering = dict(right_tops)
    ordered = sorted(flows, key=lambda f: (targets.index(f.target), sources.index(f.source)))
    start = {}
    for flow in sorted(flows, key=lambda f: (sources.index(f.source), targets.index(f.target))):
        start[id(flow)] = leaving[flow.source]
        leaving[flow.source] += band[id(flow)]
    for flow in ordered:
        thick = band[id(flow)]
        y0, y1 = start[id(flow)], entering[flow.target]
        entering[flow.target] += thick
        x0, x1 = left_x + _NODE_WIDTH, right_x
        middle = (x0 + x1) / 2
        colour = PALETTE[sources.index(flow.source) % len(PALETTE)]
        body.append(
            f'<path class="flow-band" data-from="{escape(flow.source)}" '
            f'data-to="{escape(flow.target)}" data-customers="{flow.customers}" '
            f'd="M{x0},{y0:.1f} C{middle:.1f},{y0:.1f} {middle:.1f},{y1:.1f} {x1},{y1:.1f} '
            f"L{x1},{y1 + thick:.1f} C{middle:.1f},{y1 + thick:.1f} {middle:.1f},"
            f'{y0 + thick:.1f} {x0},{y0 + thick:.1f} Z" fill="{colour}" fill-opacity="0.45">'
            f"<title>{escape(flow.source)} to {escape(flow.target)}: "
            f"{flow.customers:,}</title></path>"
        )
    moved_out = {name: sum(f.customers for f in flows if f.source == name) for name in sources}
    moved_in = {name: sum(f.customers for f in flows if f.target == name) for name in targets}
    for names, tops, sizes, counts, x, side in (
        (sources, left_tops, out_of, moved_out, left_x, "end"),
        (targets, right_tops, into, moved_in, right_x, "start"),
    ):
        for name in names:
            label_x = x - 6 if side == "end" else x + _NODE_WIDTH + 6
            body.append(
                f'<rect class="flow-node" x="{x}" y="{tops[name]:.1f}" width="{_NODE_WIDTH}" '
                f'height="{sizes[name]:.1f}" fill="#57606a"/>'
                f'<text x="{label_x}" y="{tops[name] + sizes[name] / 2 + 4:.1f}" '
                f'text-anchor="{side}">{escape(name)} ({counts[name]:,})</text>'
            )
    title_id, desc_id = f"{element_id}-title", f"{element_id}-desc"
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(element_id)}" role="img" '
        f'aria-labelledby="{escape(title_id)} {escape(desc_id)}" '
        f'viewBox="0 0 {_WIDTH} {height}" width="{_WIDTH}" height="{height}">'
        f'<title id="{escape(title_id)}">{escape(title)}</title>'
        f'<desc id="{escape(desc_id)}">{escape(description)}</desc>'
    )
    # Every text in head and body was escaped where it was put in.
    return Markup(head + "".join(body) + "</svg>")
