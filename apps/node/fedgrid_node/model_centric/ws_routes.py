"""WebSocket transport (flask-sock) for the same model-centric events as the HTTP routes.

Envelope: ``{"type": "model-centric/<event>", "request_id": ..., "data": {...}}``; the answer has
the same ``type`` and ``request_id`` and, as ``data``, exactly the body HTTP would have answered
(errors included). Admin events take ``"authorization": "Bearer <token>"`` in the envelope or the
handshake's Authorization header.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from ..errors import ApiError
from .events import BinaryAnswer, EventContext
from .http_routes import decode_legacy_binary_fields
from .ws_frames import FrameError, decode_binary_frame, encode_binary_frame, place_blobs

log = logging.getLogger("fedgrid.node.ws")
sock = Sock()
EVENT_PREFIX = "model-centric/"


def _answer(message: Any) -> str | bytes:
    """Handle one frame; always produce an answer frame, never raise."""
    envelope: dict[str, Any] = {}
    try:
        if isinstance(message, bytes | bytearray):
            envelope, blobs = decode_binary_frame(bytes(message))
        else:
            envelope, blobs = json.loads(message), {}
            if not isinstance(envelope, dict):
                raise ApiError("invalid_request", "a WebSocket message must be a JSON object", 400)
        event = str(envelope.get("type", ""))
        event = event[len(EVENT_PREFIX) :] if event.startswith(EVENT_PREFIX) else event
        data = envelope.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ApiError("invalid_request", "the envelope's data must be a JSON object", 400)
        events = current_app.extensions["fedgrid"].events
        spec = events.events.get(event)
        if spec is not None and not blobs:
            decode_legacy_binary_fields(data, spec.binary_fields)
        place_blobs(data, blobs)
        context = EventContext(
            authorization=envelope.get("authorization") or request.headers.get("Authorization")
        )
        answer = events.dispatch(event, data, context)
    except json.JSONDecodeError:
        answer = ApiError("invalid_json", "the WebSocket message is not valid JSON", 400).to_json()
    except FrameError as exc:
        answer = ApiError("invalid_frame", str(exc), 400).to_json()
    except ApiError as exc:
        answer = exc.to_json()
    except Exception:
        log.exception("WebSocket event %r failed", envelope.get("type"))
        answer = ApiError("internal_error", "internal error; the Node's log has details", 500).to_json()
    reply = {"type": envelope.get("type"), "request_id": envelope.get("request_id")}
    if isinstance(answer, BinaryAnswer):
        reply["data"] = {"blob": "payload", "filename": answer.filename, **answer.headers}
        return encode_binary_frame(reply, {"payload": answer.data})
    reply["data"] = answer
    return json.dumps(reply)


def init_websocket(app) -> None:
    """Serve `/ws`; a plain HTTP request there gets a clear JSON error instead of a bare 400."""
    sock.init_app(app)

    @app.before_request
    def require_websocket_upgrade():
        if request.path == "/ws" and request.headers.get("Upgrade", "").lower() != "websocket":
            raise ApiError(
                "websocket_required",
                "/ws is the WebSocket endpoint: connect with a WebSocket client (ws:// or wss://)",
                426,
                headers={"Upgrade": "websocket"},
            )


@sock.route("/ws")
def websocket(ws) -> None:
    try:
        while True:
            ws.send(_answer(ws.receive()))
    except ConnectionClosed:
        pass
