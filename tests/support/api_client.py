"""A bare test client for the Node's events over HTTP or WebSocket, with one interface.

Deliberately not the SDK: the API tests must see exactly what goes over the wire.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import requests
import websocket

from fedgrid_protocol.frames import decode_binary_frame, encode_binary_frame

# event -> (HTTP method, how the fields travel)
HTTP_ROUTES = {
    "host-training": ("POST", "multipart"),
    "authenticate": ("POST", "json"),
    "cycle-request": ("POST", "json"),
    "get-model": ("GET", "query"),
    "get-plan": ("GET", "query"),
    "report": ("POST", "octet-stream"),
    "retrieve-model": ("GET", "query"),
    "checkpoints": ("GET", "query"),
    "processes": ("GET", "query"),
    "cycles": ("GET", "query"),
    "pause-process": ("POST", "json"),
    "resume-process": ("POST", "json"),
    "stop-process": ("POST", "json"),
    "delete-process": ("POST", "json"),
    "evaluation-set": ("POST", "octet-stream"),
    "secagg-round": ("POST", "json"),
    "secagg-advertise-keys": ("POST", "octet-stream"),
    "secagg-share-keys": ("POST", "octet-stream"),
    "secagg-masked-input": ("POST", "octet-stream"),
    "secagg-unmask": ("POST", "octet-stream"),
}


@dataclass
class Answer:
    status: int
    body: dict[str, Any] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def error_code(self) -> str | None:
        return (self.body or {}).get("error", {}).get("code")


class HttpApi:
    transport = "http"

    def __init__(self, url: str, admin_token: str) -> None:
        self.url = url
        self.admin_token = admin_token
        self.session = requests.Session()

    def call(self, event: str, data: dict | None = None, *, admin: bool = False,
             authorization: str | None = None, blobs: dict[str, bytes] | None = None) -> Answer:
        method, style = HTTP_ROUTES[event]
        headers = {}
        if admin:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        if authorization is not None:
            headers["Authorization"] = authorization
        url = f"{self.url}/model-centric/{event}"
        data = dict(data or {})
        blobs = blobs or {}
        if style == "json":
            response = self.session.post(url, json=data, headers=headers, timeout=60)
        elif style == "query":
            response = self.session.get(url, params=data, headers=headers, timeout=60)
        elif style == "octet-stream":
            if "metrics" in data:
                data["metrics"] = json.dumps(data["metrics"])
            headers["Content-Type"] = "application/octet-stream"
            # The event's one binary field (a diff, an evaluation set) is the body.
            body = next(iter(blobs.values()), b"")
            response = self.session.post(url, params=data, data=body,
                                         headers=headers, timeout=60)
        else:  # multipart
            form = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in data.items()}
            files = [
                (f"plans[{path[6:]}]" if path.startswith("plans/") else path, (path, blob))
                for path, blob in blobs.items()
            ]
            response = self.session.post(url, data=form, files=files or None, headers=headers,
                                         timeout=60)
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return Answer(response.status_code, body=response.json(), headers=dict(response.headers))
        return Answer(response.status_code, content=response.content, headers=dict(response.headers))

    def close(self) -> None:
        self.session.close()


class WsApi:
    transport = "ws"

    def __init__(self, ws_url: str, admin_token: str) -> None:
        self.ws_url = ws_url
        self.admin_token = admin_token
        self._ws: websocket.WebSocket | None = None
        self._ids = itertools.count(1)

    @property
    def ws(self) -> websocket.WebSocket:
        if self._ws is None:
            self._ws = websocket.create_connection(self.ws_url, timeout=60)
        return self._ws

    def send_raw(self, message: str | bytes) -> Any:
        if isinstance(message, bytes):
            self.ws.send_binary(message)
        else:
            self.ws.send(message)
        return self.ws.recv()

    def call(self, event: str, data: dict | None = None, *, admin: bool = False,
             authorization: str | None = None, blobs: dict[str, bytes] | None = None) -> Answer:
        envelope: dict[str, Any] = {
            "type": f"model-centric/{event}",
            "request_id": next(self._ids),
            "data": dict(data or {}),
        }
        if admin:
            envelope["authorization"] = f"Bearer {self.admin_token}"
        if authorization is not None:
            envelope["authorization"] = authorization
        reply = self.send_raw(encode_binary_frame(envelope, blobs) if blobs
                              else json.dumps(envelope))
        if isinstance(reply, bytes):
            answer_envelope, answer_blobs = decode_binary_frame(reply)
            assert answer_envelope["request_id"] == envelope["request_id"]
            return Answer(200, content=answer_blobs["payload"], headers=answer_envelope["data"])
        answer = json.loads(reply)
        assert answer["request_id"] == envelope["request_id"]
        assert answer["type"] == envelope["type"]
        body = answer["data"]
        status = body["error"]["status"] if "error" in body else 200
        return Answer(status, body=body)

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
