"""Small bar charts as inline SVG, rendered on the server (no script, no image requests).

Tokens issued grow upwards from the middle line, failures downwards, each on its own scale:
the two read apart without relying on colour. Every bar has a ``<title>`` (its time and both
counts) and the chart a text summary for screen readers.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from markupsafe import Markup, escape

from tokenward.server.admin.views import UsageSeries

__all__ = ["bar_chart"]

_WIDTH = 600
_UP = 90  # height of the issued half
_DOWN = 40  # height of the failures half
_TOP = 4
_ids = itertools.count(1)


def _label(series: UsageSeries, index: int) -> str:
    start = series.start + timedelta(seconds=index * series.bucket_seconds)
    return start.strftime("%H:%M UTC")


def _bars(series: UsageSeries) -> list[str]:
    count = len(series.issued)
    step = _WIDTH / count
    top = max(series.issued, default=0) or 1
    bottom = max(series.failed, default=0) or 1
    middle = _TOP + _UP
    parts = []
    for i, (issued, failed) in enumerate(zip(series.issued, series.failed, strict=True)):
        x = round(i * step + step * 0.1, 2)
        w = round(step * 0.8, 2)
        up = round(_UP * issued / top, 2)
        down = round(_DOWN * failed / bottom, 2)
        title = escape(f"{_label(series, i)}: {issued} issued, {failed} failed")
        parts.append(
            f"<g><title>{title}</title>"
            f'<rect class="bar-bg" x="{x}" y="{_TOP}" width="{w}" height="{_UP + _DOWN}"/>'
            f'<rect class="bar-issued" x="{x}" y="{middle - up}" width="{w}" height="{up}"/>'
            f'<rect class="bar-failed" x="{x}" y="{middle}" width="{w}" height="{down}"/></g>'
        )
    return parts


def bar_chart(series: UsageSeries, *, caption: str) -> Markup:
    """An accessible SVG chart of ``series``; ``caption`` names the period. The scale labels
    are HTML below the drawing, so that they keep their shape when the chart stretches."""
    n = next(_ids)
    summary = escape(
        f"{caption}: {series.total_issued} tokens issued, {series.total_failed} failures"
    )
    middle = _TOP + _UP
    height = middle + _DOWN
    top, bottom = max(series.issued, default=0), max(series.failed, default=0)
    parts = [
        '<figure class="chart-box">',
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-labelledby="chart-{n}-title" preserveAspectRatio="none">',
        f'<title id="chart-{n}-title">{summary}</title>',
        *_bars(series),
        f'<line class="axis" x1="0" y1="{middle}" x2="{_WIDTH}" y2="{middle}"/>',
        "</svg>",
        '<figcaption class="chart-scale" aria-hidden="true">',
        f"<span>up: issued (max {top}), down: failed (max {bottom})</span>",
        f"<span>{escape(_label(series, 0))} to now</span>",
        "</figcaption></figure>",
    ]
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above
