"""FedAdagrad: ``v ← v + Δ²``.

Reddi et al., "Adaptive Federated Optimization", ICLR 2021, Algorithm 2.
https://arxiv.org/abs/2003.00295 (shared update rule in `adaptive.py`).
"""

from __future__ import annotations

import numpy as np

from .adaptive import AdaptiveStrategy


class FedAdagrad(AdaptiveStrategy):
    def __init__(self, server_learning_rate: float = 0.1, beta_1: float = 0.0, tau: float = 1e-3):
        super().__init__(server_learning_rate, beta_1, 0.0, tau)

    def second_moment(self, v: np.ndarray, delta_squared: np.ndarray) -> np.ndarray:
        return v + delta_squared
