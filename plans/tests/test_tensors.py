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


# Headers that are JSON but not the format, and headers built to cost the reader far more than the
# sender: each raises TensorFormatError and nothing else (issue 16).
def _entry(**overrides) -> dict:
    return {"x": {**F32_ENTRY, **overrides}}


HOSTILE = {
    "nested 1e5 levels": _raw("[" * 100_000 + "]" * 100_000),
    "nested inside an entry": _raw('{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    "a 5000-digit integer": _raw('{"x": {"dtype": "F32", "shape": [' + "9" * 5000 + '], "data_offsets": [0, 8]}}'),
    "a 21-digit offset": _raw('{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, ' + "1" * 21 + "]}}"),
    "shape [0, 2**63]": _raw(_entry(shape=[0, 2**63], data_offsets=[0, 0])),
    "shape [0, 2**62]": _raw(_entry(shape=[0, 2**62], data_offsets=[0, 0])),
    "shape [0, 2**40, 2**40]": _raw(_entry(shape=[0, 2**40, 2**40], data_offsets=[0, 0])),
    "65 dimensions": _raw(_entry(shape=[0] * 65, data_offsets=[0, 0])),
    "33 dimensions": _raw(_entry(shape=[1] * 32 + [2]), b"\0" * 8),
    "dtype as a list": _raw(_entry(dtype=["F32"]), b"\0" * 8),
    "dtype as an object": _raw(_entry(dtype={"F32": 1}), b"\0" * 8),
    "shape [true]": _raw(_entry(shape=[True], dtype="U8", data_offsets=[0, 1]), b"\0"),
    "shape not a list": _raw(_entry(shape="2"), b"\0" * 8),
    "shape with a float": _raw(_entry(shape=[2.5]), b"\0" * 8),
    "offsets as booleans": _raw(_entry(dtype="U8", shape=[1], data_offsets=[False, True]), b"\0"),
    "negative offsets": _raw(_entry(data_offsets=[-8, 0]), b"\0" * 8),
    "offsets past the buffer": _raw(_entry(data_offsets=[2**63, 2**63 + 8]), b"\0" * 8),
    "offsets not integers": _raw(_entry(data_offsets=["0", "8"]), b"\0" * 8),
    "header length larger than the buffer": _raw({"x": F32_ENTRY}, b"\0" * 8, declared_len=10_000),
    "huge header length": _raw({}, declared_len=2**64 - 1),
    "header length past the bound": _raw({}, declared_len=16 * 1024 * 1024 + 1),
    "non-UTF-8 header": _raw(b'{"\xc3\x28": 1}'),
    "lone surrogate escape as a name": _raw('{"\\ud800": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}'),
    "duplicate names": _raw(
        '{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},'
        ' "x": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}', b"\0" * 16),
    "duplicate keys in an entry": _raw(
        '{"x": {"dtype": "F32", "dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', b"\0" * 8),
    "metadata a list": _raw({"__metadata__": ["a", "b"]}),
    "metadata an empty list": _raw({"__metadata__": []}),
    "metadata a string": _raw({"__metadata__": "a"}),
    "metadata zero": _raw({"__metadata__": 0}),
    "metadata nested": _raw({"__metadata__": {"a": {"b": "c"}}}),
    "NaN in the header": _raw('{"__metadata__": {"a": NaN}}'),
    "Infinity as a dimension": _raw('{"x": {"dtype": "F32", "shape": [Infinity], "data_offsets": [0, 8]}}', b"\0" * 8),
    "too many tensors": _raw(
        "{" + ",".join(f'"t{i}": {{"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}'
                       for i in range(65_537)) + "}"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_headers_raise_only_tensor_format_error(case):
    data = HOSTILE[case]
    with pytest.raises(TensorFormatError):
        decode(data)
    with pytest.raises(TensorFormatError):
        decode_metadata(data)


def test_unsorted_offsets_that_tile_the_data_decode():
    """Offsets need not follow header order (the reference accepts this too)."""
    data = _raw({"b": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]},
                 "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"\1\2\3\4")
    decoded = decode(data)
    assert list(decoded) == ["b", "a"]
    assert decoded["b"].tolist() == [3, 4] and decoded["a"].tolist() == [1, 2]


def test_null_metadata_reads_as_none_and_zero_size_tensors_with_large_dimensions_decode():
    data = _raw({"__metadata__": None, "x": {"dtype": "F32", "shape": [0, 2**40], "data_offsets": [0, 0]}})
    assert decode_metadata(data) == {}
    assert decode(data)["x"].shape == (0, 2**40)


def test_encode_refuses_what_decode_would_refuse():
    with pytest.raises(TensorFormatError):
        encode({"__metadata__": np.zeros(1, np.float32)})
    with pytest.raises(TensorFormatError):
        encode({"x": np.zeros((1,) * 33, np.float32)})


def _valid_buffers():
    arrays = st.lists(st.tuples(st.sampled_from(DTYPES), st.lists(st.integers(0, 3), max_size=3)), max_size=4)
    return arrays.map(lambda specs: encode(
        {f"t{i}": np.zeros(shape, dtype) for i, (dtype, shape) in enumerate(specs)}, metadata={"k": "v"}))


def _decodes_consistently_or_refuses(data: bytes) -> None:
    try:
        decoded = decode(data)
    except TensorFormatError:
        with pytest.raises(TensorFormatError):
            decode_metadata(data)
        return
    metadata = decode_metadata(data)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    # What decodes re-encodes to a buffer that decodes to the same tensors.
    again = decode(encode(decoded, metadata))
    assert list(again) == list(decoded)
    for name, array in decoded.items():
        assert again[name].dtype == array.dtype and again[name].shape == array.shape
        assert again[name].tobytes() == array.tobytes()


@given(st.binary(max_size=512))
@settings(max_examples=200, deadline=None)
def test_arbitrary_bytes_raise_only_tensor_format_error(data):
    _decodes_consistently_or_refuses(data)


@given(st.binary(max_size=256).map(lambda text: struct.pack("<Q", len(text)) + text))
@settings(max_examples=200, deadline=None)
def test_arbitrary_headers_raise_only_tensor_format_error(data):
    _decodes_consistently_or_refuses(data)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
_ENTRY_FIELDS = st.fixed_dictionaries(
    {"dtype": st.sampled_from(["F32", "U8", "BOOL", "C64"]) | _JSON,
     "shape": st.lists(st.integers(-1, 2**64), max_size=4) | _JSON,
     "data_offsets": st.lists(st.integers(-1, 64), min_size=2, max_size=2) | _JSON},
)


@given(st.dictionaries(st.sampled_from(["a", "b", "__metadata__"]), _ENTRY_FIELDS | _JSON, max_size=3),
       st.binary(max_size=64))
@settings(max_examples=200, deadline=None)
def test_json_headers_that_are_not_the_format_raise_only_tensor_format_error(header, body):
    _decodes_consistently_or_refuses(_raw(json.dumps(header), body))


@given(_valid_buffers(), st.data())
@settings(max_examples=200, deadline=None)
def test_mutated_valid_buffers_raise_only_tensor_format_error(data, draw):
    buffer = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        action = draw.draw(st.sampled_from(["flip", "truncate", "insert"]))
        position = draw.draw(st.integers(0, max(len(buffer) - 1, 0)))
        if action == "flip" and buffer:
            buffer[position] = draw.draw(st.integers(0, 255))
        elif action == "truncate":
            del buffer[position:]
        else:
            buffer[position:position] = draw.draw(st.binary(min_size=1, max_size=4))
    _decodes_consistently_or_refuses(bytes(buffer))


@given(_valid_buffers())
@settings(max_examples=100, deadline=None)
def test_valid_buffers_round_trip(data):
    assert encode(decode(data), decode_metadata(data)) == data
