"""FedAvgM: FedAvg with server momentum.

Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
Classification", 2019. https://arxiv.org/abs/1909.06335

With the cycle's average diff g (start − trained, a pseudo-gradient):
``v ← β·v + g``, ``x ← x − η·v``. Momentum helps most when device data is non-IID.
"""

from __future__ import annotations

import numpy as np

from .base import Strategy, Tensors, check_positive, check_unit_interval


class FedAvgM(Strategy):
    def __init__(self, server_learning_rate: float = 1.0, server_momentum: float = 0.9) -> None:
        self.server_learning_rate = check_positive("server_learning_rate", server_learning_rate)
        self.server_momentum = check_unit_interval("server_momentum", server_momentum)

    def step(self, params: Tensors, average_diff: Tensors, state: dict[str, np.ndarray]):
        new_params, new_state = {}, {}
        for name, value in params.items():
            velocity = self.server_momentum * state.get(f"velocity/{name}", 0.0) + average_diff[name]
            new_state[f"velocity/{name}"] = np.asarray(velocity, dtype=np.float32)
            new_params[name] = (value - self.server_learning_rate * velocity).astype(value.dtype)
        return new_params, new_state
