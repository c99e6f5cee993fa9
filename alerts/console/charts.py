"""Inline SVG charts for the console: computed here, drawn by templates. Nothing is fetched from elsewhere (no
CDN, no script): the page works offline and the charts are plain markup with titles for screen readers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

WIDTH, HEIGHT = 560, 160
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 8, 8, 20


@dataclass
class Line:
    label: str
    css: str  # a class of the stroke colour
    points: str  # SVG polyline points
    latest: float | None


@dataclass
class Chart:
    title: str
    unit: str
    lines: list[Line]
    y_max: float
    x_start: datetime
    x_end: datetime
    width: int = WIDTH
    height: int = HEIGHT
    ticks: list[dict] = field(default_factory=list)  # horizontal grid lines: {"y", "label"}
    ceiling: float | None = None  # a reference line (the spec's maximum), drawn dashed
    ceiling_y: float | None = None
    plot: dict = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(line.points for line in self.lines)


def nice_ceiling(value: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``value``: round axis labels."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def line_chart(*, title: str, unit: str, series: dict[str, tuple[str, list[dict]]], since: datetime,
               until: datetime, ceiling: float | None = None) -> Chart:
    """``series``: label → (css class, points ``{"at", "value"}`` as ``metric_series`` returns them)."""
    values = [p["value"] for _, points in series.values() for p in points]
    top = max(values + ([ceiling] if ceiling is not None and values and ceiling <= 1.5 * max(values) else []),
              default=0.0)
    y_max = nice_ceiling(top)
    span = (until - since).total_seconds() or 1.0
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def x(at: datetime) -> float:
        return PAD_LEFT + max(0.0, min(1.0, (at - since).total_seconds() / span)) * plot_w

    def y(value: float) -> float:
        return PAD_TOP + plot_h - min(value, y_max) / y_max * plot_h

    lines = [Line(label=label, css=css, latest=points[-1]["value"] if points else None,
                  points=" ".join(f"{x(p['at']):.1f},{y(p['value']):.1f}" for p in points) if points else "")
             for label, (css, points) in series.items()]
    ticks = [{"y": f"{y(y_max * f):.1f}", "label": f"{y_max * f:g}"} for f in (0, 0.5, 1)]
    chart = Chart(title=title, unit=unit, lines=lines, y_max=y_max, x_start=since, x_end=until, ticks=ticks,
                  plot={"left": PAD_LEFT, "right": WIDTH - PAD_RIGHT, "top": PAD_TOP, "bottom": PAD_TOP + plot_h,
                        "label_y": HEIGHT - 4})
    if ceiling is not None and ceiling <= y_max:
        chart.ceiling, chart.ceiling_y = ceiling, round(y(ceiling), 1)
    return chart


def gauge(percent: float | None) -> dict:
    """A half-circle gauge: the arc's dash length for ``percent`` (0–100) of its length."""
    radius = 50
    length = math.pi * radius
    value = min(max(percent or 0.0, 0.0), 100.0)
    return {"radius": radius, "length": f"{length:.1f}", "filled": f"{length * value / 100:.1f}",
            "percent": percent, "hot": value >= 80, "value": value}
