"""Safetensors codec for checkpoints and diffs, shared by the Node and the SDKs.

The format (https://github.com/huggingface/safetensors) is an 8-byte little-endian header length,
a UTF-8 JSON header mapping each tensor name to ``{"dtype", "shape", "data_offsets"}`` (offsets
relative to the end of the header) plus an optional ``"__metadata__"`` string map, then the raw
little-endian tensor bytes.

Decoding here is strict and zero-copy: every offset is checked to lie inside the buffer and the
tensors must tile the data section exactly, and the arrays returned are read-only views over the
input buffer (``np.frombuffer``), so decoding a 100 MB diff allocates nothing of that size.
Whatever the bytes, decoding either succeeds or raises `TensorFormatError`: the header is bounded
(`MAX_HEADER_BYTES`, `MAX_TENSORS`, `MAX_DIMENSIONS`, integers of at most 20 digits, no duplicate
names) before anything is built from it.
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

# Bounds on what a header may declare, checked before (size) or while (the rest) it is parsed, so
# that no header costs the reader more than a small multiple of its own size. Fedgrid's checkpoints,
# diffs, plans and frames stay far below them.
MAX_HEADER_BYTES = 16 * 1024 * 1024  # the reference implementation allows 100 MB
MAX_TENSORS = 65_536
MAX_DIMENSIONS = 32  # numpy 1.x's limit (numpy 2 allows 64)
MAX_DIMENSION = 2**62 - 1  # and the element count (zero-size tensors included) stays below 2**62
_MAX_INTEGER_DIGITS = 20  # every integer in a header is a dimension or an offset (< 2**64)


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
        if name == "__metadata__" or array.ndim > MAX_DIMENSIONS:
            raise TensorFormatError(
                f"tensor {name!r}: the name __metadata__ and more than {MAX_DIMENSIONS} dimensions "
                "cannot be stored")
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


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    for name, value in pairs:
        for text in (name, value) if isinstance(value, str) else (name,):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800"
                raise TensorFormatError("tensor file header holds a string that is not Unicode") from None
    names = dict(pairs)
    if len(names) != len(pairs):
        seen: set[str] = set()
        duplicate = next(name for name, _ in pairs if name in seen or seen.add(name))
        raise TensorFormatError(f"tensor file header names {duplicate[:64]!r} twice")
    return names


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INTEGER_DIGITS:
        raise TensorFormatError("tensor file header holds an integer too large for a shape or offset")
    return int(text)


def _not_a_number(text: str) -> float:
    raise TensorFormatError(f"tensor file header holds {text}, which is not JSON")


def _parse_header(text: bytes) -> object:
    try:
        return json.loads(
            text.decode("utf-8"),
            object_pairs_hook=_object,
            parse_int=_integer,
            parse_constant=_not_a_number,
        )
    except TensorFormatError:
        raise
    except UnicodeDecodeError:
        raise TensorFormatError("tensor file header is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise TensorFormatError(f"tensor file header is not JSON: {exc}") from None
    except RecursionError:
        raise TensorFormatError("tensor file header is nested too deeply") from None
    except (ValueError, OverflowError, MemoryError) as exc:
        raise TensorFormatError(f"tensor file header cannot be read: {exc}") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_shape(name: str, shape: object) -> list[int]:
    if not isinstance(shape, list) or not all(_is_int(d) and 0 <= d <= MAX_DIMENSION for d in shape):
        raise TensorFormatError(f"tensor {name!r}: shape must be a list of non-negative integers")
    if len(shape) > MAX_DIMENSIONS:
        raise TensorFormatError(f"tensor {name!r}: more than {MAX_DIMENSIONS} dimensions")
    if math.prod(d for d in shape if d) > MAX_DIMENSION:
        raise TensorFormatError(f"tensor {name!r}: shape has too many elements")
    return shape


def read_header(data: bytes | bytearray | memoryview) -> tuple[dict, dict[str, str], int]:
    """Parse and check the header: ``(tensor entries, metadata, start of the data section)``.

    Any buffer that is not a well-formed Fedgrid tensor file raises `TensorFormatError` (and only
    that): see ``plans/SPEC.md`` §1 for the bounds on the header."""
    view = memoryview(data)
    if len(view) < 8:
        raise TensorFormatError("tensor file is shorter than its 8-byte header length")
    (header_len,) = struct.unpack("<Q", view[:8])
    if header_len > MAX_HEADER_BYTES:
        raise TensorFormatError(f"tensor file header is longer than {MAX_HEADER_BYTES} bytes")
    if 8 + header_len > len(view):
        raise TensorFormatError("tensor file header length points past the end of the data")
    header = _parse_header(bytes(view[8 : 8 + header_len]))
    if not isinstance(header, dict):
        raise TensorFormatError("tensor file header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise TensorFormatError("tensor file __metadata__ must map strings to strings")
    if len(header) > MAX_TENSORS:
        raise TensorFormatError(f"tensor file holds more than {MAX_TENSORS} tensors")
    start = 8 + header_len
    data_len = len(view) - start
    spans = []
    for key, entry in header.items():
        name = key if len(key) <= 64 else key[:63] + "…"  # as shown in errors
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise TensorFormatError(f"tensor {name!r}: entry needs exactly dtype, shape, data_offsets")
        dtype = _DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        if dtype is None:
            raise TensorFormatError(f"tensor {name!r}: unsupported dtype {str(entry['dtype'])[:32]!r}")
        shape = _check_shape(name, entry["shape"])
        offsets = entry["data_offsets"]
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_int(o) for o in offsets)
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


def decode_with_metadata(
    data: bytes | bytearray | memoryview,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """`decode` and `decode_metadata` at once, parsing the header a single time."""
    header, metadata, start = read_header(data)
    view = memoryview(data)
    tensors: dict[str, np.ndarray] = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        try:
            tensors[name] = np.frombuffer(
                view[start + begin : start + end], dtype=_DTYPES[entry["dtype"]]
            ).reshape(entry["shape"])
        except (ValueError, TypeError, OverflowError, MemoryError) as exc:  # numpy's own limits
            raise TensorFormatError(f"tensor {name!r}: {exc}") from None
    return tensors, metadata


def decode(data: bytes | bytearray | memoryview) -> dict[str, np.ndarray]:
    """Parse safetensors bytes into read-only numpy views (no copy), in header order."""
    return decode_with_metadata(data)[0]


def decode_metadata(data: bytes | bytearray | memoryview) -> dict[str, str]:
    """The ``__metadata__`` string map of a safetensors buffer (empty if it has none)."""
    return read_header(data)[1]
