"""WebSocket transport (flask-sock) for the same model-centric events as the HTTP routes.

Envelope: ``{"type": "model-centric/<event>", "request_id": ..., "data": {...}}``; the answer has
the same ``type`` and ``request_id`` and, as ``data``, exactly the body HTTP would have answered
(errors included). Admin events take ``"authorization": "Bearer <token>"`` in the envelope or the
handshake's Authorization header.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import gevent.lock
import gevent.pool
from flask import current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from fedgrid_protocol.errors import ApiError
from fedgrid_protocol.frames import (
    FrameError,
    decode_binary_frame,
    encode_binary_frame,
    place_blobs,
)
from fedgrid_protocol.validation import load_json

from . import ws_masking
from .events import BinaryAnswer, EventContext
from .http_routes import decode_legacy_binary_fields

log = logging.getLogger("fedgrid.node.ws")
sock = Sock()
EVENT_PREFIX = "model-centric/"
MAX_FRAMES_IN_FLIGHT = 8
# Pushed, unasked, to a socket whose device was turned away: ask again now, a place may be open.
PLACE_AVAILABLE = f"{EVENT_PREFIX}place-available"
MAX_HELD_CYCLE_REQUESTS = 64


Envelope = tuple[dict[str, Any], dict[str, bytes]]


def _read(message: Any) -> Envelope:
    """A frame as (envelope, blobs); raises FrameError or ApiError for a frame that is neither."""
    if isinstance(message, bytes | bytearray):
        return decode_binary_frame(bytes(message))
    envelope = load_json(message, "the WebSocket message")
    if not isinstance(envelope, dict):
        raise ApiError("invalid_request", "a WebSocket message must be a JSON object", 400)
    return envelope, {}


def _event_name(envelope: dict[str, Any]) -> str:
    event = str(envelope.get("type", ""))
    return event[len(EVENT_PREFIX) :] if event.startswith(EVENT_PREFIX) else event


def _answer(frame: Envelope | Exception, events, socket_context: EventContext) -> str | bytes:
    """Handle one frame, read already (or the error reading it); always produce an answer frame,
    never raise."""
    envelope: dict[str, Any] = {}
    try:
        if isinstance(frame, Exception):
            raise frame
        envelope, blobs = frame
        event = _event_name(envelope)
        data = envelope.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ApiError("invalid_request", "the envelope's data must be a JSON object", 400)
        spec = events.events.get(event)
        if spec is not None and not blobs:
            decode_legacy_binary_fields(data, spec.binary_fields)
        place_blobs(data, blobs)
        context = dataclasses.replace(
            socket_context,
            authorization=envelope.get("authorization") or socket_context.authorization,
        )
        answer = events.dispatch(event, data, context)
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
    ws_masking.install()

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
    """Answer each frame in its own greenlet, so a held long-poll (`cycle-request` with `wait`)
    does not hold up the other frames of the socket; answers carry their `request_id`.
    At most `MAX_FRAMES_IN_FLIGHT` frames, plus `MAX_HELD_CYCLE_REQUESTS` cycle-requests (which
    may be held, but only wait), are handled at once: beyond that the socket is not read
    (back-pressure), so one client cannot start unbounded work, and devices sharing one socket
    can still report while others long-poll."""
    events = current_app.extensions["fedgrid"].events
    authorization = request.headers.get("Authorization")
    in_flight = gevent.pool.Pool(MAX_FRAMES_IN_FLIGHT)
    held = gevent.pool.Pool(MAX_HELD_CYCLE_REQUESTS)
    sending = gevent.lock.Semaphore()  # one frame on the wire at a time

    def send(frame: str | bytes) -> None:
        with sending:
            try:
                ws.send(frame)
            except (ConnectionClosed, OSError):
                pass  # the client left (or stopped reading) while its answer was being prepared

    def push_place_available(model: str, version: str) -> None:
        send(json.dumps({"type": PLACE_AVAILABLE, "request_id": None,
                         "data": {"model": model, "version": version}}))

    # A device turned away on this socket (its cycle-request asked with `notify`) hears the
    # moment a place may be open, even while it sleeps its `timeout` between long-polls.
    # Set when the socket is gone: its held cycle-requests stop waiting. Events are never
    # killed: one killed in the middle of a database round trip (the pool's pre-ping, say) left
    # its connection mid-query; they finish, and their answers go nowhere.
    gone = gevent.event.Event()
    context = EventContext(authorization=authorization, push_key=ws, gone=gone,
                           push=lambda model, version: gevent.spawn(push_place_available,
                                                                    model, version))

    def handle(frame: Envelope | Exception) -> None:
        send(_answer(frame, events, context))

    try:
        while True:
            # Read once here: the event decides the lane (held cycle-requests apart).
            try:
                frame: Envelope | Exception = _read(ws.receive())
            except (FrameError, ApiError) as exc:
                frame = exc
            cycle_request = not isinstance(frame, Exception) and (
                _event_name(frame[0]) == "cycle-request")
            (held if cycle_request else in_flight).spawn(handle, frame)
    except ConnectionClosed:
        pass
    finally:
        events.engine.unsubscribe(ws)
        gone.set()
        # A message cut off by the close is freed now, not when the garbage collector gets to
        # the socket's reference cycle (the socket and its reader thread refer to each other).
        ws.incoming_message = None
        ws.input_buffer.clear()
