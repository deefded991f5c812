"""The OpenAPI 3.1 document of the Node's HTTP routes, served at /openapi.json.

The model-centric events come from the protocol (fedgrid_protocol.events: the same models the
Node validates with); the few other routes are written here. A test checks every Flask rule
appears here and every path here is a Flask rule, and that the document is valid OpenAPI.
"""

from __future__ import annotations

from typing import Any

from fedgrid_protocol.events import EVENTS
from fedgrid_protocol.openapi import ADMIN, BINARY_SCHEMA, document, error_responses

ERROR = {"$ref": "#/components/schemas/ErrorAnswer"}
BINARY = BINARY_SCHEMA


def _query(*names: str, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "query", "required": n in required, "schema": {"type": "string"}}
        for n in names
    ]


def _responses(ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    return {"200": ok, **error_responses(*errors)}


JSON_OK = {"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}}
BINARY_OK = {"description": "bytes", "content": {"application/octet-stream": {"schema": BINARY}}}


def openapi_document(version: str) -> dict[str, Any]:
    mc = "/model-centric"
    other_paths: dict[str, Any] = {
        "/metrics": {
            "get": {
                "summary": "Prometheus text exposition of every process's cycle metrics",
                "security": ADMIN,
                "responses": {"200": {"description": "text/plain; version=0.0.4"}, "401": {
                    "description": "error", "content": {"application/json": {"schema": ERROR}}}},
            }
        },
        f"{mc}/speed-test": {
            "get": {
                "summary": "Download sample of `size` bytes (default 4 MiB, at most 64 MiB)",
                "parameters": _query("size"),
                "responses": _responses(BINARY_OK, 400),
            },
            "post": {
                "summary": "Upload sample; answers the number of bytes received",
                "requestBody": {"content": {"application/octet-stream": {"schema": BINARY}}},
                "responses": _responses(JSON_OK, 413),
            },
        },
        "/health": {"get": {"summary": "Liveness, database reachability and storage",
                            "responses": _responses(JSON_OK, 503)}},
        "/status": {"get": {"summary": "Node identity", "responses": _responses(JSON_OK)}},
        "/openapi.json": {"get": {"summary": "This document", "responses": _responses(JSON_OK)}},
        "/js/{filename}": {
            "get": {
                "summary": "JavaScript SDK files for browsers: fedgrid.js (one script tag, global "
                "`fedgrid`), fedgrid.mjs, ort/<ONNX Runtime WASM file>, examples/<data>; "
                "404 js_assets_missing until `make js` built them (FEDGRID_JS_ASSETS)",
                "parameters": [{"name": "filename", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "the file (text/javascript, application/wasm, ...)"},
                    "404": {"description": "error", "content": {"application/json": {"schema": ERROR}}},
                },
            }
        },
        "/examples/browser-device": {
            "get": {
                "summary": "Example page: train a digits shard in this browser, live loss chart, report "
                "status; cross-origin isolated (COOP/COEP) unless --cross-origin-isolation off",
                "responses": {
                    "200": {"description": "text/html"},
                    "404": {"description": "error", "content": {"application/json": {"schema": ERROR}}},
                },
            }
        },
        "/ws": {
            "get": {
                "summary": "WebSocket: envelopes {type, request_id, data} for the same events; "
                "binary frames carry bytes in a safetensors container (see docs/api.md)",
                "responses": {"101": {"description": "switching protocols"}},
            }
        },
    }
    return document("Fedgrid Node", version, prefix=mc, events=EVENTS, other_paths=other_paths,
                    description="Model-centric federated learning: see docs/api.md")
