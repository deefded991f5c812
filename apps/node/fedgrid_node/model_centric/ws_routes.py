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

import gevent.lock
import gevent.pool
from flask import current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from ..cycles.engine import WAITABLE_REASONS
from ..errors import ApiError
from .events import BinaryAnswer, EventContext
from .http_routes import decode_legacy_binary_fields
from .ws_frames import FrameError, decode_binary_frame, encode_binary_frame, place_blobs

log = logging.getLogger("fedgrid.node.ws")
sock = Sock()
EVENT_PREFIX = "model-centric/"
MAX_FRAMES_IN_FLIGHT = 8
# Pushed, unasked, to a socket whose device was turned away: ask again now, a place may be open.
PLACE_AVAILABLE = f"{EVENT_PREFIX}place-available"
MAX_HELD_CYCLE_REQUESTS = 64
MAX_CYCLE_REQUEST_FRAME = 4096  # bytes; a cycle-request is a few hundred


def _answer(message: Any, events, handshake_authorization: str | None) -> tuple[str | bytes, Any]:
    """Handle one frame; always produce an answer frame (and the answer itself), never raise."""
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
        spec = events.events.get(event)
        if spec is not None and not blobs:
            decode_legacy_binary_fields(data, spec.binary_fields)
        place_blobs(data, blobs)
        context = EventContext(
            authorization=envelope.get("authorization") or handshake_authorization
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
        return encode_binary_frame(reply, {"payload": answer.data}), answer
    reply["data"] = answer
    return json.dumps(reply), answer


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
            except ConnectionClosed:
                pass  # the client left while its answer was being prepared

    def push_place_available(model: str, version: str) -> None:
        send(json.dumps({"type": PLACE_AVAILABLE, "request_id": None,
                         "data": {"model": model, "version": version}}))

    def handle(message: Any, cycle_request: bool) -> None:
        frame, answer = _answer(message, events, authorization)
        send(frame)
        if cycle_request and _asks_for_a_push(message) and _waits_for_a_place(answer):
            # A device turned away from this socket hears the moment a place may be open, even
            # while it sleeps its `timeout` between long-polls.
            model, version = answer["model"], answer["version"]
            try:
                events.notify_once(model, version, key=ws, callback=lambda: gevent.spawn(
                    push_place_available, model, version))
            except ApiError:
                pass  # the model went away meanwhile: nothing to wait for

    try:
        while True:
            message = ws.receive()
            cycle_request = _is_cycle_request(message)
            (held if cycle_request else in_flight).spawn(handle, message, cycle_request)
    except ConnectionClosed:
        pass
    finally:
        events.engine.unsubscribe(ws)
        in_flight.kill(block=False)
        held.kill(block=False)


def _asks_for_a_push(message: str) -> bool:
    """Pushes are opt-in (`"notify": true`): a client that did not ask never gets a frame it
    did not request."""
    data = json.loads(message).get("data")
    return isinstance(data, dict) and data.get("notify") is True


def _waits_for_a_place(answer: Any) -> bool:
    return (isinstance(answer, dict) and answer.get("status") == "rejected"
            and answer.get("reason") in WAITABLE_REASONS)


def _is_cycle_request(message: Any) -> bool:
    """A small JSON text frame of type cycle-request (binary frames never are)."""
    if not isinstance(message, str) or len(message) > MAX_CYCLE_REQUEST_FRAME:
        return False
    try:
        envelope = json.loads(message)
    except (ValueError, RecursionError):
        return False
    return isinstance(envelope, dict) and envelope.get("type") in (
        "cycle-request", f"{EVENT_PREFIX}cycle-request"
    )
