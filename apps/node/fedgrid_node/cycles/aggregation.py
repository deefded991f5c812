"""Streaming, num_samples-weighted aggregation of diffs.

Each report is folded into a running sum as it arrives, so memory is O(model) however many
devices report (PyGrid loaded every diff of a cycle into memory and averaged them unweighted).
The sum is kept in float64 so that the order reports arrive in does not change the result beyond
float64 rounding, and a restart that re-folds the stored diffs gives the same checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class RunningWeightedSum:
    """sum_i n_i * diff_i and sum_i n_i over the reports folded so far."""

    def __init__(self, spec: Mapping[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        self.sums = {name: np.zeros(shape, dtype=np.float64) for name, (shape, _) in spec.items()}
        # One scratch buffer per tensor, reused by every fold: no model-sized allocation per report.
        self._scratch = {name: np.empty(shape, dtype=np.float64) for name, (shape, _) in spec.items()}
        self.total_samples = 0
        self.count = 0

    def fold(self, diff: Mapping[str, np.ndarray], num_samples: int) -> None:
        weight = float(num_samples)
        for name, total in self.sums.items():
            scratch = self._scratch[name]
            # dtype= matters: a float32 diff times a Python float is computed in float32 (NEP 50)
            # and only then widened, losing the precision the float64 sum is there to keep.
            np.multiply(diff[name], weight, out=scratch, dtype=np.float64)
            np.add(total, scratch, out=total)
        self.total_samples += num_samples
        self.count += 1

    def average(self) -> dict[str, np.ndarray]:
        if self.total_samples <= 0:
            raise ValueError("no reports were folded; there is nothing to average")
        return {name: total / self.total_samples for name, total in self.sums.items()}
