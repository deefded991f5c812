"""The OpenAPI 3.1 document of the Node's HTTP routes, served at /openapi.json.

Written out by hand (the routes are few and stable) and held honest by a test that checks every
Flask rule appears here and every path here is a Flask rule.
"""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
BINARY = {"type": "string", "format": "binary"}


def _json_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": properties, "required": required}
            }
        },
    }


def _query(*names: str, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "query", "required": n in required, "schema": {"type": "string"}}
        for n in names
    ]


def _responses(ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    answer = {"200": ok}
    for status in errors:
        answer[str(status)] = {
            "description": "error",
            "content": {"application/json": {"schema": ERROR}},
        }
    return answer


JSON_OK = {"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}}
BINARY_OK = {"description": "bytes", "content": {"application/octet-stream": {"schema": BINARY}}}
ADMIN = [{"adminToken": []}]


def openapi_document(version: str) -> dict[str, Any]:
    mc = "/model-centric"
    paths: dict[str, Any] = {
        f"{mc}/host-training": {
            "post": {
                "summary": "Host a model: checkpoint, client plans, optional averaging plan, configs",
                "security": ADMIN,
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "version": {"type": "string"},
                                    "model": BINARY,
                                    "plans[<name>]": BINARY,
                                    "averaging_plan": BINARY,
                                    "client_config": {"type": "string", "description": "JSON"},
                                    "server_config": {"type": "string", "description": "JSON"},
                                },
                                "required": ["name", "version", "model"],
                            }
                        },
                        "application/json": {
                            "schema": {"type": "object", "description": "PyGrid form, base64 bytes"}
                        },
                    },
                },
                "responses": _responses(JSON_OK, 400, 401, 403, 409, 413),
            }
        },
        f"{mc}/authenticate": {
            "post": {
                "summary": "Get a worker id bound to one hosted model",
                "requestBody": _json_body(
                    {
                        "auth_token": {"type": "string"},
                        "model_name": {"type": "string"},
                        "model_version": {"type": "string"},
                    },
                    ["model_name"],
                ),
                "responses": _responses(JSON_OK, 400, 401, 404, 503),
            }
        },
        f"{mc}/cycle-request": {
            "post": {
                "summary": "Ask for a place in the current cycle (accepted, or rejected with timeout)",
                "requestBody": _json_body(
                    {
                        "worker_id": {"type": "string"},
                        "model": {"type": "string"},
                        "version": {"type": "string"},
                        "ping": {"type": "number", "description": "milliseconds"},
                        "download": {"type": "number", "description": "Mbit/s"},
                        "upload": {"type": "number", "description": "Mbit/s"},
                        "wait": {
                            "type": "number", "minimum": 0, "maximum": 30,
                            "description": "seconds the Node may hold the request until a place "
                                           "opens (long-poll); 0 answers at once",
                        },
                    },
                    ["worker_id", "model"],
                ),
                "responses": _responses(JSON_OK, 400, 403, 404),
            }
        },
        f"{mc}/get-model": {
            "get": {
                "summary": "Download the cycle's checkpoint (safetensors)",
                "parameters": _query("worker_id", "request_key", "model_id",
                                     required=("worker_id", "request_key")),
                "responses": _responses(BINARY_OK, 400, 403, 404, 409),
            }
        },
        f"{mc}/get-plan": {
            "get": {
                "summary": "Download a training plan of the assignment's model",
                "parameters": _query("worker_id", "request_key", "plan_id", "receive_operations_as",
                                     required=("worker_id", "request_key", "plan_id")),
                "responses": _responses(BINARY_OK, 400, 403, 404, 409),
            }
        },
        f"{mc}/report": {
            "post": {
                "summary": "Report a diff (safetensors body); success means it is durably stored",
                "parameters": _query("worker_id", "request_key", "num_samples", "metrics"),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {"schema": BINARY},
                        "multipart/form-data": {"schema": {"type": "object"}},
                        "application/json": {"schema": {"type": "object",
                                                        "description": "PyGrid form, base64 diff"}},
                    },
                },
                "responses": _responses(JSON_OK, 400, 403, 404, 409, 413),
            }
        },
        f"{mc}/retrieve-model": {
            "get": {
                "summary": "Download a checkpoint by number or alias 'latest'",
                "security": ADMIN,
                "parameters": _query("name", "version", "checkpoint", required=("name",)),
                "responses": _responses(BINARY_OK, 400, 401, 403, 404),
            }
        },
        f"{mc}/checkpoints": {
            "get": {
                "summary": "List a model's checkpoints",
                "security": ADMIN,
                "parameters": _query("name", "version", required=("name",)),
                "responses": _responses(JSON_OK, 400, 401, 403, 404),
            }
        },
        f"{mc}/processes": {
            "get": {
                "summary": "List hosted processes with their current cycle",
                "security": ADMIN,
                "responses": _responses(JSON_OK, 401, 403),
            }
        },
        f"{mc}/cycles": {
            "get": {
                "summary": "Per-cycle metrics: accepted, reported, dropped, rejected by reason, "
                "client loss/accuracy (num_samples-weighted), aggregation time, checkpoint",
                "security": ADMIN,
                "parameters": _query("name", "version", required=("name",)),
                "responses": _responses(JSON_OK, 400, 401, 403, 404),
            }
        },
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
        "/health": {"get": {"summary": "Liveness and database reachability",
                            "responses": _responses(JSON_OK, 503)}},
        "/status": {"get": {"summary": "Node identity", "responses": _responses(JSON_OK)}},
        "/openapi.json": {"get": {"summary": "This document", "responses": _responses(JSON_OK)}},
        "/js/<path:filename>": {
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
                "summary": "Example page: train a digits shard in this browser, live loss chart, report status",
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
    return {
        "openapi": "3.1.0",
        "info": {"title": "Fedgrid Node", "version": version},
        "paths": paths,
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "status": {"type": "integer"},
                                "details": {"type": "object"},
                            },
                            "required": ["code", "message"],
                        }
                    },
                }
            },
        },
    }
