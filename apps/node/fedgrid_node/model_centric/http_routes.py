"""HTTP transport for the model-centric events: translate requests to fields, answers to responses.

Binary fields travel as raw bytes: the report's diff or an evaluation set as an
``application/octet-stream`` body (the other fields in the query string) or as a multipart file;
host-training's checkpoint and plans as multipart files. PyGrid's JSON forms with base64 strings are still accepted for compatibility.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from fedgrid_protocol.errors import invalid_request
from fedgrid_protocol.validation import load_json

from .events import BinaryAnswer, EventContext

blueprint = Blueprint("model_centric", __name__, url_prefix="/model-centric")

# Form fields that hold JSON documents when a request comes as multipart/form-data.
JSON_FORM_FIELDS = ("client_config", "server_config", "metrics")


def _events():
    return current_app.extensions["fedgrid"].events


def _decode_base64(value: Any, name: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise invalid_request(f"field '{name}' must be base64 text in a JSON body", field=name)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request(f"field '{name}' is not valid base64", field=name) from None


def decode_legacy_binary_fields(data: dict[str, Any], binary_fields: tuple[str, ...]) -> None:
    """PyGrid's JSON forms carry bytes as base64 strings (or a dict of them, for plans)."""
    for name in binary_fields:
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, dict):
            data[name] = {k: _decode_base64(v, f"{name}.{k}") for k, v in value.items()}
        else:
            data[name] = _decode_base64(value, name)


def request_fields(binary_fields: tuple[str, ...]) -> dict[str, Any]:
    """The request's fields, whatever way the client sent them."""
    mimetype = request.mimetype
    if mimetype == "application/json":
        data = load_json(request.get_data(cache=True))
        if not isinstance(data, dict):
            raise invalid_request("the JSON body must be an object")
        decode_legacy_binary_fields(data, binary_fields)
        return data
    data: dict[str, Any] = request.args.to_dict()
    if mimetype == "multipart/form-data":
        for key, value in request.form.items():
            if key in JSON_FORM_FIELDS:
                data[key] = load_json(value, f"form field '{key}'")
            else:
                data[key] = value
        for key, upload in request.files.items(multi=True):
            # `plans[<name>]` names each plan; other files go to their own field.
            if key.startswith("plans[") and key.endswith("]"):
                data.setdefault("plans", {})[key[6:-1]] = upload.read()
            else:
                data[key] = upload.read()
    elif mimetype == "application/octet-stream" and binary_fields:
        body = request.get_data(cache=False)
        if body:  # an empty body sends no bytes: an evaluation's report has no diff
            data[binary_fields[0]] = body
    if "metrics" in data and isinstance(data["metrics"], str):
        data["metrics"] = load_json(data["metrics"], "field 'metrics'")
    return data


def to_response(answer: dict | BinaryAnswer) -> Response:
    if isinstance(answer, BinaryAnswer):
        response = Response(answer.data, mimetype=answer.media_type)
        if answer.filename:
            response.headers["Content-Disposition"] = f'attachment; filename="{answer.filename}"'
        response.headers.update(answer.headers)
        return response
    response = jsonify(answer)
    if answer.get("status") == "rejected" and answer.get("timeout") is not None:
        # Pace steering for plain HTTP clients too: the standard header, in whole seconds.
        response.headers["Retry-After"] = str(math.ceil(answer["timeout"]))
    return response


def _handle(event: str) -> Response:
    events = _events()
    spec = events.events[event]
    data = request_fields(spec.binary_fields)
    context = EventContext(authorization=request.headers.get("Authorization"))
    return to_response(events.dispatch(event, data, context))


# event -> HTTP method; each is served at /model-centric/<event> by the same translation.
ROUTES = {
    "host-training": "POST",
    "authenticate": "POST",
    "cycle-request": "POST",
    "get-model": "GET",
    "get-plan": "GET",
    "report": "POST",
    "retrieve-model": "GET",
    "checkpoints": "GET",
    "processes": "GET",
    "cycles": "GET",
    "pause-process": "POST",
    "resume-process": "POST",
    "stop-process": "POST",
    "delete-process": "POST",
    "evaluation-set": "POST",
    "secagg-round": "POST",
    "secagg-advertise-keys": "POST",
    "secagg-share-keys": "POST",
    "secagg-masked-input": "POST",
    "secagg-unmask": "POST",
}


def _view(event: str):
    def view() -> Response:
        return _handle(event)

    view.__name__ = event.replace("-", "_")
    return view


for _event, _method in ROUTES.items():
    blueprint.add_url_rule(f"/{_event}", view_func=_view(_event), methods=[_method])
