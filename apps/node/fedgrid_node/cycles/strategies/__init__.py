"""Server strategies: turn the cycle's weighted-average diff into the next checkpoint.

A diff is ``start - trained`` (what the device moved away from), so a plain step is
``params - server_learning_rate * average_diff``. One strategy per file, paper cited there.
"""

from __future__ import annotations

from typing import Any

from .base import Strategy, StrategyConfigError
from .fedadagrad import FedAdagrad
from .fedadam import FedAdam
from .fedavg import FedAvg
from .fedavgm import FedAvgM
from .fedyogi import FedYogi
from .hosted_averaging_plan import HostedAveragingPlan

STRATEGIES: dict[str, type[Strategy]] = {
    "fedavg": FedAvg,
    "fedavgm": FedAvgM,
    "fedadagrad": FedAdagrad,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "hosted_averaging_plan": HostedAveragingPlan,
}


def build_strategy(settings: dict[str, Any]) -> Strategy:
    """Instantiate ``{"name": ..., **options}``; unknown names/options raise StrategyConfigError."""
    options = dict(settings)
    name = str(options.pop("name", "fedavg")).lower()
    if name not in STRATEGIES:
        raise StrategyConfigError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES)}")
    try:
        return STRATEGIES[name](**options)
    except TypeError as exc:
        raise StrategyConfigError(f"{name}: {exc}") from None


__all__ = ["STRATEGIES", "Strategy", "StrategyConfigError", "build_strategy"]
