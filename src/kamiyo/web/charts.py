"""Server-drawn SVG charts: geometry here, markup in templates/_charts.html. No JavaScript needed.

Text in an SVG scales with its width, so the page draws two variants of the loss chart (monthly bars
for wide screens, yearly bars for phones) and shows one by a CSS media query.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from kamiyo.web.render import usd


@dataclass(slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(slots=True)
class Tick:
    pos: float
    label: str


@dataclass(slots=True)
class BarChart:
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    bars: list[Bar] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)


def nice_step(top: float, count: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 × 10^n) so that `count` steps cover `top`."""
    if top <= 0:
        return 1.0
    raw = top / count
    magnitude = float(10 ** math.floor(math.log10(raw)))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude


def yearly(months: list[dict[str, Any]]) -> list[dict[str, Any]]:
    years: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for point in months:
        bucket = years[point["month"][:4]]
        bucket[0] += point["count"]
        bucket[1] += point["loss_usd"]
    return [{"label": y, "count": int(v[0]), "loss_usd": v[1]} for y, v in sorted(years.items())]


def _x_ticks(labels: list[str], centres: list[float], max_ticks: int) -> list[Tick]:
    """Label January of each year for monthly data (thinned to fit), every bar otherwise."""
    if labels and len(labels[0]) == 7:
        picks = [i for i, label in enumerate(labels) if label.endswith("-01")] or [0]
        every = max(1, math.ceil(len(picks) / max_ticks))
        return [Tick(centres[i], labels[i][:4]) for i in picks[::every]]
    every = max(1, math.ceil(len(labels) / max_ticks))
    return [Tick(centres[i], labels[i]) for i in range(0, len(labels), every)]


def bar_chart(
    points: list[dict[str, Any]],
    *,
    label_key: str,
    width: int,
    height: int,
    left: int = 64,
    max_x_ticks: int = 12,
) -> BarChart:
    """Vertical bars of `loss_usd` per point, a rounded y axis in dollars, and x labels that fit."""
    chart = BarChart(width, height, plot_left=left, plot_right=width - 8, plot_top=12, plot_bottom=height - 28)
    if not points:
        return chart
    top = max(p["loss_usd"] for p in points)
    step = nice_step(top)
    ceiling = step * max(1, math.ceil(top / step)) if top > 0 else 1.0
    plot_h = chart.plot_bottom - chart.plot_top
    slot = (chart.plot_right - chart.plot_left) / len(points)
    gap = min(slot * 0.2, 6.0)
    centres = []
    for i, p in enumerate(points):
        h = p["loss_usd"] / ceiling * plot_h
        if p["loss_usd"] > 0:
            h = max(h, 1.0)
        x = chart.plot_left + i * slot
        centres.append(x + slot / 2)
        title = f"{p[label_key]}: {usd(p['loss_usd'])} lost in {p['count']:,} exploit{'s' if p['count'] != 1 else ''}"
        chart.bars.append(Bar(round(x + gap / 2, 2), round(chart.plot_bottom - h, 2), round(slot - gap, 2), h, title))
    ticks = round(ceiling / step)
    chart.y_ticks = [
        Tick(round(chart.plot_bottom - (i * step) / ceiling * plot_h, 2), usd(i * step)) for i in range(ticks + 1)
    ]
    chart.x_ticks = _x_ticks([p[label_key] for p in points], centres, max_x_ticks)
    return chart


def share(value: float, total: float) -> float:
    """Percentage (0–100) of a bar in a breakdown list; tiny non-zero shares stay visible."""
    if total <= 0 or value <= 0:
        return 0.0
    return max(round(value / total * 100, 2), 0.8)
