"""Drive a strategy over several cycles the way the engine does (state stored as safetensors)."""

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
