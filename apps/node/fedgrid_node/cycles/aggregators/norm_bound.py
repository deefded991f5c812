"""Norm bounding: scale each update down to an L2 norm of at most a bound.

Sun, Kairouz, Suresh, McMahan, "Can You Really Backdoor Federated Learning?", 2019.
https://arxiv.org/abs/1911.07963 — clipping every update's norm to a bound M before averaging
limits what one (or a few) malicious devices can inject, and defeats boosted backdoor updates at
little cost to accuracy. The same clipping is DP-FedAvg's sensitivity bound (privacy/).

The norm is over the whole update (every tensor together), computed in float64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

CHUNK = 256 * 1024  # values per step: the squares never need a model-sized temporary


def l2_norm(diff: Mapping[str, np.ndarray]) -> float:
    total = 0.0
    for tensor in diff.values():
        flat = np.asarray(tensor).reshape(-1)
        for start in range(0, flat.size, CHUNK):
            piece = flat[start:start + CHUNK].astype(np.float64)
            total += float(np.dot(piece, piece))
    return math.sqrt(total)


def clip_factor(norm: float, bound: float | None) -> float:
    """The scale that brings an update of L2 norm ``norm`` within ``bound`` (1 when it is)."""
    if bound is None or norm <= bound:
        return 1.0
    return bound / norm
