"""Aggregators: how a cycle's diffs become the one diff the server strategy steps with.

Chosen by ``server_config.aggregator`` (``mean``, ``median``, ``trimmed_mean``), with
``trim_fraction`` and ``norm_bound``; separate from ``server_config.strategy`` (the server
optimizer), so a robust rule composes with FedAdam as well as with FedAvg. One rule per file,
paper cited there. ``differential_privacy`` (privacy/) uses the unweighted clipped mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .base import Aggregator
from .mean import Mean
from .median import Median
from .norm_bound import clip_factor, l2_norm
from .trimmed_mean import TrimmedMean


def build_aggregator(config) -> Aggregator:
    """The aggregator a ServerConfig asks for."""
    if config.aggregator == "median":
        return Median()
    if config.aggregator == "trimmed_mean":
        return TrimmedMean(config.trim_fraction)
    bounded = config.norm_bound is not None or config.differential_privacy is not None
    return Mean(weighted=not bounded)


def aggregation_problem(config) -> tuple[str, str] | None:
    """(field, message) when the aggregation settings do not go together; None when they do."""
    dp = config.differential_privacy
    if config.strategy.get("name") == "hosted_averaging_plan":
        given = [key for key, value in (("aggregator", config.aggregator != "mean"),
                                        ("norm_bound", config.norm_bound is not None),
                                        ("differential_privacy", dp is not None)) if value]
        if given:
            return (f"server_config.{given[0]}",
                    f"server_config.{given[0]} cannot be given with the hosted_averaging_plan "
                    "strategy: the plan does its own averaging")
    if config.secure_aggregation is not None:
        # The Node sees the survivors' sum, never an update: a rule that needs each one (or a
        # plan that averages them itself) cannot apply, and must not seem to.
        given = [key for key, value in (
            ("aggregator", config.aggregator != "mean"),
            ("norm_bound", config.norm_bound is not None),
            ("strategy", config.strategy.get("name") == "hosted_averaging_plan")) if value]
        if given:
            return (f"server_config.{given[0]}",
                    f"server_config.{given[0]} cannot be given with secure_aggregation: the "
                    "Node sees only the sum of the updates, never one of them (clip on the "
                    "devices with differential_privacy.clip_at: device)")
    if dp is None:
        return None
    if config.aggregator != "mean":
        return ("server_config.aggregator",
                "server_config.aggregator must be mean with differential_privacy: DP-FedAvg's "
                "guarantee is for the mean of clipped updates")
    if config.norm_bound is not None:
        return ("server_config.norm_bound",
                "server_config.norm_bound cannot be given with differential_privacy, which "
                "clips every update to differential_privacy.clip")
    return None


@dataclass(frozen=True)
class FoldRule:
    """How one cycle's reports enter its running sum: the weight, and the clip (norm_bound, or
    differential privacy's clip of this cycle). Pure, so it may run on the thread pool."""

    aggregator: Aggregator
    clip: float | None = None

    def prepare(self, diff: Mapping[str, np.ndarray], num_samples: int) -> tuple[int, float, bool]:
        """(weight, coefficient of the diff in the sum, whether the update was within the clip)."""
        weight = num_samples if self.aggregator.weighted else 1
        if self.clip is None:
            return weight, float(weight), True
        norm = l2_norm(diff)
        return weight, weight * clip_factor(norm, self.clip), norm <= self.clip


__all__ = ["Aggregator", "FoldRule", "Mean", "Median", "TrimmedMean", "aggregation_problem",
           "build_aggregator", "clip_factor", "l2_norm"]
