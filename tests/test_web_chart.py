"""The server-side SVG chart: axis scale, paths, ticks, hover values; and number formats."""

import pytest

from tracker.web.chart import line_chart, nice_ceiling
from tracker.web.format import compact, duration, metric_change, percent


@pytest.mark.parametrize(
    ("value", "top", "step"),
    [(0, 4, 1), (3, 3, 1), (7, 8, 2), (10, 10, 2.5), (97, 100, 25), (1234, 1500, 500),
     (0.42, 0.6, 0.2), (2, 2, 0.5)],
)  # fmt: skip
def test_nice_ceiling(value, top, step):
    assert nice_ceiling(value) == pytest.approx((top, step))


def test_counts_get_whole_gridlines():
    assert nice_ceiling(2, integral=True) == (2, 1)
    assert nice_ceiling(10, integral=True) == (12, 3)


def test_line_chart_geometry_and_hover_values():
    chart = line_chart(
        metric_label="Visitors",
        labels=["Mon 2 Nov", "Tue 3 Nov", "Wed 4 Nov"],
        values=[0, 50, 100],
        fmt=compact,
        compare_labels=["Mon 26 Oct", "Tue 27 Oct", "Wed 28 Oct"],
        compare_values=[100, None, 20],
    )
    # 0 sits on the bottom edge (y=300), the axis top (100) 12 units below the top.
    assert chart.line == "M0.0,300.0L500.0,156.0L1000.0,12.0"
    assert chart.compare_line == "M0.0,12.0M1000.0,242.4"  # a gap where the day is missing
    assert chart.area == "M0.0,300L0.0,300.0L500.0,156.0L1000.0,12.0L1000.0,300Z"
    assert [t.label for t in chart.y_ticks] == ["0", "25", "50", "75", "100"]
    assert chart.y_ticks[0].pct == 100 and chart.y_ticks[-1].pct == 4
    assert [(p.x_pct, p.value, p.compare_value) for p in chart.points] == [
        (0, "0", "100"),
        (50, "50", None),
        (100, "100", "20"),
    ]
    assert [t.label for t in chart.x_ticks] == ["Mon 2 Nov", "Tue 3 Nov", "Wed 4 Nov"]
    # Hover columns tile the width without overlapping: 0-250, 250-750, 750-1000.
    assert [(chart.hover_x(p), chart.hover_width(p)) for p in chart.points] == [
        (0, 250),
        (250, 500),
        (750, 250),
    ]


def test_long_series_keeps_a_few_axis_labels_and_single_point_is_centered():
    labels = [f"d{i}" for i in range(30)]
    chart = line_chart(metric_label="Pageviews", labels=labels, values=[1] * 30, fmt=compact)
    assert [t.label for t in chart.x_ticks] == ["d0", "d5", "d10", "d15", "d20", "d25"]
    assert chart.compare_line is None
    one = line_chart(metric_label="Visits", labels=["today"], values=[3], fmt=compact)
    assert one.line == "M500.0,300.0".replace("300.0", f"{300 - 3 / 3 * 288:.1f}")


@pytest.mark.parametrize(
    ("fn", "value", "text"),
    [
        (compact, 0, "0"), (compact, 999, "999"), (compact, 1234, "1.2k"), (compact, 1000, "1k"),
        (compact, 12_345, "12k"), (compact, 2_500_000, "2.5M"), (compact, 1.25, "1.2"),
        (compact, None, "—"), (percent, 41.6, "42%"), (percent, None, "—"),
        (duration, 0, "0s"), (duration, 45.4, "45s"), (duration, 125, "2m 05s"),
        (duration, 3725, "1h 02m"),
    ],
)  # fmt: skip
def test_formats(fn, value, text):
    assert fn(value) == text


@pytest.mark.parametrize(
    ("metric", "change", "text"),
    [("visitors", 12, "+12%"), ("visits", -50, "-50%"), ("pageviews", 0, "0%"),
     ("bounce_rate", 3.4, "+3 pts"), ("bounce_rate", -0.2, "0 pts"), ("visitors", None, "")],
)  # fmt: skip
def test_changes(metric, change, text):
    assert metric_change(metric, change) == text
