"""The interface every server strategy implements."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np

Tensors = Mapping[str, np.ndarray]


class StrategyConfigError(ValueError):
    """A strategy's options are unknown or out of range."""


class Strategy(ABC):
    """Computes the next parameters from the current ones and the cycle's average diff.

    Strategies with memory (momentum, Adam moments) keep it in ``state``: named float32 arrays
    that the engine stores with each checkpoint, so a restarted Node continues exactly.
    """

    @abstractmethod
    def step(
        self, params: Tensors, average_diff: Tensors, state: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Return (new params, new state). Must not modify its inputs."""


def check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise StrategyConfigError(f"{name} must be a positive number")
    return float(value)


def check_unit_interval(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise StrategyConfigError(f"{name} must be in [0, 1)")
    return float(value)
