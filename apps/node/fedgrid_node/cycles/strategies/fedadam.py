"""FedAdam: ``v ← β2·v + (1 − β2)·Δ²``.

Reddi et al., "Adaptive Federated Optimization", ICLR 2021, Algorithm 2.
https://arxiv.org/abs/2003.00295 (shared update rule in `adaptive.py`).
"""

from __future__ import annotations

import numpy as np

from .adaptive import AdaptiveStrategy


class FedAdam(AdaptiveStrategy):
    def __init__(self, server_learning_rate: float = 0.01, beta_1: float = 0.9,
                 beta_2: float = 0.99, tau: float = 1e-3):
        super().__init__(server_learning_rate, beta_1, beta_2, tau)

    def second_moment(self, v: np.ndarray, delta_squared: np.ndarray) -> np.ndarray:
        return self.beta_2 * v + (1.0 - self.beta_2) * delta_squared
