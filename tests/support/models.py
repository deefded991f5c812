"""Small real models for the Node's tests: a compiled plan and its checkpoint, built once."""

from __future__ import annotations

import uuid
from functools import cache

import numpy as np

from fedgrid_plans import tensors


@cache
def logistic_regression() -> tuple[bytes, bytes]:
    """(plan file bytes, checkpoint bytes) of a 64 -> 10 logistic regression (digits-sized)."""
    import torch

    from fedgrid_plans.compiler import compile_plan

    torch.manual_seed(0)
    compiled = compile_plan(
        torch.nn.Linear(64, 10),
        loss="cross_entropy",
        example_batch=(np.zeros((4, 64), np.float32), np.zeros(4, np.int64)),
    )
    return compiled.to_bytes(), tensors.encode(compiled.checkpoint())


def unique_name(prefix: str = "model") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def random_diff(checkpoint: bytes, seed: int, scale: float = 0.01) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        name: (rng.standard_normal(value.shape) * scale).astype(value.dtype)
        for name, value in tensors.decode(checkpoint).items()
    }
