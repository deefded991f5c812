"""What a report must satisfy before it is stored: the diff, num_samples and metrics.

Pure checks (no database, no clock), run on gevent's thread pool for the diff.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedgrid_plans import tensors
from fedgrid_protocol.errors import ApiError

MAX_NUM_SAMPLES = 2**31 - 1
MAX_METRICS = 32
# The largest |num_samples x diff value| a report may carry. The running sum adds such products
# in float32 groups of 16 (aggregation.py), so 16 x 1e36 stays far below float32's 3.4e38: a
# finite report can never turn the sum, and so the checkpoint, into infinity.
MAX_WEIGHTED_MAGNITUDE = 1e36

TensorSpec = dict[str, tuple[tuple[int, ...], np.dtype]]


def check_num_samples(num_samples: Any) -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or not (
        1 <= num_samples <= MAX_NUM_SAMPLES
    ):
        raise ApiError("num_samples_invalid", "num_samples must be a positive integer", 400)
    return num_samples


def check_diff(spec: TensorSpec, data: bytes, num_samples: int) -> dict[str, np.ndarray]:
    """Decode a diff and check it against the model: names, shapes, dtypes, finite and in range."""
    try:
        diff = tensors.decode(data)
    except tensors.TensorFormatError as exc:
        raise ApiError("diff_malformed", f"diff is not a safetensors buffer: {exc}", 400) from None
    missing = sorted(set(spec) - set(diff))
    unexpected = sorted(set(diff) - set(spec))
    if missing or unexpected:
        raise ApiError(
            "diff_mismatch",
            "diff tensors do not match the model's parameters",
            400,
            details={"missing": missing, "unexpected": unexpected},
        )
    limit = MAX_WEIGHTED_MAGNITUDE / num_samples
    for name, (shape, dtype) in spec.items():
        tensor = diff[name]
        if tensor.shape != shape or tensor.dtype != dtype:
            raise ApiError(
                "diff_mismatch",
                f"diff tensor {name!r} is {tensor.dtype}{list(tensor.shape)}, "
                f"the model's is {dtype}{list(shape)}",
                400,
                details={"tensor": name},
            )
        if tensor.dtype.kind != "f" or tensor.size == 0:
            continue
        # max and min propagate NaN and show infinities, without a temporary array per tensor.
        largest, smallest = float(tensor.max()), float(tensor.min())
        if not (np.isfinite(largest) and np.isfinite(smallest)):
            raise ApiError(
                "diff_not_finite", f"diff tensor {name!r} holds NaN or infinity", 400,
                details={"tensor": name},
            )
        if max(largest, -smallest) > limit:
            raise ApiError(
                "diff_out_of_range",
                f"diff tensor {name!r} holds values up to {max(largest, -smallest):.3g}; with "
                f"num_samples {num_samples} a diff may hold at most {limit:.3g} in magnitude",
                400,
                details={"tensor": name, "limit": limit},
            )
    return diff


def check_metrics(metrics: Any) -> dict[str, float] | None:
    """Client metrics: a small object of finite numbers (e.g. loss, accuracy)."""
    if metrics is None:
        return None
    if not isinstance(metrics, dict) or len(metrics) > MAX_METRICS:
        raise ApiError(
            "metrics_invalid", f"metrics must be an object of at most {MAX_METRICS} numbers", 400
        )
    checked = {}
    for key, value in metrics.items():
        if (
            not isinstance(key, str)
            or len(key) > 64
            or isinstance(value, bool)
            or not isinstance(value, int | float)
            or not np.isfinite(value)
        ):
            raise ApiError(
                "metrics_invalid", f"metric {str(key)[:64]!r} must be a finite number", 400
            )
        checked[key] = float(value)
    return checked
