"""The mean of the cycle's diffs, folded as reports arrive.

- Without a norm bound: FedAvg's num_samples-weighted mean. McMahan, Moore, Ramage, Hampson,
  Agüera y Arcas, "Communication-Efficient Learning of Deep Networks from Decentralized Data",
  AISTATS 2017. https://arxiv.org/abs/1602.05629
- With ``norm_bound``: each update is clipped to that L2 norm first (norm_bound.py, Sun et al.
  2019) and the mean is unweighted, so one device moves the average by at most
  ``norm_bound / reports`` however large a num_samples it claims.
"""

from __future__ import annotations

from .base import StreamingAggregator


class Mean(StreamingAggregator):
    name = "mean"

    def __init__(self, *, weighted: bool) -> None:
        self.weighted = weighted
