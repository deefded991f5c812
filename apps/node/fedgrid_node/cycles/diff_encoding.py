"""Compressed updates: a report's diff in the process's ``client_config.diff_encoding``, decoded
to the float32 diff that is checked and folded (docs/protocol.md, "Compressed updates").

- ``float32``: each tensor in the model's own dtype (what every Node took before encodings);
- ``float16``: each tensor as ``F16``; decoding widens it to float32, exactly;
- ``int8``: each tensor ``name`` as ``I8`` codes ``q`` plus a float32 scalar tensor
  ``name.__scale__`` holding its scale ``s``; decoding is ``q · s`` in float32.

The scale is a tensor rather than a ``__metadata__`` string so that it travels as its exact
float32 bits: Python and JavaScript print floats differently, and a printed scale would have to
be parsed back (and could be NaN text, or lose a bit) before it could be checked.

A report in any other encoding than the process's is refused (``diff_encoding_mismatch``): the
researcher chose the encoding for the whole cycle, and an SDK that ignores it is a bug to show,
not to hide. Pure functions, run on the thread pool like the rest of the report's checks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedgrid_plans import tensors
from fedgrid_protocol.configs import DIFF_ENCODINGS
from fedgrid_protocol.errors import ApiError

DEFAULT_ENCODING = "float32"
# The companion tensor of an int8 tensor; checkpoints may not use the suffix (hosting.py).
SCALE_SUFFIX = ".__scale__"

_WIRE_DTYPES = {"float16": np.dtype("<f2"), "int8": np.dtype("i1")}
_FLOAT32 = np.dtype("<f4")

TensorSpec = dict[str, tuple[tuple[int, ...], np.dtype]]


def encoding_of(client_config: Mapping | None) -> str:
    """The process's diff encoding (``float32`` when its client_config does not set one)."""
    encoding = (client_config or {}).get("diff_encoding") or DEFAULT_ENCODING
    # Hosting validated it; a stored value from a future version would be refused loudly here.
    if encoding not in DIFF_ENCODINGS:
        raise ValueError(f"unknown diff encoding {encoding!r}")
    return encoding


def scale_name(name: str) -> str:
    return name + SCALE_SUFFIX


def _expected_dtype(encoding: str, model_dtype: np.dtype) -> np.dtype:
    return _WIRE_DTYPES.get(encoding, model_dtype)


def _check_encoding(spec: TensorSpec, received: Mapping[str, np.ndarray], encoding: str) -> None:
    """Each parameter's dtype is the encoding's: said before the names, since a float32 diff
    sent to an int8 process also lacks every scale, and the encoding is the cause to name."""
    compressed = set(_WIRE_DTYPES.values())
    for name, (_, model_dtype) in spec.items():
        tensor = received.get(name)
        if tensor is None:
            continue
        expected = _expected_dtype(encoding, model_dtype)
        if tensor.dtype == expected:
            continue
        if encoding != DEFAULT_ENCODING or tensor.dtype in compressed:
            raise ApiError(
                "diff_encoding_mismatch",
                f"diff tensor {name!r} is {tensor.dtype}; this model's diffs are encoded as "
                f"{encoding} ({tensors.dtype_name(expected)} tensors)",
                400,
                details={"tensor": name, "expected": encoding,
                         "dtype": tensors.dtype_name(tensor.dtype)},
            )
        raise ApiError(  # float32 process, another float dtype: the model's dtype is the rule
            "diff_mismatch",
            f"diff tensor {name!r} is {tensor.dtype}, the model's is {model_dtype}",
            400,
            details={"tensor": name},
        )


def _check_names(spec: TensorSpec, received: Mapping[str, np.ndarray], encoding: str) -> None:
    expected = set(spec)
    if encoding == "int8":
        expected |= {scale_name(name) for name in spec}
    missing = sorted(expected - set(received))
    unexpected = sorted(set(received) - expected)
    if missing or unexpected:
        raise ApiError(
            "diff_mismatch",
            "diff tensors do not match the model's parameters"
            + (" (an int8 diff holds a float32 NAME.__scale__ beside each NAME)"
               if encoding == "int8" else ""),
            400,
            details={"missing": missing, "unexpected": unexpected},
        )


def _scale(received: Mapping[str, np.ndarray], name: str) -> np.float32:
    tensor = received[scale_name(name)]
    if tensor.dtype != _FLOAT32 or tensor.shape != ():
        raise ApiError(
            "diff_scale_invalid",
            f"scale {scale_name(name)!r} is {tensor.dtype}{list(tensor.shape)}; it must be a "
            "float32 scalar (shape [])",
            400,
            details={"tensor": scale_name(name)},
        )
    scale = tensor[()]
    if not (np.isfinite(scale) and scale >= 0):
        raise ApiError(
            "diff_scale_invalid",
            f"scale {scale_name(name)!r} is {float(scale)}; a scale is finite and not negative",
            400,
            details={"tensor": scale_name(name)},
        )
    return np.float32(scale)


def dequantize(codes: np.ndarray, scale: np.float32) -> np.ndarray:
    """x̂ = q · s, each product rounded once to float32 (q is exact in float32). A product beyond
    float32 is infinity, which the value checks then refuse (diff_not_finite)."""
    with np.errstate(over="ignore"):
        return np.multiply(codes, scale, dtype=np.float32)


def decode_checked(spec: TensorSpec, received: Mapping[str, np.ndarray],
                   encoding: str) -> dict[str, np.ndarray]:
    """The received tensors, checked against the model and the encoding, as the float32 diff
    (the model's dtype for ``float32``). Refusals are coded `ApiError`s."""
    _check_encoding(spec, received, encoding)
    _check_names(spec, received, encoding)
    diff: dict[str, np.ndarray] = {}
    for name, (shape, model_dtype) in spec.items():
        tensor = received[name]
        if tensor.shape != shape:
            raise ApiError(
                "diff_mismatch",
                f"diff tensor {name!r} is {tensor.dtype}{list(tensor.shape)}, "
                f"the model's is {model_dtype}{list(shape)}",
                400,
                details={"tensor": name},
            )
        if encoding == "int8":
            diff[name] = dequantize(tensor, _scale(received, name))
        elif encoding == "float16":
            diff[name] = tensor.astype(np.float32)
        else:
            diff[name] = tensor
    return diff


def decode_accepted(data: bytes, encoding: str) -> dict[str, np.ndarray]:
    """A stored report (kept as received) as its float32 diff: the same values `decode_checked`
    gave when it was accepted, so a restart re-folds the sum bit for bit."""
    received = tensors.decode(data)
    names = [name for name in received
             if not (encoding == "int8" and name.endswith(SCALE_SUFFIX))]
    diff: dict[str, np.ndarray] = {}
    for name in names:
        tensor = received[name]
        if encoding == "int8":
            diff[name] = dequantize(tensor, np.float32(received[scale_name(name)][()]))
        elif encoding == "float16":
            diff[name] = tensor.astype(np.float32)
        else:
            diff[name] = tensor
    return diff
