"""What a report's diff must satisfy before it is stored, beyond the protocol's field checks.

The protocol (fedgrid_protocol.events.ReportRequest) already bounds `num_samples` and `metrics`;
this decodes the diff from the process's encoding (diff_encoding.py) and checks it against the
model. A pure check (no database, no clock), run on gevent's thread pool.
"""

from __future__ import annotations

import numpy as np

from fedgrid_plans import tensors
from fedgrid_protocol.errors import ApiError

from .diff_encoding import DEFAULT_ENCODING, TensorSpec, decode_checked

# The largest |num_samples x diff value| a report may carry. The running sum adds such products
# in float32 groups of 16 (aggregation.py), so 16 x 1e36 stays far below float32's 3.4e38: a
# finite report can never turn the sum, and so the checkpoint, into infinity.
MAX_WEIGHTED_MAGNITUDE = 1e36

__all__ = ["MAX_WEIGHTED_MAGNITUDE", "TensorSpec", "check_diff"]


def check_diff(spec: TensorSpec, data: bytes, num_samples: int,
               encoding: str = DEFAULT_ENCODING) -> dict[str, np.ndarray]:
    """Decode a diff in the process's encoding and check it against the model: names, shapes,
    dtypes (and int8 scales), then the float32 values: finite and in range."""
    try:
        received = tensors.decode(data)
    except tensors.TensorFormatError as exc:
        raise ApiError("diff_malformed", f"diff is not a safetensors buffer: {exc}", 400) from None
    diff = decode_checked(spec, received, encoding)
    limit = MAX_WEIGHTED_MAGNITUDE / num_samples
    for name in spec:
        tensor = diff[name]
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
