"""DP-FedAvg: the noised mean of clipped updates.

McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent Language Models",
ICLR 2018. https://arxiv.org/abs/1710.06963 — each update is clipped to L2 norm ``S``, the
clipped updates are summed with *fixed* weights (here 1 each: ``num_samples`` is claimed by the
device and would change the sensitivity), the sum is divided by the *expected* number of reports
``qN`` (here ``max_diffs``; the paper's fixed-denominator estimator), and Gaussian noise of
standard deviation ``z·S / qN`` is added. Dividing by the expected rather than the actual count
keeps the sensitivity at ``S / qN`` whatever the count; a cycle closed at its deadline with fewer
reports is therefore averaged towards zero.

With ``clip_at: node`` the Node clips, so it sees every unclipped update (the trust model without
secure aggregation). With ``clip_at: device`` (secure aggregation) each device clips its own
update before masking it (fedgrid_protocol.secagg.clip) and the Node adds the same noise to the
unmasked sum of the survivors: the noise protects the released checkpoints, not the sum from
the Node, which sees it unnoised (docs/secure-aggregation.md, "Differential privacy").
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

NOISE_CHUNK = 1024 * 1024  # values of noise drawn at a time: no model-sized float64 temporary


def update_noise_multiplier(noise_multiplier: float, clipped_count_stddev: float | None) -> float:
    """The noise multiplier of the update itself. With adaptive clipping, part of the privacy
    goes to the noised count: Andrew et al. 2021, Theorem 1, ``z_Δ = (z⁻² − (2σ_b)⁻²)^−½``."""
    if clipped_count_stddev is None:
        return noise_multiplier
    remaining = noise_multiplier ** -2 - (2 * clipped_count_stddev) ** -2
    if remaining <= 0:
        raise ValueError("noise_multiplier must be below 2 × clipped_count_stddev")
    return remaining ** -0.5


def noised_mean(sums: Mapping[str, np.ndarray], expected_reports: int, stddev: float,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``sums / expected_reports`` plus N(0, stddev²) on every coordinate (float64)."""
    if expected_reports < 1 or not math.isfinite(stddev) or stddev < 0:
        raise ValueError("expected_reports must be ≥ 1 and stddev finite and ≥ 0")
    result = {}
    for name, total in sums.items():
        average = np.asarray(total, dtype=np.float64) / expected_reports
        flat = average.reshape(-1)
        for start in range(0, flat.size, NOISE_CHUNK):
            piece = flat[start:start + NOISE_CHUNK]
            piece += rng.normal(0.0, stddev, size=piece.size)
        result[name] = average
    return result
