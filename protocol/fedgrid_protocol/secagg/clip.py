"""A device's L2 clip of its update before quantisation (DP-FedAvg with ``clip_at: device``).

Under secure aggregation the Node never sees an update, so it cannot clip one: each device
scales its whole update (every tensor, flattened in the wire order) by min(1, C / ‖update‖₂)
before quantising and masking it, C being the accepted answer's
``secure_aggregation.clip_norm``. The norm is taken in float64 over the float64 values; SDKs
may sum in a different order (numpy sums pairwise, JavaScript in sequence), which moves the
scale by a few units in the last place, a billion times below one quantisation step.
plans/conformance/secagg_clip/ holds the vector both SDKs are held to.
"""

from __future__ import annotations

import math

import numpy as np


def clip_to_norm(update: np.ndarray, clip_norm: float | None) -> np.ndarray:
    """``update`` (flat) scaled to L2 norm at most ``clip_norm`` (None: returned as float64).

    A non-finite update has no norm to scale by: ValueError, rather than masking NaNs."""
    flat = np.asarray(update, dtype=np.float64).reshape(-1)
    if clip_norm is None:
        return flat
    norm = math.sqrt(float(np.dot(flat, flat)))
    if not math.isfinite(norm):
        raise ValueError("the update is not finite: it cannot be clipped for secure aggregation")
    if norm <= clip_norm:
        return flat
    return flat * (clip_norm / norm)
