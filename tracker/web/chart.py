"""The time-series chart, drawn on the server as inline SVG: no library, no CDN, no JS needed.

`line_chart` turns a series (and optionally its comparison period) into geometry that
templates/_chart.html draws. The SVG stretches to its box (preserveAspectRatio="none", strokes
that do not scale), while axis labels are HTML placed by percentages, so text stays readable
at any width, a phone included. Each point carries its label and formatted values, shown by a
<title> tooltip without JS and by a small script (static/stats.js) with it. Annotations are
markers at their bucket: one marker holds every note of that bucket.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

VIEW_W = 1000
VIEW_H = 300
TOP_PAD = 12  # room above the highest gridline, in view units
MAX_X_LABELS = 7
T = TypeVar("T")


@dataclass(frozen=True)
class ChartPoint:
    """One bucket: where it sits (0-100 % of the width) and what hovering it says."""

    x_pct: float
    label: str
    value: str
    compare_label: str | None
    compare_value: str | None


@dataclass(frozen=True)
class Marker:
    """The notes of one bucket, drawn as one marker at the bucket's x."""

    x_pct: float
    label: str  # the bucket, as tooltips name it
    notes: tuple[str, ...]

    @property
    def text(self) -> str:
        """What hovering says, and what a screen reader reads: `Fri 27 Nov 2026: a; b`."""
        return f"{self.label}: {'; '.join(self.notes)}"


@dataclass(frozen=True)
class Tick:
    pct: float  # from the top (y axis) or from the left (x axis)
    label: str


@dataclass(frozen=True)
class Chart:
    metric_label: str
    line: str  # SVG path data
    area: str
    compare_line: str | None
    # Into the bucket still running (today, this hour), dashed: it is not over yet.
    partial_line: str | None
    compare_partial_line: str | None
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    points: list[ChartPoint]
    column_width: float  # view units of one hover column
    markers: tuple[Marker, ...] = ()
    view_w: int = VIEW_W
    view_h: int = VIEW_H

    def hover_x(self, point: ChartPoint) -> float:
        """Left edge of a point's hover column (view units): columns meet halfway between."""
        return max(0.0, point.x_pct * VIEW_W / 100 - self.column_width / 2)

    def hover_width(self, point: ChartPoint) -> float:
        right = min(float(VIEW_W), point.x_pct * VIEW_W / 100 + self.column_width / 2)
        return right - self.hover_x(point)

    @staticmethod
    def marker_x(marker: Marker) -> float:
        """The marker's x in view units."""
        return marker.x_pct * VIEW_W / 100


def nice_ceiling(value: float, integral: bool = False) -> tuple[float, float]:
    """A round axis maximum >= value and its step, so gridlines fall on 1/2/2.5/5 x 10^n.

    `integral` (counts) keeps steps whole: 3 visitors do not need a 0.75 gridline.
    """
    if value <= 0:
        return 4.0, 1.0
    raw_step = value / 4
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    if integral:
        step = max(1, math.ceil(step))
    return step * math.ceil(value / step - 1e-9), step


def _x(index: int, count: int) -> float:
    return VIEW_W / 2 if count == 1 else index * VIEW_W / (count - 1)


def _y(value: float, top: float) -> float:
    return VIEW_H - (value / top) * (VIEW_H - TOP_PAD)


def _path(values: Sequence[float | None], top: float) -> str:
    """A polyline that breaks where a value is missing (e.g. the future part of today)."""
    parts: list[str] = []
    pen_down = False
    for i, value in enumerate(values):
        if value is None:
            pen_down = False
            continue
        command = "L" if pen_down else "M"
        parts.append(f"{command}{_x(i, len(values)):.1f},{_y(value, top):.1f}")
        pen_down = True
    return "".join(parts)


def _split_partial(
    values: Sequence[float | None] | None, partial: int | None
) -> tuple[list[float | None] | None, list[float | None] | None]:
    """(the values up to the bucket before `partial`, the segment into `partial`)."""
    if values is None or partial is None or partial == 0 or values[partial] is None:
        return (list(values) if values is not None else None), None
    whole = [v if i < partial else None for i, v in enumerate(values)]
    segment = [v if i in (partial - 1, partial) else None for i, v in enumerate(values)]
    return whole, segment


