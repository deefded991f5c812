"""Compressed updates: the diff a device reports, encoded as its model's
``client_config.diff_encoding`` says (docs/protocol.md, "Compressed updates").

- ``float32`` (the default): every tensor as ``F32``;
- ``float16``: every tensor as ``F16``, each value rounded to nearest, ties to even (IEEE 754);
- ``int8``: every tensor ``name`` as ``I8`` codes plus a float32 scalar ``name.__scale__``:
  ``s = fl32(max|x| / 127)``, ``q = clip(rint(fl32(x / s)), -127, 127)`` with ``rint`` rounding
  half to even (``s = 0``, or a non-finite ``s``, gives every ``q = 0``); the Node decodes
  ``q · s``.

Every step is one correctly rounded float32 operation, so the JavaScript SDK (diff_encoding.js)
writes the same bytes for the same diff: tests hold both to a shared vector.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedgrid_plans import tensors

ENCODINGS = ("float32", "float16", "int8")
SCALE_SUFFIX = ".__scale__"
INT8_LEVELS = 127  # symmetric: -127..127, so 0 is exact and q and -q both exist


def int8_quantize(values: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """``(q, s)`` of one tensor: int8 codes and their float32 scale (see the module's rule)."""
    x = np.asarray(values, dtype=np.float32)
    largest = np.max(np.abs(x)) if x.size else np.float32(0)  # NaN propagates into the scale
    scale = np.float32(largest) / np.float32(INT8_LEVELS)
    if scale == 0 or not np.isfinite(scale):
        # Nothing to scale (all zeros), or a non-finite diff: the Node refuses its scale.
        return np.zeros(x.shape, dtype=np.int8), scale
    codes = np.rint(x / scale)  # float32 quotient, rounded half to even
    return np.clip(codes, -INT8_LEVELS, INT8_LEVELS).astype(np.int8), scale


def encode_diff(diff: Mapping[str, np.ndarray], encoding: str | None = None) -> bytes:
    """The safetensors bytes of ``diff`` (name -> array) in ``encoding`` (None: ``float32``)."""
    encoding = encoding or "float32"
    if encoding not in ENCODINGS:
        raise ValueError(f"the model asks for diff encoding {encoding!r}; this SDK writes "
                         f"{', '.join(ENCODINGS)}: update the fedgrid package")
    if encoding == "float32":
        return tensors.encode({name: np.asarray(v, dtype=np.float32) for name, v in diff.items()})
    if encoding == "float16":
        # Beyond 65520 the IEEE result is infinity: sent as such, the Node refuses it
        # (diff_not_finite) as it refuses a non-finite float32 diff.
        with np.errstate(over="ignore", invalid="ignore"):
            return tensors.encode({name: np.asarray(v, dtype=np.float32).astype(np.float16)
                                   for name, v in diff.items()})
    encoded: dict[str, np.ndarray] = {}
    for name, value in diff.items():
        codes, scale = int8_quantize(value)
        encoded[name] = codes
        encoded[name + SCALE_SUFFIX] = np.asarray(scale, dtype=np.float32)
    return tensors.encode(encoded)
