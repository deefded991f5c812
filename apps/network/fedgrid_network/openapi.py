"""The OpenAPI 3.1 document of the Network, served at /openapi.json.

Request bodies and parameters reference the schemas of the models the routes validate with
(`fedgrid_protocol.network`), so the document says what the Network accepts; the paths and the
answers are written here, and a test compares the paths with Flask's rules.
"""

from __future__ import annotations

from typing import Any

from fedgrid_protocol.network import (
    HeartbeatRequest,
    JoinRequest,
    LeaveRequest,
    ModelQuery,
    NodeRef,
)
from fedgrid_protocol.openapi import json_body, model_schemas, parameters, schema_ref

ERROR = {"$ref": "#/components/schemas/Error"}
JSON_OK = {"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}}
HTML_OK = {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}


def _responses(ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    answer: dict[str, Any] = {"200": ok}
    for status in errors:
        answer[str(status)] = {"description": "error",
                               "content": {"application/json": {"schema": ERROR}}}
    return answer


# What the routes validate: the body of /join, /heartbeat and /leave, the query of /route and
# /search-model, the path of /nodes/{node_id}.
REQUEST_MODELS = (JoinRequest, HeartbeatRequest, LeaveRequest, ModelQuery, NodeRef)


def openapi_document(version: str) -> dict[str, Any]:
    schemas = model_schemas(REQUEST_MODELS)
    node_path = parameters(NodeRef, schemas, "path")
    model_query = parameters(ModelQuery, schemas)
    paths: dict[str, Any] = {
        "/": {"get": {"summary": "Dashboard: Nodes with health and last heartbeat, model "
                                 "directory, the last hour's routes and heartbeats per minute",
                      "responses": {"200": HTML_OK}}},
        "/health": {"get": {"summary": "Liveness and database reachability",
                            "responses": _responses(JSON_OK, 503)}},
        "/status": {"get": {"summary": "Identity: kind=network, version, Node counts",
                            "responses": _responses(JSON_OK)}},
        "/openapi.json": {"get": {"summary": "This document", "responses": _responses(JSON_OK)}},
        "/join": {"post": {
            "summary": "A Node joins (or re-joins with its node token); answers its node token",
            "security": [{"registrationSecret": []}],
            "requestBody": json_body(JoinRequest),
            "responses": _responses(JSON_OK, 400, 401, 403, 409),
        }},
        "/heartbeat": {"post": {
            "summary": "A Node's (or one of its replicas') heartbeat: hosted processes, devices, "
                       "load, health",
            "security": [{"nodeToken": []}],
            "requestBody": json_body(HeartbeatRequest),
            "responses": _responses(JSON_OK, 400, 401, 403, 404),
        }},
        "/leave": {"post": {
            "summary": "A Node (or, with `replica`, one replica) going down says so; it is offline "
                       "until it joins again",
            "security": [{"nodeToken": []}],
            "requestBody": json_body(LeaveRequest),
            "responses": _responses(JSON_OK, 400, 401, 403, 404),
        }},
        "/nodes": {"get": {"summary": "Every registered Node with status, replicas online/total and "
                                      "hosted processes",
                           "responses": _responses(JSON_OK)}},
        "/nodes/{node_id}": {
            "get": {"summary": "One Node, with each of its replicas", "parameters": node_path,
                    "responses": _responses(JSON_OK, 400, 404)},
            "delete": {"summary": "Remove a Node from the registry (admin)", "parameters": node_path,
                       "security": [{"adminToken": []}],
                       "responses": _responses(JSON_OK, 400, 401, 403, 404)},
        },
        "/connected-nodes": {"get": {"summary": "PyGrid's form: ids of the Nodes online now",
                                     "responses": _responses(JSON_OK)}},
        "/search-model": {
            "get": {"summary": "Nodes hosting a model (any status), with cycle status",
                    "parameters": model_query, "responses": _responses(JSON_OK, 400)},
            "post": {"summary": "Nodes hosting a model (PyGrid's form: the query in a JSON body; "
                                "a query parameter given wins)",
                     "parameters": [{**p, "required": False} for p in model_query],
                     "requestBody": {"required": False, "content": {
                         "application/json": {"schema": schema_ref(ModelQuery)}}},
                     "responses": _responses(JSON_OK, 400)},
        },
        "/models": {"get": {"summary": "The model directory: one entry per (Node, name, version); "
                                       "a name on two Nodes is two independent models",
                            "responses": _responses(JSON_OK)}},
        "/route": {"get": {
            "summary": "The model a device should train: an online Node hosting the name (`node` "
                       "pins one); with several, a training process first, then the least "
                       "loaded, and `picked_by` and `candidates` say so",
            "parameters": model_query,
            "responses": _responses({"description": "the Node to use", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "node_id": {"type": "string"}, "address": {"type": "string"},
                    "model": {"type": "string"}, "version": {"type": "string"},
                    "picked_by": {"type": "string", "enum": [
                        "node_requested", "only_node", "training_then_least_loaded"]},
                    "candidates": {"type": "array", "items": {"type": "object", "properties": {
                        "node_id": {"type": "string"}, "address": {"type": "string"},
                        "version": {"type": "string"}}}},
                }, "required": ["node_id", "address", "picked_by", "candidates"]}}}}, 400, 404),
        }},
        "/static/{filename}": {"get": {
            "summary": "Dashboard assets (dashboard.css, refresh.js); any other name is a 404",
            "parameters": [{"name": "filename", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": _responses({"description": "file"}, 404)}},
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
            "schemas": {**schemas, "Error": {"type": "object", "properties": {"error": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                               "status": {"type": "integer"}, "details": {"type": "object"}},
                "required": ["code", "message", "status"],
            }}}},
        },
    }
