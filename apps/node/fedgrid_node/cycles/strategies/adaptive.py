"""What FedAdagrad, FedAdam and FedYogi share (Reddi et al. 2021, Algorithm 2).

Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan, "Adaptive Federated
Optimization", ICLR 2021. https://arxiv.org/abs/2003.00295

With Δ the cycle's average model change (trained − start, i.e. the negative of Fedgrid's diff):
``m ← β1·m + (1 − β1)·Δ``, ``v ←`` (the strategy's second-moment rule), ``x ← x + η·m / (√v + τ)``.
``v`` starts at τ² as in the paper; there is no bias correction, as in the paper.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from .base import Strategy, Tensors, check_positive, check_unit_interval


class AdaptiveStrategy(Strategy):
    def __init__(self, server_learning_rate: float, beta_1: float, beta_2: float, tau: float) -> None:
        self.server_learning_rate = check_positive("server_learning_rate", server_learning_rate)
        self.beta_1 = check_unit_interval("beta_1", beta_1)
        self.beta_2 = check_unit_interval("beta_2", beta_2)
        self.tau = check_positive("tau", tau)

    @abstractmethod
    def second_moment(self, v: np.ndarray, delta_squared: np.ndarray) -> np.ndarray:
        """The next v from the previous v and Δ²."""

    def step(self, params: Tensors, average_diff: Tensors, state: dict[str, np.ndarray]):
        new_params, new_state = {}, {}
        for name, value in params.items():
            delta = -np.asarray(average_diff[name], dtype=np.float64)
            m = state.get(f"m/{name}")
            v = state.get(f"v/{name}")
            m = np.zeros_like(delta) if m is None else m.astype(np.float64)
            v = np.full_like(delta, self.tau**2) if v is None else v.astype(np.float64)
            m = self.beta_1 * m + (1.0 - self.beta_1) * delta
            v = self.second_moment(v, delta * delta)
            updated = value + self.server_learning_rate * m / (np.sqrt(v) + self.tau)
            new_params[name] = updated.astype(value.dtype)
            new_state[f"m/{name}"] = m.astype(np.float32)
            new_state[f"v/{name}"] = v.astype(np.float32)
        return new_params, new_state
