"""Drive a strategy over several cycles the way the engine does (state stored as safetensors),
and the paper's equations written out in numpy to compare against."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from fedgrid_plans import tensors

SHAPES = {"w": (3, 2), "b": (2,)}

seeds = st.integers(0, 2**32 - 1)
cycles = st.integers(1, 5)


def random_inputs(seed: int, count: int):
    rng = np.random.default_rng(seed)
    params = {n: rng.standard_normal(s).astype(np.float32) for n, s in SHAPES.items()}
    diffs = [{n: (rng.standard_normal(s) * 0.1).astype(np.float64) for n, s in SHAPES.items()}
             for _ in range(count)]
    return params, diffs


def run(strategy, params, diffs):
    state_bytes = None
    for diff in diffs:
        state = tensors.decode(state_bytes) if state_bytes else {}
        params, state = strategy.step(params, diff, state)
        state_bytes = tensors.encode(state) if state else None
    return params


def reddi_reference(start, diffs, name, *, eta, beta_1, tau, second_moment):
    """Reddi et al. 2021, Algorithm 2, for one tensor: Δ = −diff, m and v from zero and τ²."""
    x = start.astype(np.float64)
    m, v = np.zeros_like(x), np.full_like(x, tau**2)
    for diff in diffs:
        delta = -diff[name]
        m = beta_1 * m + (1 - beta_1) * delta
        v = second_moment(v, delta**2)
        x = x + eta * m / (np.sqrt(v) + tau)
    return x
