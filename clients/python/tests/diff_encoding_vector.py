"""The shared diff-encoding vector (plans/conformance/diff_encoding/): a float32 diff whose values
hit every rounding rule, and its float16 and int8 encodings as the Python SDK writes them. The
JavaScript SDK must write the same bytes (clients/js/test/compressed_updates.test.js).

Regenerate with ``python -m tests.diff_encoding_vector`` from clients/python (only when the rule
changes: the files are the contract, and test_compressed_updates.py checks they are current).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedgrid.diff_encoding import encode_diff
from fedgrid_plans import tensors

VECTOR = Path(__file__).resolve().parents[3] / "plans" / "conformance" / "diff_encoding"
ENCODED = ("float16", "int8")


def vector_diff() -> dict[str, np.ndarray]:
    f32 = np.float32
    rng = np.random.default_rng(7)
    return {
        # max|x| = 127 gives s = 1: every x / s below is exact, so the ties are real ties.
        "ties": np.array([127, 0.5, 1.5, 2.5, -0.5, -2.5, -126.5, 126.5, 3.4999998], f32),
        # float16's edges: its largest value, the rounding to infinity at 65520, subnormals
        # (units of 2^-24) with ties to even, ties between normals, negative zero.
        "half_edges": np.array([
            65504, 65519.996, 65520, -65520, 2.0**-24, 2.0**-25, 3 * 2.0**-25, 2.0**-26,
            2.0**-14, 2.0**-14 - 2.0**-25, 1 + 2.0**-11, 1 + 3 * 2.0**-11, 1e-10, -0.0, 0.1,
            -1 / 3, 1.0e-40,
        ], f32),
        "zeros": np.zeros((3, 2), f32),  # s = 0: every code is 0
        "tiny": np.array([1e-40, -3e-41, 5e-42], f32),  # float32 subnormals: s is subnormal too
        "layer.weight": (rng.standard_normal((4, 5)) * 0.01).astype(f32),
        "layer.bias": np.append(rng.standard_normal(4) * 0.001, 0.25).astype(f32),  # an outlier
        "scalar": np.array(-0.75, f32),  # shape []
        "empty": np.zeros((0, 3), f32),
        # Many magnitudes, 2^-30 .. 2^17, each with a random 23-bit mantissa: every float16 path
        # (subnormal, normal, overflow) with arbitrary dropped bits.
        "wide": (rng.choice([-1.0, 1.0], 1024) * np.ldexp(1 + rng.integers(0, 2**23, 1024) / 2**23,
                                                          rng.integers(-30, 18, 1024))).astype(f32),
        "gradient_like": (rng.standard_normal((16, 32)) * 3e-3).astype(f32),
    }


def write_vector() -> None:
    VECTOR.mkdir(parents=True, exist_ok=True)
    diff = vector_diff()
    (VECTOR / "diff.safetensors").write_bytes(tensors.encode(diff))
    for encoding in ENCODED:
        (VECTOR / f"{encoding}.safetensors").write_bytes(encode_diff(diff, encoding))


if __name__ == "__main__":
    write_vector()
    print(f"wrote {VECTOR}")
