"""Coordinate-wise median.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018. https://arxiv.org/abs/1803.01498 — every coordinate of the result
is the median of that coordinate over the cycle's updates, so fewer than half of the devices
cannot move it outside the range of the honest values. Unweighted, as in the paper; with an even
number of reports a coordinate is the mean of its two middle values (numpy's median).
"""

from __future__ import annotations

import numpy as np

from .base import CoordinateWiseAggregator


class Median(CoordinateWiseAggregator):
    name = "median"

    def combine(self, block: np.ndarray) -> np.ndarray:
        return np.median(block, axis=0)
