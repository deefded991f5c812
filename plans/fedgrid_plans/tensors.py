"""Safetensors codec for checkpoints and diffs, shared by the Node and the SDKs.

The format (https://github.com/huggingface/safetensors) is an 8-byte little-endian header length,
a UTF-8 JSON header mapping each tensor name to ``{"dtype", "shape", "data_offsets"}`` (offsets
relative to the end of the header) plus an optional ``"__metadata__"`` string map, then the raw
little-endian tensor bytes.

Decoding here is strict and zero-copy: every offset is checked to lie inside the buffer and the
tensors must tile the data section exactly, and the arrays returned are read-only views over the
input buffer (``np.frombuffer``), so decoding a 100 MB diff allocates nothing of that size.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping

import numpy as np

# Safetensors dtype names <-> numpy dtypes (little-endian). Only the types Fedgrid moves.
_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}

# A header larger than this is refused before it is parsed (the reference implementation uses 100 MB).
MAX_HEADER_BYTES = 100 * 1024 * 1024


class TensorFormatError(ValueError):
    """The bytes are not a well-formed safetensors buffer (or hold a dtype Fedgrid does not move)."""


def dtype_name(dtype: np.dtype) -> str:
    """The safetensors name of a numpy dtype, e.g. ``float32`` -> ``"F32"``."""
    try:
        return _NAMES[np.dtype(dtype).newbyteorder("<")]
    except KeyError:
        raise TensorFormatError(f"dtype {np.dtype(dtype)} cannot be stored in a Fedgrid tensor file") from None


def encode(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialize named arrays to safetensors bytes, in the order given."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks: list[bytes] = []
    offset = 0
    for name, value in tensors.items():
        array = np.asarray(value)
        name_of_dtype = dtype_name(array.dtype)
        data = np.ascontiguousarray(array, dtype=_DTYPES[name_of_dtype]).tobytes()
        header[name] = {
            "dtype": name_of_dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # Pad the header with spaces so the data section starts 8-byte aligned, as the reference does.
    header_bytes += b" " * (-len(header_bytes) % 8)
    return b"".join([struct.pack("<Q", len(header_bytes)), header_bytes, *chunks])


def read_header(data: bytes | bytearray | memoryview) -> tuple[dict, dict[str, str], int]:
    """Parse and check the header: ``(tensor entries, metadata, start of the data section)``."""
    view = memoryview(data)
    if len(view) < 8:
        raise TensorFormatError("tensor file is shorter than its 8-byte header length")
    (header_len,) = struct.unpack("<Q", view[:8])
    if header_len > MAX_HEADER_BYTES or 8 + header_len > len(view):
        raise TensorFormatError("tensor file header length points past the end of the data")
    try:
        header = json.loads(bytes(view[8 : 8 + header_len]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TensorFormatError(f"tensor file header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise TensorFormatError("tensor file header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise TensorFormatError("tensor file __metadata__ must map strings to strings")
    start = 8 + header_len
    data_len = len(view) - start
    spans = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise TensorFormatError(f"tensor {name!r}: entry needs exactly dtype, shape, data_offsets")
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            raise TensorFormatError(f"tensor {name!r}: unsupported dtype {entry['dtype']!r}")
        shape = entry["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise TensorFormatError(f"tensor {name!r}: shape must be a list of non-negative integers")
        offsets = entry["data_offsets"]
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_len
        ):
            raise TensorFormatError(f"tensor {name!r}: data_offsets out of bounds")
        if offsets[1] - offsets[0] != math.prod(shape) * dtype.itemsize:
            raise TensorFormatError(f"tensor {name!r}: byte length does not match dtype and shape")
        spans.append((offsets[0], offsets[1]))
    # The tensors must cover the data section exactly, with no gaps or overlaps.
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise TensorFormatError("tensor data sections overlap or leave gaps")
        position = end
    if position != data_len:
        raise TensorFormatError("tensor file has trailing bytes after the last tensor")
    return header, metadata, start


def decode(data: bytes | bytearray | memoryview) -> dict[str, np.ndarray]:
    """Parse safetensors bytes into read-only numpy views (no copy), in header order."""
    header, _, start = read_header(data)
    view = memoryview(data)
    tensors: dict[str, np.ndarray] = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(
            view[start + begin : start + end], dtype=_DTYPES[entry["dtype"]]
        ).reshape(entry["shape"])
    return tensors


def decode_metadata(data: bytes | bytearray | memoryview) -> dict[str, str]:
    """The ``__metadata__`` string map of a safetensors buffer (empty if it has none)."""
    return read_header(data)[1]
