"""Which cycles' losses look absurd: the dashboard marks them so a person looks at the run.

The rule (docs/operations.md, "Dashboards"), applied to the `loss` the devices reported for each closed
cycle (the sample-weighted mean the cycle recorded), in cycle order:

- **not finite**: the loss is NaN or infinite, or the cycle was abandoned because its aggregate
  was not finite (the devices' updates summed to NaN/inf);
- **jumped**: the loss is more than `JUMP_FACTOR` (10) times the median loss of the up to
  `JUMP_WINDOW` (5) previous cycles that have a finite loss. The median, not the last value, so
  one earlier spike neither hides the next one nor makes the recovery after it look fine twice.
  A first cycle has nothing to compare with, and a median at or below zero (a loss that is a
  negative log-likelihood, say) gives no scale, so neither is judged by this part of the rule.

Only ever a warning on the page: the Node does not stop or reject anything because of it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

JUMP_FACTOR = 10.0
JUMP_WINDOW = 5
NOT_FINITE_AGGREGATE = "aggregate_not_finite"
RULE = (f"non-finite, or over {JUMP_FACTOR:g}× the median loss of the previous "
        f"{JUMP_WINDOW} cycles")


def _loss(figures: dict[str, Any]) -> float | None:
    value = (figures.get("client_metrics") or {}).get("loss")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def loss_warnings(cycles: Iterable[dict[str, Any]]) -> dict[int, str]:
    """Cycle sequence → why its loss is absurd, for the closed cycles' figures in cycle order."""
    warnings: dict[int, str] = {}
    previous: list[float] = []
    for figures in cycles:
        sequence = figures["sequence"]
        loss = _loss(figures)
        if figures.get("abandoned_because") == NOT_FINITE_AGGREGATE:
            warnings[sequence] = "the aggregate of the devices' updates was not finite"
        if loss is None:
            continue
        if not math.isfinite(loss):
            warnings[sequence] = f"the reported loss is {loss}"
            continue
        if previous:
            median = statistics.median(previous[-JUMP_WINDOW:])
            if median > 0 and loss > JUMP_FACTOR * median:
                warnings.setdefault(
                    sequence,
                    f"the loss {loss:.4g} is {_times(loss / median)} the median {median:.4g} of the "
                    f"previous {min(len(previous), JUMP_WINDOW)} cycles",
                )
        previous.append(loss)
    return warnings


def _times(ratio: float) -> str:
    # "5,000×", not "5e+03×"; small ratios keep a decimal ("10.1×").
    return f"{ratio:,.0f}×" if ratio >= 100 else f"{ratio:.3g}×"
