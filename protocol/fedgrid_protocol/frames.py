"""Binary WebSocket frames: an envelope plus named blobs, in the safetensors container.

A text frame is a JSON envelope ``{"type", "request_id", "data"}``. A message with bytes in it (a
report's diff, host-training's checkpoint and plans, a downloaded checkpoint) is one binary frame
in safetensors layout: each blob is a U8 tensor named by its field path (``diff``, ``model``,
``plans/<name>``, ``averaging_plan``, ``payload``) and the envelope is the JSON string in
``__metadata__["envelope"]``. Every SDK already parses safetensors, so this costs them no new
parser, and no tensor is ever base64 inside JSON.

Needs fedgrid-plans (its safetensors codec): install fedgrid-protocol[frames]. The Node and the
Python SDK both encode and decode frames with this module.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from fedgrid_plans import tensors

from .errors import ApiError
from .validation import load_json

ENVELOPE_KEY = "envelope"


class FrameError(ValueError):
    pass


def decode_binary_frame(frame: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Return (envelope, {field path: bytes}) of a binary frame; any other input raises
    `FrameError` (and only that)."""
    try:
        blobs, metadata = tensors.decode_with_metadata(frame)
    except tensors.TensorFormatError as exc:
        raise FrameError(f"binary frame is not a safetensors container: {exc}") from None
    if ENVELOPE_KEY not in metadata:
        raise FrameError(f"binary frame lacks a JSON __metadata__['{ENVELOPE_KEY}']")
    try:
        envelope = load_json(metadata[ENVELOPE_KEY], what="the binary frame's envelope")
    except ApiError as exc:
        raise FrameError(exc.message) from None
    if not isinstance(envelope, dict):
        raise FrameError("the envelope must be a JSON object")
    for name, blob in blobs.items():
        if blob.dtype != np.uint8 or blob.ndim != 1:
            raise FrameError(f"blob {name[:64]!r} must be a 1-D U8 tensor")
    return envelope, {name: blob.tobytes() for name, blob in blobs.items()}


def encode_binary_frame(envelope: dict[str, Any], blobs: dict[str, bytes]) -> bytes:
    return tensors.encode(
        {name: np.frombuffer(data, dtype=np.uint8) for name, data in blobs.items()},
        metadata={ENVELOPE_KEY: json.dumps(envelope, separators=(",", ":"))},
    )


def place_blobs(data: dict[str, Any], blobs: dict[str, bytes]) -> None:
    """Put blobs into the event's fields: ``plans/<name>`` goes to ``data["plans"][name]``."""
    for path, blob in blobs.items():
        head, _, rest = path.partition("/")
        if rest:
            group = data.setdefault(head, {})
            if not isinstance(group, dict):
                raise FrameError(f"blob {path[:64]!r} needs the envelope's {head[:64]!r} to be an object")
            group[rest] = blob
        else:
            data[head] = blob
