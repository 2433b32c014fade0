"""Geometry of the compliance chart, drawn by the portal as inline SVG (``audits/_compliance_chart.html``).

Plain Python on the trend :func:`audits.queries.status_overview` already computes: no JavaScript, nothing
vendored, so the chart prints, passes the CSP and reads the same in every browser. Each environment gets
its own dash pattern and marker shape as well as a colour, so the chart reads without colour; the
template adds a legend, the last value printed at each line's end and a data table for screen readers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

WIDTH, HEIGHT = 480, 220  # scaled to the box: 0.8 on a phone, 1.2 at most (max-width in portal.css)
LEFT, RIGHT, TOP, BOTTOM = 40, 52, 12, 28  # room for the y ticks, the last values and the run dates
MARKER = 4.5
LABEL_GAP = 12  # the last values of two lines never overlap: they are pushed apart by this much
MAX_X_LABELS = 6

# Patterns and shapes cycle independently (6 x 5): thirty environments before two look alike.
DASHES = ("", "8 4", "2 3", "10 3 2 3", "5 5 1 5", "1 6")
SHAPES = ("circle", "square", "triangle", "diamond", "cross")


@dataclass
class Point:
    x: float
    y: float
    value: float
    run: int
    at: datetime
    marker: str = ""


@dataclass
class Series:
    environment: str
    index: int
    dash: str
    shape: str
    points: list[Point] = field(default_factory=list)
    path: str = ""
    legend_marker: str = ""
    last: Point | None = None
    label_y: float = 0.0

    @property
    def last_value(self) -> float | None:
        return self.last.value if self.last else None


@dataclass
class Chart:
    series: list[Series]
    runs: list[dict[str, Any]]  # {"run", "at", "x", "label", "values": [value or None per series]}
    y_ticks: list[tuple[int, float]]
    lower: int
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    plot_top: int = TOP
    plot_bottom: int = HEIGHT - BOTTOM

    @property
    def empty(self) -> bool:
        return not self.runs

    @property
    def summary(self) -> str:
        """What the chart shows, in words (its ``<desc>`` and the screen reader's first sentence)."""
        if self.empty:
            return "No finished audit yet."
        parts = []
        for s in self.series:
            values = [p.value for p in s.points]
            if not values:
                parts.append(f"{s.environment}: no machine audited automatically")
            elif len(values) == 1:
                parts.append(f"{s.environment}: {_pct(values[0])}")
            else:
                parts.append(f"{s.environment}: from {_pct(values[0])} to {_pct(values[-1])}")
        return f"Compliance over the last {len(self.runs)} audit(s); " + "; ".join(parts) + "."


def _pct(value: float) -> str:
    return f"{value:g}%"


def _axis_lower(values: list[float]) -> int:
    """The bottom of the y axis: the tens below the lowest value, so small drift stays visible; never
    above 90 so 100 % everywhere still draws a scale."""
    if not values:
        return 0
    return max(0, min(90, 10 * math.floor(min(values) / 10)))


def _ticks(lower: int) -> list[int]:
    span = 100 - lower
    step = 5 if span <= 10 else 10 if span <= 50 else 20
    return list(range(100, lower - 1, -step))[::-1]


def marker_path(shape: str, x: float, y: float, r: float = MARKER) -> str:
    """An SVG path centred on (x, y): every marker is a path so the template draws them one way."""
    if shape == "square":
        return f"M{x - r:.1f} {y - r:.1f}h{2 * r:.1f}v{2 * r:.1f}h{-2 * r:.1f}Z"
    if shape == "triangle":
        return f"M{x:.1f} {y - r * 1.2:.1f}L{x + r * 1.1:.1f} {y + r * 0.8:.1f}L{x - r * 1.1:.1f} {y + r * 0.8:.1f}Z"
    if shape == "diamond":
        return f"M{x:.1f} {y - r * 1.3:.1f}L{x + r:.1f} {y:.1f}L{x:.1f} {y + r * 1.3:.1f}L{x - r:.1f} {y:.1f}Z"
    if shape == "cross":
        return (f"M{x - r:.1f} {y - r:.1f}L{x + r:.1f} {y + r:.1f}M{x + r:.1f} {y - r:.1f}"
                f"L{x - r:.1f} {y + r:.1f}")
    return f"M{x - r:.1f} {y:.1f}a{r:.1f} {r:.1f} 0 1 0 {2 * r:.1f} 0a{r:.1f} {r:.1f} 0 1 0 {-2 * r:.1f} 0Z"


def compliance_chart(environments: list[dict]) -> Chart:
    """The chart of ``environments`` (``[{"environment": name, "trend": [{"run", "at", "compliance"}]}]``,
    each trend oldest first, as ``status_overview`` gives them).

    The x axis is the runs, in order, shared by every environment (a run of one environment leaves the
    others without a point there); a run with no machine audited automatically (compliance None) breaks
    its environment's line rather than drawing it to zero.
    """
    runs_at: dict[int, datetime] = {}
    for env in environments:
        for t in env.get("trend", []):
            runs_at[t["run"]] = t["at"]
    order = sorted(runs_at, key=lambda pk: (runs_at[pk], pk))
    values = [t["compliance"] for env in environments for t in env.get("trend", []) if t["compliance"] is not None]
    lower = _axis_lower(values)
    chart = Chart(series=[], runs=[], y_ticks=[], lower=lower)
    plot_w = chart.plot_right - chart.plot_left
    plot_h = chart.plot_bottom - chart.plot_top

    def x_of(i: int) -> float:
        return chart.plot_left + plot_w / 2 if len(order) == 1 else chart.plot_left + plot_w * i / (len(order) - 1)

    def y_of(value: float) -> float:
        clamped = min(100.0, max(float(lower), value))
        return chart.plot_top + plot_h * (100 - clamped) / (100 - lower)

    chart.y_ticks = [(tick, round(y_of(tick), 1)) for tick in _ticks(lower)]
    column = {pk: i for i, pk in enumerate(order)}
    every = max(1, math.ceil(len(order) / MAX_X_LABELS))
    # The newest run is always labelled: it is the one people look for.
    chart.runs = [{"run": pk, "at": runs_at[pk], "x": round(x_of(i), 1), "values": [],
                   "label": (len(order) - 1 - i) % every == 0} for i, pk in enumerate(order)]

    for index, env in enumerate(environments):
        series = Series(environment=env["environment"], index=index, dash=DASHES[index % len(DASHES)],
                        shape=SHAPES[index % len(SHAPES)])
        by_run = {t["run"]: t["compliance"] for t in env.get("trend", [])}
        segments: list[str] = []
        pen_down = False
        for pk in order:
            value = by_run.get(pk)
            chart.runs[column[pk]]["values"].append(value)
            if value is None:
                if pk in by_run:  # audited, but nothing automatic to measure: a gap in the line
                    pen_down = False
                continue
            x, y = round(x_of(column[pk]), 1), round(y_of(value), 1)
            point = Point(x=x, y=y, value=value, run=pk, at=runs_at[pk], marker=marker_path(series.shape, x, y))
            series.points.append(point)
            segments.append(f"{'L' if pen_down else 'M'}{point.x} {point.y}")
            pen_down = True
        series.path = "".join(segments)
        series.last = series.points[-1] if series.points else None
        series.legend_marker = marker_path(series.shape, 14, 8)
        chart.series.append(series)
    labelled = [s for s in chart.series if s.last]
    _place_labels(labelled, chart.plot_top, chart.plot_bottom)
    for s in labelled:
        s.label_y = round(s.label_y, 1)
    return chart


def _place_labels(series: list[Series], top: float, bottom: float) -> None:
    """Put each line's last value next to its end, pushed apart so equal values stay legible."""
    series.sort(key=lambda s: (s.last.y if s.last else 0, s.index))
    previous = -math.inf
    for s in series:
        assert s.last is not None
        s.label_y = max(s.last.y + 4, previous + LABEL_GAP)
        previous = s.label_y
    overflow = previous - (bottom + 8)
    if overflow > 0:  # many lines at the bottom: slide the whole stack up, never above the plot
        for s in series:
            s.label_y = max(top + 8, s.label_y - overflow)
