"""Float updates to integers mod 2^m and back.

Quantise (device): clip each coordinate x to [-c, c], scale to s = (x + c) (q - 1) / (2c), a real
in [0, q - 1], and round stochastically: floor(s) + 1 with probability s - floor(s), else floor(s).
Stochastic rounding is unbiased (E[round(s)] = s), so the rounding errors of many devices cancel
on average instead of adding up in one direction; each coordinate is off by less than one step
2c / (q - 1) per device. The randomness is the device's own: nobody needs to reproduce it.

Dequantise (Node): the sum S of n quantised inputs is an integer below n (q - 1) < modulus (the
cohort bound in params.py), so it never wrapped, and sum_i x_i ~ S 2c / (q - 1) - n c.
"""

from __future__ import annotations

import numpy as np

from .params import SecAggParams


def step(params: SecAggParams) -> float:
    """One quantisation step in update units: the most a coordinate moves in rounding."""
    return 2.0 * params.clipping_range / (params.quantization_range - 1)


def quantize(values: np.ndarray, params: SecAggParams, rng: np.random.Generator) -> np.ndarray:
    """A flat float vector -> uint32 integers in [0, quantization_range)."""
    c = params.clipping_range
    scaled = (np.clip(np.asarray(values, dtype=np.float64), -c, c) + c) / step(params)
    floor = np.floor(scaled)
    rounded = floor + (rng.random(scaled.shape) < (scaled - floor))
    # (x + c) / step can exceed q - 1 by a rounding hair at x = c: keep it in range.
    return np.minimum(rounded, params.quantization_range - 1).astype(np.uint32)


def dequantize_sum(total: np.ndarray, count: int, params: SecAggParams) -> np.ndarray:
    """The unmasked sum of `count` quantised inputs -> the (approximate) sum of their floats."""
    return np.asarray(total, dtype=np.float64) * step(params) - count * params.clipping_range
