"""Parsers of client input raise only their own coded error (issue 16): `load_json` only an
`invalid_json` ApiError, the binary frame parser only FrameError, whatever the bytes."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedgrid_plans import tensors
from fedgrid_protocol.errors import ApiError
from fedgrid_protocol.frames import (
    FrameError,
    decode_binary_frame,
    encode_binary_frame,
    place_blobs,
)
from fedgrid_protocol.validation import MAX_JSON_DEPTH, load_json

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("text", [
    DEEP, '{"a": ' * 100_000 + "1" + "}" * 100_000, "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
    "9" * 5000, "{nope", "", b"\xff\xfe", b'{"a": "\xc3\x28"}',
], ids=["nested-1e5", "nested-objects", "one-too-deep", "5000-digits", "not-json", "empty",
        "not-utf8-bom", "not-utf8"])
def test_load_json_refuses_with_invalid_json(text):
    with pytest.raises(ApiError) as refused:
        load_json(text, "the body")
    assert refused.value.code == "invalid_json" and refused.value.status == 400
    assert refused.value.message.startswith("the body")


@pytest.mark.parametrize("text, value", [
    ("[1, 2]", [1, 2]), ("null", None), ("5", 5), ('{"a": {"b": [1]}}', {"a": {"b": [1]}}),
    ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, json.loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)),
])
def test_load_json_parses_what_is_valid_and_shallow_enough(text, value):
    assert load_json(text) == value


@given(st.binary(max_size=256) | st.text(max_size=256))
@settings(max_examples=200, deadline=None)
def test_load_json_raises_only_invalid_json(text):
    try:
        load_json(text)
    except ApiError as exc:
        assert exc.code == "invalid_json"


def _header_frame(header: str, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header.encode())) + header.encode() + body


def _u8(**overrides) -> str:
    return json.dumps({"blob": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0], **overrides},
                       "__metadata__": {"envelope": "{}"}})


HOSTILE_FRAMES = {
    "nested header": _header_frame(DEEP),
    "5000-digit integer": _header_frame('{"blob": {"dtype": "U8", "shape": [' + "9" * 5000
                                        + '], "data_offsets": [0, 0]}}'),
    "shape [0, 2**63]": _header_frame(_u8(shape=[0, 2**63])),
    "65 dimensions": _header_frame(_u8(shape=[0] * 65)),
    "dtype a list": _header_frame(_u8(dtype=["U8"])),
    "shape [true]": _header_frame(_u8(shape=[True], data_offsets=[0, 1]), b"\0"),
    "header length past the buffer": struct.pack("<Q", 2**64 - 1) + b"{}",
    "envelope nested": tensors.encode({}, metadata={"envelope": DEEP}),
    "envelope a 5000-digit integer": tensors.encode({}, metadata={"envelope": "9" * 5000}),
    "envelope null": tensors.encode({}, metadata={"envelope": "null"}),
    "blob two-dimensional": tensors.encode({"diff": np.zeros((2, 2), np.uint8)},
                                           metadata={"envelope": "{}"}),
}


@pytest.mark.parametrize("case", list(HOSTILE_FRAMES))
def test_hostile_frames_raise_only_frame_error(case):
    with pytest.raises(FrameError):
        decode_binary_frame(HOSTILE_FRAMES[case])


def test_a_blob_path_under_a_field_that_is_not_an_object_is_a_frame_error():
    with pytest.raises(FrameError):
        place_blobs({"plans": 5}, {"plans/train": b"x"})


def _parses_or_refuses(frame: bytes) -> None:
    try:
        envelope, blobs = decode_binary_frame(frame)
    except FrameError:
        return
    assert isinstance(envelope, dict)
    assert all(isinstance(name, str) and isinstance(blob, bytes) for name, blob in blobs.items())
    assert decode_binary_frame(encode_binary_frame(envelope, blobs)) == (envelope, blobs)


_ENVELOPES = st.fixed_dictionaries({
    "type": st.text(max_size=12), "request_id": st.integers() | st.none(),
    "data": st.dictionaries(st.text(max_size=6), st.integers() | st.text(max_size=6), max_size=3),
})
_BLOBS = st.dictionaries(st.sampled_from(["diff", "model", "plans/a", "plans/b", "payload"]),
                         st.binary(max_size=32), max_size=3)


@given(_ENVELOPES, _BLOBS)
@settings(max_examples=200, deadline=None)
def test_frames_round_trip(envelope, blobs):
    assert decode_binary_frame(encode_binary_frame(envelope, blobs)) == (envelope, blobs)


@given(st.binary(max_size=512))
@settings(max_examples=200, deadline=None)
def test_arbitrary_bytes_raise_only_frame_error(frame):
    _parses_or_refuses(frame)


@given(_ENVELOPES, _BLOBS, st.data())
@settings(max_examples=200, deadline=None)
def test_mutated_frames_raise_only_frame_error(envelope, blobs, draw):
    frame = bytearray(encode_binary_frame(envelope, blobs))
    for _ in range(draw.draw(st.integers(1, 4))):
        action = draw.draw(st.sampled_from(["flip", "truncate", "insert"]))
        position = draw.draw(st.integers(0, max(len(frame) - 1, 0)))
        if action == "flip" and frame:
            frame[position] = draw.draw(st.integers(0, 255))
        elif action == "truncate":
            del frame[position:]
        else:
            frame[position:position] = draw.draw(st.binary(min_size=1, max_size=4))
    _parses_or_refuses(bytes(frame))
