"""Coordinate-wise trimmed mean.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018 (Definition 2). https://arxiv.org/abs/1803.01498 — for every
coordinate, drop the ``⌊β·m⌋`` largest and ``⌊β·m⌋`` smallest of the ``m`` values and average the
rest; with β at least the fraction of malicious devices, none of their extreme values is left.
Unweighted, as in the paper.
"""

from __future__ import annotations

import numpy as np

from .base import CoordinateWiseAggregator


class TrimmedMean(CoordinateWiseAggregator):
    name = "trimmed_mean"

    def __init__(self, trim_fraction: float) -> None:
        if not 0 <= trim_fraction < 0.5:
            raise ValueError("trim_fraction must be in [0, 0.5)")
        self.trim_fraction = trim_fraction

    def trimmed(self, reports: int) -> int:
        """Values dropped at each end of a coordinate with ``reports`` values."""
        return int(self.trim_fraction * reports)

    def combine(self, block: np.ndarray) -> np.ndarray:
        reports = block.shape[0]
        cut = self.trimmed(reports)
        if cut == 0:
            return block.mean(axis=0, dtype=np.float64)
        kept = np.sort(block, axis=0)[cut:reports - cut]
        return kept.mean(axis=0, dtype=np.float64)