def sparkline(values: Sequence[float]) -> str:
    """A small trend line's path, in the chart's view box (VIEW_W x VIEW_H)."""
    return _path(values, max(values, default=0) or 1)


def _area(values: Sequence[float | None], top: float) -> str:
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if not known:
        return ""
    n = len(values)
    line = "".join(f"L{_x(i, n):.1f},{_y(v, top):.1f}" for i, v in known)
    first, last = _x(known[0][0], n), _x(known[-1][0], n)
    return f"M{first:.1f},{VIEW_H}{line}L{last:.1f},{VIEW_H}Z"


def _x_ticks(labels: Sequence[str]) -> list[Tick]:
    n = len(labels)
    if n == 0:
        return []
    every = max(1, math.ceil(n / MAX_X_LABELS))
    return [Tick(_x(i, n) / VIEW_W * 100, labels[i]) for i in range(0, n, every)]


def _markers(
    points: Sequence[ChartPoint], notes: Sequence[Sequence[str]], labels: Sequence[str]
) -> tuple[Marker, ...]:
    return tuple(
        Marker(point.x_pct, label, tuple(texts))
        for point, texts, label in zip(points, notes, labels, strict=False)
        if texts
    )


def _fitted(series: Sequence[T], length: int) -> list[T | None]:
    """`series` cut or padded with None to `length` items."""
    return [*series[:length], *[None] * (length - len(series))]


def line_chart(
    *,
    metric_label: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    fmt: Callable[[float], str],
    compare_labels: Sequence[str] | None = None,
    compare_values: Sequence[float | None] | None = None,
    axis_labels: Sequence[str] | None = None,
    notes: Sequence[Sequence[str]] | None = None,
    note_labels: Sequence[str] | None = None,
    partial: int | None = None,
) -> Chart:
    """Geometry for one metric over time; `compare_*` (same length) draw the faint line.

    `labels` name each bucket in tooltips ("Mon 3 Nov, 14:00"); `axis_labels` (default: the
    same) are the shorter texts under the x axis ("3 Nov"); `notes` (same length) are each
    bucket's annotations, and `note_labels` (default: `labels`) what their marker calls the
    bucket (the day, on an hourly chart); `partial` is the index of the bucket still
    running, whose segment is dashed on both lines. A comparison may have fewer or more buckets (28
    days of February against 31 of March): each bucket is drawn against the comparison's
    bucket of the same rank, and one with none shows none.
    """
    their_labels: list[str | None] | None = None
    theirs: list[float | None] | None = None
    if compare_labels is not None:
        their_labels = _fitted(compare_labels, len(labels))
    if compare_values is not None:
        theirs = _fitted(compare_values, len(labels))
    known = [v for v in (*values, *(theirs or ())) if v is not None]
    top, step = nice_ceiling(max(known, default=0.0), all(float(v).is_integer() for v in known))
    steps = round(top / step)
    y_ticks = [Tick(_y(k * step, top) / VIEW_H * 100, fmt(k * step)) for k in range(steps + 1)]
    points = []
    for i, label in enumerate(labels):
        value = values[i]
        compare = theirs[i] if theirs is not None else None
        points.append(
            ChartPoint(
                x_pct=_x(i, len(labels)) / VIEW_W * 100,
                label=label,
                value=fmt(value) if value is not None else "—",
                compare_label=their_labels[i] if their_labels is not None else None,
                compare_value=fmt(compare) if compare is not None else None,
            )
        )
    whole, segment = _split_partial(values, partial)
    their_whole, their_segment = _split_partial(theirs, partial)
    return Chart(
        metric_label=metric_label,
        line=_path(whole or [], top),
        area=_area(values, top),
        compare_line=_path(their_whole, top) if their_whole is not None else None,
        partial_line=_path(segment, top) if segment else None,
        compare_partial_line=_path(their_segment, top) if their_segment else None,
        y_ticks=y_ticks,
        x_ticks=_x_ticks(axis_labels or labels),
        points=points,
        markers=_markers(points, notes or (), note_labels or labels),
        column_width=VIEW_W / max(1, len(labels) - 1) if len(labels) > 1 else VIEW_W,
    )
