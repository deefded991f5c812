"""The charts both dashboards draw (fedgrid_server.charts): round ticks, short labels, no overlap."""

from __future__ import annotations

import math
import re

import pytest

from fedgrid_server.charts import Line, line_chart, multi_line_chart, nice_ticks, tick_labels

RANGES = [
    (0.1, 0.3), (0.6667, 2.0), (0.0, 1.0), (2.0, 2.0), (0.0, 0.0), (-3.0, 7.0), (1e-7, 3e-6),
    (0.123456789, 0.123456791), (0.0, 123456789.0), (12345.6, 12346.1), (-1e-9, 1e-9),
    (0.91, 0.93), (1.0, 240.0), (3.0, 1e6), (0.30000000000000004, 0.7000000000000001),
    (0.0, 5e15), (-1e300, 1e300), (1.0, 1e300),
]


@pytest.mark.parametrize(("low", "high"), RANGES)
@pytest.mark.parametrize("most", [3, 4, 6, 10])
def test_ticks_are_round_cover_the_range_and_fit_the_count(low, high, most):
    ticks = nice_ticks(low, high, most)
    assert 2 <= len(ticks) <= most
    slack = 1e-9 * (abs(low) + abs(high))  # the bounds' own floating-point noise
    assert ticks[0] <= low + slack and ticks[-1] >= high - slack
    steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len({float(f"{s:.6g}") for s in steps}) == 1, ticks  # evenly spaced
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 5, 10)), (step, ticks)


@pytest.mark.parametrize(("low", "high"), RANGES)
def test_labels_are_short_distinct_and_share_their_decimals(low, high):
    labels = tick_labels(nice_ticks(low, high, 6))
    assert len(set(labels)) == len(labels), labels
    assert all(len(label) <= 8 for label in labels), labels
    decimals = {len(label.split(".")[1].rstrip("kMG").split("e")[0])
                for label in labels if "." in label}
    assert len(decimals) <= 1, labels
    assert not any(re.search(r"\d{9,}", label) for label in labels), labels


def test_labels_read_as_a_person_writes_them():
    assert tick_labels(nice_ticks(0.1, 0.3, 5)) == ["0.10", "0.15", "0.20", "0.25", "0.30"]
    assert tick_labels(nice_ticks(0, 1e6, 6)) == ["0", "0.2M", "0.4M", "0.6M", "0.8M", "1.0M"]
    assert tick_labels(nice_ticks(1e-7, 3e-6, 6)) == ["0", "1e-6", "2e-6", "3e-6"]
    assert tick_labels(nice_ticks(-3, 7, 5)) == ["-5", "0", "5", "10"]


def test_cycle_ticks_are_whole_numbers():
    assert nice_ticks(0, 1, 6, integer=True) == [0, 1]
    assert nice_ticks(0, 2, 6, integer=True) == [0, 1, 2]
    assert nice_ticks(3, 3, 6, integer=True) == [2, 3, 4]
    for high in (2, 3, 7, 13, 240, 10_000):
        ticks = nice_ticks(1, high, 10, integer=True)
        assert all(t == int(t) for t in ticks) and len(ticks) <= 10
        assert len(set(tick_labels(ticks))) == len(ticks)


def test_bounds_that_are_not_finite_are_refused():
    with pytest.raises(ValueError):
        nice_ticks(0, math.inf)
    with pytest.raises(ValueError):  # each finite, their difference not
        nice_ticks(-1.7e308, 1.7e308)


def test_values_at_the_float_limit_still_get_an_axis():
    # A loss of 1.7e308 next to -1.7e308 once looped for ever looking for a step (the span is inf).
    chart = line_chart("loss", [(1, 1.0), (2, 1.7e308), (3, -1.7e308)])
    svg = str(chart.svg)
    assert svg.count('class="dot') == 3 and "nan" not in svg.lower() and "inf" not in svg.lower()
    assert "1.7e+308" in svg  # the tooltip keeps the true value
    assert all(len(label) <= 8 for label in chart.y_labels), chart.y_labels


def _label_boxes(svg: str, axis: str) -> list[tuple[float, str]]:
    return [(float(x), label) for x, label in re.findall(
        rf'<text class="tick {axis}-tick" x="([\d.]+)"[^>]*>([^<]*)</text>', svg)]


def test_a_long_run_gets_few_enough_cycle_ticks_not_to_overlap():
    chart = line_chart("loss", [(c, 1 / c) for c in range(1, 4001)])
    boxes = _label_boxes(str(chart.svg), "x")
    assert 2 <= len(boxes) <= 10 and [label for _, label in boxes] == chart.x_labels
    for (x1, a), (x2, b) in zip(boxes, boxes[1:], strict=False):
        assert x2 - x1 >= (len(a) + len(b)) / 2 * 6.5, (a, b)  # half of each label's width


def test_non_finite_values_are_left_out_and_the_svg_is_escaped():
    chart = line_chart("<loss>", [(1, 2.0), (2, math.nan), (3, math.inf), (4, 1.0)])
    svg = str(chart.svg)
    assert svg.count('class="dot') == 2 and "<loss>" not in svg and "&lt;loss&gt;" in svg
    assert "nan" not in svg.lower() and "inf" not in svg.lower()
    assert 'class="axis-caption x-caption"' in svg and ">cycle<" in svg


def test_counting_charts_start_at_zero_and_lines_get_their_own_class():
    chart = multi_line_chart(
        "routes", [Line("alice", [(-2, 5), (-1, 6)]), Line("bob", [(-2, 9), (-1, 10)])],
        x_caption="minutes ago", y_caption="per minute", y_from_zero=True, x_range=(-60, 0),
        x_label=lambda v: f"{abs(v):g}")
    assert chart.y_labels[0] == "0"
    assert "series-0" in chart.svg and "series-1" in chart.svg
    assert chart.x_labels[0] == "60" and chart.x_labels[-1] == "0"
    assert "no data yet" in str(line_chart("empty", []).svg)
