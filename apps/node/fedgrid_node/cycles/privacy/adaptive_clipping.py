"""Adaptive clipping: the clip follows a chosen quantile of the update norms.

Andrew, Thakkar, McMahan, Ramaswamy, "Differentially Private Learning with Adaptive Clipping",
NeurIPS 2021. https://arxiv.org/abs/1905.03871 — each cycle counts the updates that were within
the clip, adds Gaussian noise σ_b to the count (so the count is private too), and moves the clip
geometrically towards the target quantile γ:

    b̄ = (Σ bᵢ + N(0, σ_b²)) / m,    C ← C · exp(−η_C · (b̄ − γ))

m is the expected number of reports (``max_diffs``), as in the paper. The raw count is never
published: only the next clip, which is computed from the noised count.
"""

from __future__ import annotations

import math

import numpy as np


def default_count_stddev(expected_reports: int) -> float:
    """The paper's recommendation: σ_b = m / 20."""
    return expected_reports / 20


def next_clip(clip: float, unclipped: int, expected_reports: int, *, target_quantile: float,
              learning_rate: float, count_stddev: float, rng: np.random.Generator) -> float:
    noised_fraction = (unclipped + rng.normal(0.0, count_stddev)) / expected_reports
    return clip * math.exp(-learning_rate * (noised_fraction - target_quantile))
