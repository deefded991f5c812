"""The interface every server strategy implements."""

from __future__ import annotations

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
