"""The shared clip vector (plans/conformance/secagg_clip/): a float32 diff, and for several
``clip_norm`` values the L2 norm and the clipped update vector as the Python SDK computes them
before quantisation (differential privacy with ``clip_at: device``, docs/protocol.md). The
JavaScript SDK must compute the same values (clients/js/test/secagg.test.js).

Regenerate with ``python -m tests.secagg_clip_vector`` from clients/python (only when the rule
changes: the files are the contract, and test_secagg_clip.py checks they are current).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fedgrid.secagg import flatten
from fedgrid_plans import tensors
from fedgrid_protocol.secagg.clip import clip_to_norm

VECTOR = Path(__file__).resolve().parents[3] / "plans" / "conformance" / "secagg_clip"
# Above the norm (unchanged), just below it, far below it, and tiny: every branch of the rule.
CLIP_NORMS = (1000.0, 24.0, 0.5, 1e-6)
RTOL = 1e-12


def vector_diff() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    f32 = np.float32
    return {
        # Names whose sorted order is not their insertion order (upper case sorts first).
        "layer.weight": (rng.standard_normal((8, 16)) * 0.5).astype(f32),
        "layer.bias": rng.standard_normal(8).astype(f32),
        "Embedding": (rng.standard_normal((4, 3)) * 3).astype(f32),
        "scalar": np.array(-7.25, f32),
        "empty": np.zeros((0, 5), f32),
        # Many magnitudes, so a sum in another order really rounds differently.
        "wide": (rng.choice([-1.0, 1.0], 300) * np.ldexp(1.0 + rng.random(300),
                                                         rng.integers(-20, 3, 300))).astype(f32),
    }


def expected_cases(diff: dict[str, np.ndarray]) -> tuple[list[dict], dict[str, np.ndarray]]:
    update = flatten(diff)
    norm = float(np.sqrt(np.dot(update, update)))
    cases, clipped = [], {}
    for index, clip_norm in enumerate(CLIP_NORMS):
        key = f"case{index}"
        clipped[key] = clip_to_norm(update, clip_norm)
        cases.append({"clip_norm": clip_norm, "norm": norm, "clipped": key,
                      "scaled": bool(norm > clip_norm)})
    return cases, clipped


def write_vector() -> None:
    VECTOR.mkdir(parents=True, exist_ok=True)
    diff = vector_diff()
    cases, clipped = expected_cases(diff)
    (VECTOR / "diff.safetensors").write_bytes(tensors.encode(diff))
    (VECTOR / "clipped.safetensors").write_bytes(tensors.encode(clipped))
    (VECTOR / "cases.json").write_text(json.dumps({"rtol": RTOL, "cases": cases}, indent=2) + "\n")


if __name__ == "__main__":
    write_vector()
    print(f"wrote {VECTOR}")
