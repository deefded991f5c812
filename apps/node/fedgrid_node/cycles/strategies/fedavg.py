"""FedAvg: Federated Averaging.

McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of Deep
Networks from Decentralized Data", AISTATS 2017. https://arxiv.org/abs/1602.05629

The server applies the num_samples-weighted average of the clients' diffs, optionally scaled by a
server learning rate (1.0 is the paper's algorithm; Reddi et al. 2021 call the general form
FedAvg with server learning rate η).
"""

from __future__ import annotations

import numpy as np

from .base import Strategy, Tensors, check_positive


class FedAvg(Strategy):
    def __init__(self, server_learning_rate: float = 1.0) -> None:
        self.server_learning_rate = check_positive("server_learning_rate", server_learning_rate)

    def step(self, params: Tensors, average_diff: Tensors, state: dict[str, np.ndarray]):
        new_params = {
            name: (value - self.server_learning_rate * average_diff[name]).astype(value.dtype)
            for name, value in params.items()
        }
        return new_params, state
