"""The interface every aggregator implements: how the cycle's diffs become one diff.

The aggregator runs before the server strategy (strategies/), which turns its result into the
next checkpoint, so any aggregator composes with any optimizer (FedAvg, FedAdam, ...).

An aggregator either *streams* (each report is folded into the running sum as it arrives; memory
O(model)) or *keeps the reports*: the cycle's stored diffs are read back at the close and combined
coordinate-wise, a block of coordinates at a time (stored_reports.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Aggregator(ABC):
    name: str
    streams: bool
    # num_samples-weighted (FedAvg) or one vote per report. num_samples is claimed by the device:
    # a rule meant to bound one device's influence must not let it buy weight with a large claim.
    weighted: bool

    def combine(self, block: np.ndarray) -> np.ndarray:
        """Non-streaming rules: ``block`` is (reports, coordinates) float32; one value per column."""
        raise NotImplementedError(f"{self.name} streams; it has no coordinate-wise rule")


class StreamingAggregator(Aggregator):
    streams = True


class CoordinateWiseAggregator(Aggregator):
    streams = False
    weighted = False

    @abstractmethod
    def combine(self, block: np.ndarray) -> np.ndarray: ...
