"""Binary WebSocket frames: envelope plus blobs in a safetensors container."""

from __future__ import annotations

import numpy as np
import pytest

from fedgrid_plans import tensors
from fedgrid_protocol.frames import (
    FrameError,
    decode_binary_frame,
    encode_binary_frame,
    place_blobs,
)


def test_round_trip_and_blob_placement():
    envelope = {"type": "model-centric/host-training", "request_id": 7, "data": {"name": "m"}}
    blobs = {"model": b"\x01\x02", "plans/training_plan": b"plan", "plans/other": b""}
    decoded_envelope, decoded_blobs = decode_binary_frame(encode_binary_frame(envelope, blobs))
    assert decoded_envelope == envelope and decoded_blobs == blobs
    data = dict(envelope["data"])
    place_blobs(data, decoded_blobs)
    assert data == {"name": "m", "model": b"\x01\x02",
                    "plans": {"training_plan": b"plan", "other": b""}}


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00\x01",
        tensors.encode({"diff": np.zeros(3, np.uint8)}),  # no envelope
        tensors.encode({"diff": np.zeros(3, np.uint8)}, metadata={"envelope": "[1]"}),
        tensors.encode({"diff": np.zeros(3, np.float32)}, metadata={"envelope": "{}"}),
    ],
    ids=["truncated", "no-envelope", "envelope-not-object", "blob-not-u8"],
)
def test_malformed_frames_are_refused(frame):
    with pytest.raises(FrameError):
        decode_binary_frame(frame)
