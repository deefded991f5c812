"""Small line charts as inline SVG, drawn on the server for both dashboards.

No chart library and no CDN: the SVG is written here and works without JavaScript. The axes are
what a person reads first, so they follow fixed rules:

- ticks sit on round values, a step of 1, 2 or 5 times a power of ten (`nice_ticks`), and the
  axis runs from the first tick to the last, so the plot starts and ends on a labelled value;
- every label of one axis has the same number of decimals, just enough for the step
  (`tick_labels`): never ``0.30000000000000004``; large values take k/M/G, tiny ones and those
  past 1000G an exponent;
- there are only as many ticks as fit the axis without labels overlapping (`_fitting_ticks`);
- an axis that counts (rates, Nodes online) starts at 0 (``y_from_zero``), so a line that dips
  from 10 to 9 does not look like a crash;
- each axis carries its unit as a caption ("cycle", "minutes ago", "per minute").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

# Tick labels are drawn at 10 px; this is a generous width of one character there.
CHAR_PX = 6.5
LABEL_GAP_PX = 10
# Lines of a multi-series chart are coloured by class (series-0 … series-5 in dashboard.css: the
# pages' Content-Security-Policy refuses inline styles); a 7th line reuses the 1st colour.
SERIES_CLASSES = 6
# Values are drawn clamped to ±1e300 (their tooltip keeps the true figure): the difference of two
# values near the float limit overflows to infinity and no axis can be fitted around it.
MAX_PLOTTED = 1e300


def nice_step(span: float, max_ticks: int) -> float:
    """The smallest step of 1, 2 or 5 × 10^k that covers `span` in at most `max_ticks` ticks."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    intervals = max(1, max_ticks - 1)
    raw = span / intervals
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        step = factor * power
        # The rounding of `raw` can leave it a hair above a step it equals.
        if step >= raw * (1 - 1e-9):
            return step
    return 10 * power


def nice_ticks(low: float, high: float, max_ticks: int = 6, *, integer: bool = False
               ) -> list[float]:
    """Round tick values from at or below `low` to at or above `high`, at most `max_ticks` (3 or
    more).

    `integer`: the ticks are whole numbers (cycle numbers), so the step is at least 1.
    """
    if not math.isfinite(high - low):
        raise ValueError("ticks need finite bounds whose difference is finite")
    if high < low:
        low, high = high, low
    # A range that is one value, or differs only in the far decimals (a loss that is flat to
    # 1e-9), is widened to a thousandth of its size: the axis then shows a flat line with short
    # labels instead of ten-digit ones that only tell floating-point noise apart.
    # One value alone gets a tenth of itself on each side, so it sits mid-axis.
    magnitude = max(abs(low), abs(high))
    least = 1.0 if integer else (magnitude * (0.2 if high == low else 1e-3) or 2.0)
    if high - low < least:
        middle = (low + high) / 2
        low, high = middle - least / 2, middle + least / 2
    # Two ticks cannot cover a range that crosses zero on multiples of one step (-s, 0, s).
    max_ticks = max(3, max_ticks)
    step = nice_step(high - low, max_ticks)
    if integer:
        step = max(1.0, round(step))
    while True:
        first = math.floor(low / step + 1e-9)
        last = math.ceil(high / step - 1e-9)
        if last - first + 1 <= max_ticks:
            break
        # Widening to whole steps added a tick too many: take the next round step.
        step = nice_step(step * 1.0001 * (max_ticks - 1), max_ticks)
        if integer:
            step = max(1.0, round(step))
    # Multiplying whole step counts (never adding steps up) keeps the values round.
    return [_clean(i * step) for i in range(first, last + 1)]


def _clean(value: float) -> float:
    value = float(f"{value:.12g}")
    return 0.0 if value == 0 else value


_SUFFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"))


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """Labels for evenly spaced `ticks`: one number of decimals for all, enough for the step."""
    if not ticks:
        return []
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else (abs(ticks[0]) or 1.0)
    largest = max(abs(t) for t in ticks)
    if 1e4 <= largest < 1e12:
        scale, suffix = next((s, x) for s, x in _SUFFIXES if largest >= s)
        return [_fixed(t / scale, step / scale) + (suffix if t else "") for t in ticks]
    if largest < 1e-3 or largest >= 1e12:
        # A common exponent: "1.5e-5" reads better than 0.000015 and stays short; so does
        # "2e15" for a figure past the G suffix.
        exponent = math.floor(math.log10(largest)) if largest else 0
        scale = 10.0 ** exponent
        return [(_fixed(t / scale, step / scale) + f"e{exponent}") if t else "0" for t in ticks]
    return [_fixed(t, step) for t in ticks]


def _fixed(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text


def format_value(value: float) -> str:
    """One figure for a tooltip or a caption: 4 significant digits, never a 17-digit tail."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


@dataclass(frozen=True)
class Line:
    name: str
    points: list[tuple[float, float]]  # (x, y) in x order; non-finite y values are left out


@dataclass
class LineChart:
    title: str
    lines: list[Line]
    svg: Markup
    x_labels: list[str]
    y_labels: list[str]

    @property
    def last(self) -> float | None:
        """The last value of the first line (the figure shown next to a one-line chart's title)."""
        points = self.lines[0].points if self.lines else []
        return points[-1][1] if points else None


def _clamped(value: float) -> float:
    return max(-MAX_PLOTTED, min(MAX_PLOTTED, value))


def _finite_points(points: Sequence[tuple[float, float | None]]) -> list[tuple[float, float]]:
    return [(x, y) for x, y in points
            if isinstance(y, int | float) and not isinstance(y, bool) and math.isfinite(y)]


def _fitting_ticks(low: float, high: float, length_px: float, label_px: Callable[[str], float],
                   *, integer: bool, most: int) -> tuple[list[float], list[str]]:
    """As many round ticks as fit `length_px` with a gap between neighbouring labels."""
    for count in range(most, 2, -1):
        ticks = nice_ticks(low, high, count, integer=integer)
        labels = tick_labels(ticks)
        widest = max(label_px(label) for label in labels)
        if len(ticks) < 2 or (length_px / (len(ticks) - 1)) >= widest + LABEL_GAP_PX:
            return ticks, labels
    ticks = nice_ticks(low, high, 3, integer=integer)
    return ticks, tick_labels(ticks)


def line_chart(title: str, points: Sequence[tuple[float, float | None]], **options) -> LineChart:
    """One line: `points` are (x, y) pairs in x order (e.g. cycle number, loss)."""
    return multi_line_chart(title, [Line(title, list(points))], **options)


def multi_line_chart(title: str, lines: Sequence[Line], *, x_caption: str = "cycle",
                     y_caption: str = "", integer_x: bool = True, integer_y: bool = False,
                     y_from_zero: bool = False,
                     x_label: Callable[[float], str] | None = None, width: int = 520,
                     height: int = 200, x_range: tuple[float, float] | None = None) -> LineChart:
    """Several lines over one x axis, as inline SVG (`LineChart.svg`).

    `integer_y`: the values are counts (Nodes online), so no tick falls between two whole
    numbers. `x_label` rewrites the x tick labels (e.g. minutes before now as "-15" → "15"); `x_range`
    fixes the x axis (a time window) instead of fitting it to the data.
    """
    lines = [Line(line.name, _finite_points(line.points)) for line in lines]
    left, right, top, bottom = 58, 16, 14, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [x for line in lines for x, _ in line.points]
    ys = [_clamped(y) for line in lines for _, y in line.points]
    if not xs and x_range is None:
        empty = Markup(
            '<svg class="chart-svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
            'aria-label="{t}: no data yet"><text class="tick" x="{cx}" y="{cy}" '
            'text-anchor="middle">no data yet</text></svg>'
        ).format(w=width, h=height, t=title, cx=width / 2, cy=height / 2)
        return LineChart(title, lines, empty, [], [])
    x_low, x_high = x_range if x_range is not None else (min(xs), max(xs))
    y_low, y_high = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if y_from_zero:
        y_low = min(0.0, y_low)
        y_high = max(y_high, 1.0 if y_high <= 0 else y_high)

    x_ticks, x_labels = _fitting_ticks(x_low, x_high, plot_w, lambda s: len(s) * CHAR_PX,
                                       integer=integer_x, most=10)
    if x_label is not None:
        x_labels = [x_label(t) for t in x_ticks]
    # Vertical room per label is one text line (12 px) plus the gap.
    y_ticks, y_labels = _fitting_ticks(y_low, y_high, plot_h, lambda s: 12.0,
                                       integer=integer_y, most=6)
    if x_range is None:
        x_low, x_high = x_ticks[0], x_ticks[-1]
    y_low, y_high = y_ticks[0], y_ticks[-1]

    def px(x: float) -> float:
        return round(left + (x - x_low) / ((x_high - x_low) or 1) * plot_w, 1)

    def py(y: float) -> float:
        return round(top + (1 - (y - y_low) / ((y_high - y_low) or 1)) * plot_h, 1)

    parts = [Markup(
        '<svg class="chart-svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        'aria-label="{t} by {xc}">'
    ).format(w=width, h=height, t=title, xc=x_caption)]
    x_end, y_end = left + plot_w, top + plot_h
    for value, label in zip(y_ticks, y_labels, strict=True):
        y = py(value)
        parts.append(Markup(
            '<line class="grid-line" x1="{l}" x2="{r}" y1="{y}" y2="{y}"></line>'
            '<text class="tick y-tick" x="{tx}" y="{ty}" text-anchor="end">{label}</text>'
        ).format(l=left, r=x_end, y=y, tx=left - 6, ty=y + 3.5, label=label))
    for value, label in zip(x_ticks, x_labels, strict=True):
        if x_range is not None and not x_range[0] <= value <= x_range[1]:
            continue
        x = px(value)
        parts.append(Markup(
            '<line class="axis" x1="{x}" x2="{x}" y1="{b}" y2="{b4}"></line>'
            '<text class="tick x-tick" x="{x}" y="{ty}" text-anchor="middle">{label}</text>'
        ).format(x=x, b=y_end, b4=y_end + 4, ty=y_end + 15, label=label))
    parts.append(Markup(
        '<line class="axis" x1="{l}" x2="{l}" y1="{t}" y2="{b}"></line>'
        '<line class="axis" x1="{l}" x2="{r}" y1="{b}" y2="{b}"></line>'
        '<text class="axis-caption x-caption" x="{cx}" y="{cy}" text-anchor="middle">{xc}</text>'
    ).format(l=left, t=top, b=y_end, r=x_end, cx=left + plot_w / 2, cy=height - 6, xc=x_caption))
    if y_caption:
        parts.append(Markup(
            '<text class="axis-caption y-caption" x="{x}" y="{y}" text-anchor="middle" '
            'transform="rotate(-90 {x} {y})">{yc}</text>'
        ).format(x=12, y=top + plot_h / 2, yc=y_caption))
    for index, line in enumerate(lines):
        series = f"series-{index % SERIES_CLASSES}"
        points = [(px(x), py(_clamped(y)), x, y) for x, y in line.points]
        parts.append(Markup(
            '<polyline class="line {s}" data-series="{n}" points="{p}"></polyline>'
        ).format(s=series, n=line.name, p=" ".join(f"{x},{y}" for x, y, _, _ in points)))
        for x, y, x_value, y_value in points:
            parts.append(Markup(
                '<circle class="dot {s}" cx="{x}" cy="{y}" r="3">'
                '<title>{n} · {xc} {xv}: {yv}</title></circle>'
            ).format(s=series, x=x, y=y, n=line.name, xc=x_caption,
                     xv=x_label(x_value) if x_label else format_value(x_value),
                     yv=format_value(y_value)))
    parts.append(Markup("</svg>"))
    return LineChart(title, lines, Markup("").join(parts), x_labels, y_labels)


def legend(chart: LineChart) -> Markup:
    """The names of a multi-line chart's lines in their colours (empty for one line)."""
    if len(chart.lines) < 2:
        return Markup("")
    items = [
        Markup('<span class="legend-item"><span class="swatch series-{i}"></span>{n}</span>'
               ).format(i=i % SERIES_CLASSES, n=line.name)
        for i, line in enumerate(chart.lines)
    ]
    return Markup('<div class="legend">{}</div>').format(Markup(" ").join(items))

