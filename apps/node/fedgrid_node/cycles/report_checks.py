"""What a report's diff must satisfy before it is stored, beyond the protocol's field checks.

The protocol (fedgrid_protocol.events.ReportRequest) already bounds `num_samples` and `metrics`;
this checks the diff against the model. A pure check (no database, no clock), run on gevent's
thread pool.
"""

from __future__ import annotations

import numpy as np

from fedgrid_plans import tensors
from fedgrid_protocol.errors import ApiError

# The largest |num_samples x diff value| a report may carry. The running sum adds such products
# in float32 groups of 16 (aggregation.py), so 16 x 1e36 stays far below float32's 3.4e38: a
# finite report can never turn the sum, and so the checkpoint, into infinity.
MAX_WEIGHTED_MAGNITUDE = 1e36

TensorSpec = dict[str, tuple[tuple[int, ...], np.dtype]]


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
