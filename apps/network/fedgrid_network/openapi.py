"""The OpenAPI 3.1 document of the Network, served at /openapi.json.

Written by hand (the routes are few) and held honest by a test that compares it with Flask's rules.
"""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
JSON_OK = {"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}}
HTML_OK = {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}


def _query(*names: str, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "query", "required": n in required, "schema": {"type": "string"}}
        for n in names
    ]


def _responses(ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    answer: dict[str, Any] = {"200": ok}
    for status in errors:
        answer[str(status)] = {"description": "error",
                               "content": {"application/json": {"schema": ERROR}}}
    return answer


def _json_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": properties, "required": required}}}}


PROCESS = {
    "type": "object",
    "properties": {
        "name": {"type": "string"}, "version": {"type": "string"},
        "status": {"enum": ["open", "waiting", "finished"]},
        "cycle": {"type": ["integer", "null"]}, "checkpoint": {"type": ["integer", "null"]},
        "accepted": {"type": "integer"}, "reported": {"type": "integer"},
        "deadline": {"type": ["string", "null"], "format": "date-time"},
    },
    "required": ["name", "version"],
}
NODE_PATH = [{"name": "node_id", "in": "path", "required": True, "schema": {"type": "string"}}]


def openapi_document(version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/": {"get": {"summary": "Dashboard: Nodes with health and last heartbeat, model directory",
                      "responses": {"200": HTML_OK}}},
        "/health": {"get": {"summary": "Liveness and database reachability",
                            "responses": _responses(JSON_OK, 503)}},
        "/status": {"get": {"summary": "Identity: kind=network, version, Node counts",
                            "responses": _responses(JSON_OK)}},
        "/openapi.json": {"get": {"summary": "This document", "responses": _responses(JSON_OK)}},
        "/join": {"post": {
            "summary": "A Node joins (or re-joins with its node token); answers its node token",
            "security": [{"registrationSecret": []}],
            "requestBody": _json_body({
                "node_id": {"type": "string"}, "address": {"type": "string", "format": "uri"},
                "node_token": {"type": "string", "description": "required to re-join an id"},
                "version": {"type": "string"},
            }, ["node_id", "address"]),
            "responses": _responses(JSON_OK, 400, 401, 403, 409),
        }},
        "/heartbeat": {"post": {
            "summary": "A Node's heartbeat: hosted processes, devices, load, health",
            "security": [{"nodeToken": []}],
            "requestBody": _json_body({
                "node_id": {"type": "string"}, "processes": {"type": "array", "items": PROCESS},
                "devices": {"type": "integer"}, "load": {"type": "number"},
                "health": {"enum": ["ok", "degraded"]},
            }, ["node_id"]),
            "responses": _responses(JSON_OK, 400, 401, 403, 404),
        }},
        "/leave": {"post": {
            "summary": "A Node going down says so; it is offline until it joins again",
            "security": [{"nodeToken": []}],
            "requestBody": _json_body({"node_id": {"type": "string"}}, ["node_id"]),
            "responses": _responses(JSON_OK, 401, 403, 404),
        }},
        "/nodes": {"get": {"summary": "Every registered Node with status and hosted processes",
                           "responses": _responses(JSON_OK)}},
        "/nodes/{node_id}": {
            "get": {"summary": "One Node", "parameters": NODE_PATH,
                    "responses": _responses(JSON_OK, 404)},
            "delete": {"summary": "Remove a Node from the registry (admin)", "parameters": NODE_PATH,
                       "security": [{"adminToken": []}],
                       "responses": _responses(JSON_OK, 401, 403, 404)},
        },
        "/connected-nodes": {"get": {"summary": "PyGrid's form: ids of the Nodes online now",
                                     "responses": _responses(JSON_OK)}},
        "/search-model": {
            method: {"summary": "Nodes hosting a model (any status), with cycle status",
                     "parameters": _query("model", "version"),
                     "responses": _responses(JSON_OK, 400)}
            for method in ("get", "post")
        },
        "/models": {"get": {"summary": "The model directory: every (name, version) and its Nodes",
                            "responses": _responses(JSON_OK)}},
        "/route": {"get": {
            "summary": "Address of a healthy Node hosting the model, least loaded first",
            "parameters": _query("model", "version", required=("model",)),
            "responses": _responses({"description": "the Node to use", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "node_id": {"type": "string"}, "address": {"type": "string"},
                    "model": {"type": "string"}, "version": {"type": "string"},
                }, "required": ["node_id", "address"]}}}}, 400, 404),
        }},
        "/static/{filename}": {"get": {
            "summary": "Dashboard assets",
            "parameters": [{"name": "filename", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "file"}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Fedgrid Network", "version": version,
                 "description": "Registry of Fedgrid Nodes, model directory and device routing."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer"},
                "registrationSecret": {"type": "http", "scheme": "bearer",
                                       "description": "NETWORK_SECRET, shared with the Nodes"},
                "nodeToken": {"type": "http", "scheme": "bearer",
                              "description": "the token /join answered to this Node"},
            },
            "schemas": {"Error": {"type": "object", "properties": {"error": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                               "status": {"type": "integer"}, "details": {"type": "object"}},
                "required": ["code", "message", "status"],
            }}}},
        },
    }
