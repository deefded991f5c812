"""FedYogi: ``v ← v − (1 − β2)·Δ²·sign(v − Δ²)``.

Reddi et al., "Adaptive Federated Optimization", ICLR 2021, Algorithm 2; the Yogi rule is from
Zaheer et al., "Adaptive Methods for Nonconvex Optimization", NeurIPS 2018. Unlike Adam, v grows
or shrinks additively, so a burst of large updates does not blow the effective step up.
https://arxiv.org/abs/2003.00295 (shared update rule in `adaptive.py`).
"""

from __future__ import annotations

import numpy as np

from .adaptive import AdaptiveStrategy


class FedYogi(AdaptiveStrategy):
    def __init__(self, server_learning_rate: float = 0.01, beta_1: float = 0.9,
                 beta_2: float = 0.99, tau: float = 1e-3):
        super().__init__(server_learning_rate, beta_1, beta_2, tau)

    def second_moment(self, v: np.ndarray, delta_squared: np.ndarray) -> np.ndarray:
        return v - (1.0 - self.beta_2) * delta_squared * np.sign(v - delta_squared)
