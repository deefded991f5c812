"""Line charts as inline SVG, drawn on the server: no chart library, no CDN, works without JS."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Series:
    """A further line on a chart (e.g. held-out test accuracy beside the clients' accuracy)."""

    name: str  # also its CSS class: "test", "federated"
    points: list[tuple[float, float, int, float]]
    path: str
    last: float | None


@dataclass
class LineChart:
    title: str
    width: int
    height: int
    points: list[tuple[float, float, int, float]]  # (x px, y px, cycle, value)
    path: str
    y_ticks: list[tuple[float, str]]  # (y px, label)
    x_ticks: list[tuple[float, str]]
    left: int
    bottom: int
    right: int
    top: int
    last: float | None
    extra: list[Series] = field(default_factory=list)


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000 or magnitude < 0.001:
        return f"{value:.2e}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _finite(series: list[tuple[int, float]]) -> list[tuple[int, float]]:
    return [(c, v) for c, v in series if isinstance(v, int | float) and math.isfinite(v)]


def line_chart(title: str, series: list[tuple[int, float]], *, width: int = 520,
               height: int = 190,
               extra: dict[str, list[tuple[int, float]]] | None = None) -> LineChart:
    """`series`: (cycle number, value) pairs in cycle order; non-finite values are skipped.
    `extra`: further named series drawn on the same axes."""
    series = _finite(series)
    others = {name: _finite(values) for name, values in (extra or {}).items()}
    others = {name: values for name, values in others.items() if values}
    left, right, top, bottom = 54, 14, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    everything = series + [pair for values in others.values() for pair in values]
    if not everything:
        return LineChart(title, width, height, [], "", [], [], left, height - bottom,
                         width - right, top, None)
    xs = [c for c, _ in everything]
    ys = [v for _, v in everything]
    x_min, x_max = min(xs), max(xs)
    y_min, y_max = min(ys), max(ys)
    if y_max - y_min < 1e-12:
        pad = abs(y_max) * 0.1 or 1.0
        y_min, y_max = y_min - pad, y_max + pad
    else:
        pad = (y_max - y_min) * 0.08
        y_min, y_max = y_min - pad, y_max + pad

    def px(cycle: float) -> float:
        if x_max == x_min:
            return left + plot_w / 2
        return left + (cycle - x_min) / (x_max - x_min) * plot_w

    def py(value: float) -> float:
        return top + (1 - (value - y_min) / (y_max - y_min)) * plot_h

    def plotted(values: list[tuple[int, float]]) -> tuple[list, str]:
        dots = [(round(px(c), 1), round(py(v), 1), c, v) for c, v in values]
        return dots, " ".join(f"{x},{y}" for x, y, _, _ in dots)

    points, path = plotted(series)
    lines = [Series(name, *plotted(values), values[-1][1]) for name, values in others.items()]
    y_ticks = [(round(py(y_min + (y_max - y_min) * i / 4), 1), _fmt(y_min + (y_max - y_min) * i / 4))
               for i in range(5)]
    step = max(1, math.ceil((x_max - x_min + 1) / 8))
    x_ticks = [(round(px(c), 1), str(c)) for c in range(x_min, x_max + 1, step)]
    return LineChart(title, width, height, points, path, y_ticks, x_ticks, left,
                     height - bottom, width - right, top, series[-1][1] if series else None,
                     lines)
