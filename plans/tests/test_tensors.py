"""The safetensors codec: exact round trips, agreement with the reference package, strict refusals."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load as reference_load
from safetensors.numpy import save as reference_save

from fedgrid_plans.tensors import TensorFormatError, decode, decode_metadata, encode, read_header

DTYPES = ["float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]


def _sample(dtype: str, shape=(2, 3)) -> np.ndarray:
    rng = np.random.default_rng(0)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    return (rng.standard_normal(shape) * 50).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_dtype(dtype):
    tensors = {"a": _sample(dtype), "scalar": _sample(dtype, ()), "empty": _sample(dtype, (0, 4))}
    decoded = decode(encode(tensors))
    assert list(decoded) == list(tensors)
    for name, array in tensors.items():
        assert decoded[name].dtype == array.dtype
        assert decoded[name].shape == array.shape
        np.testing.assert_array_equal(decoded[name], array)


def test_decode_is_zero_copy_and_read_only():
    data = encode({"w": np.arange(12, dtype=np.float32).reshape(3, 4)})
    array = decode(data)["w"]
    assert not array.flags.writeable
    assert not array.flags.owndata
    with pytest.raises(ValueError):
        array[0, 0] = 1.0


def test_metadata_round_trip_and_alignment():
    data = encode({"x": np.ones(3, np.float32)}, metadata={"fedgrid.kind": "diff", "n": 7})
    assert decode_metadata(data) == {"fedgrid.kind": "diff", "n": "7"}
    (header_len,) = struct.unpack("<Q", data[:8])
    assert header_len % 8 == 0  # data section 8-byte aligned, as the reference writes it
    assert decode_metadata(encode({"x": np.ones(1, np.float32)})) == {}


def test_non_contiguous_and_big_endian_inputs_are_stored_little_endian():
    strided = np.arange(20, dtype=np.float32).reshape(4, 5)[:, ::2]
    big = np.arange(4, dtype=">i4")
    decoded = decode(encode({"strided": strided, "big": big}))
    np.testing.assert_array_equal(decoded["strided"], strided)
    np.testing.assert_array_equal(decoded["big"], big)
    assert decoded["big"].dtype == np.dtype("<i4")


def test_reference_package_reads_what_we_write():
    tensors = {name: _sample(name) for name in DTYPES}
    loaded = reference_load(encode(tensors))
    for name, array in tensors.items():
        np.testing.assert_array_equal(loaded[name], array)
        assert loaded[name].dtype == array.dtype


def test_we_read_what_the_reference_package_writes():
    tensors = {name: _sample(name, (3, 2, 2)) for name in DTYPES}
    data = reference_save(tensors, metadata={"format": "np"})
    decoded = decode(data)
    assert decode_metadata(data) == {"format": "np"}
    for name, array in tensors.items():
        np.testing.assert_array_equal(decoded[name], array)


def test_encode_refuses_a_dtype_it_cannot_store():
    with pytest.raises(TensorFormatError, match="complex"):
        encode({"z": np.zeros(2, np.complex64)})


def _raw(header: dict | bytes | str, body: bytes = b"", declared_len: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else (header if isinstance(header, str) else json.dumps(header)).encode()
    length = len(text) if declared_len is None else declared_len
    return struct.pack("<Q", length) + text + body


F32_ENTRY = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
MALFORMED = {
    "shorter than the length prefix": b"\x01\x02",
    "header length past the end": _raw({}, declared_len=1000),
    "header not UTF-8 JSON": _raw(b"\xff\xfe{"),
    "header not JSON": _raw("{not json"),
    "header not an object": _raw("[1, 2]"),
    "metadata not a string map": _raw({"__metadata__": {"a": 1}}),
    "entry missing data_offsets": _raw({"x": {"dtype": "F32", "shape": [2]}}, b"\0" * 8),
    "entry with an extra key": _raw({"x": {**F32_ENTRY, "extra": 1}}, b"\0" * 8),
    "entry not an object": _raw({"x": [1, 2]}, b"\0" * 8),
    "unsupported dtype": _raw({"x": {**F32_ENTRY, "dtype": "C64"}}, b"\0" * 8),
    "negative dimension": _raw({"x": {**F32_ENTRY, "shape": [-2]}}, b"\0" * 8),
    "non-integer dimension": _raw({"x": {**F32_ENTRY, "shape": [2.0]}}, b"\0" * 8),
    "offsets past the data": _raw({"x": {**F32_ENTRY, "data_offsets": [0, 16]}}, b"\0" * 8),
    "offsets reversed": _raw({"x": {**F32_ENTRY, "data_offsets": [8, 0]}}, b"\0" * 8),
    "offsets not a pair": _raw({"x": {**F32_ENTRY, "data_offsets": [0]}}, b"\0" * 8),
    "length disagrees with shape": _raw({"x": {**F32_ENTRY, "shape": [3]}}, b"\0" * 8),
    "gap between tensors": _raw(
        {"x": F32_ENTRY, "y": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}}, b"\0" * 16
    ),
    "overlapping tensors": _raw(
        {"x": F32_ENTRY, "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12
    ),
    "trailing bytes": _raw({"x": F32_ENTRY}, b"\0" * 12),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_input_raises_tensor_format_error(case):
    data = MALFORMED[case]
    with pytest.raises(TensorFormatError):
        decode(data)
    with pytest.raises(TensorFormatError):
        read_header(data)


def test_tensor_format_error_is_a_value_error():
    assert issubclass(TensorFormatError, ValueError)


_ARRAYS = st.lists(
    st.tuples(
        st.sampled_from(DTYPES),
        st.lists(st.integers(0, 4), max_size=3),
        st.integers(0, 2**32 - 1),
    ),
    max_size=5,
)


@given(_ARRAYS, st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3))
@settings(max_examples=60, deadline=None)
def test_any_set_of_tensors_round_trips_and_matches_the_reference(specs, metadata):
    arrays = {}
    for index, (dtype, shape, seed) in enumerate(specs):
        rng = np.random.default_rng(seed)
        raw = rng.integers(0, 256, size=int(np.prod(shape)) * np.dtype(dtype).itemsize, dtype=np.uint8)
        array = raw.view(np.uint8 if dtype == "bool" else dtype).reshape(shape)
        arrays[f"t{index}"] = (array % 2).astype(bool) if dtype == "bool" else array
    data = encode(arrays, metadata=metadata)
    decoded = decode(data)
    assert decode_metadata(data) == metadata
    reference = reference_load(data)
    for name, array in arrays.items():
        np.testing.assert_array_equal(decoded[name], array)  # NaN payloads compare equal bytewise below
        assert decoded[name].tobytes() == array.tobytes() == reference[name].tobytes()
