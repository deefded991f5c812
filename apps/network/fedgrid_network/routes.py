"""The Network's JSON API (see docs/operations.md and /openapi.json)."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import text

from fedgrid_protocol.errors import ApiError
from fedgrid_protocol.network import (
    HeartbeatRequest,
    JoinRequest,
    LeaveRequest,
    ModelQuery,
    NodeRef,
)
from fedgrid_protocol.validation import load_json, validate

from . import __version__
from .credentials import bearer_token, check_bearer
from .openapi import openapi_document

blueprint = Blueprint("network_api", __name__)
_started = time.time()


def _state():
    return current_app.extensions["fedgrid_network"]


def _json_body() -> dict[str, Any]:
    raw = request.get_data()
    if not raw:
        return {}
    if not request.is_json:
        raise ApiError("invalid_json", "the request body is not JSON", 400)
    data = load_json(raw)
    if not isinstance(data, dict):
        raise ApiError("invalid_json", "the request body must be a JSON object", 400)
    return data


def _query(body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The query string's fields over the JSON body's (a query parameter given wins)."""
    query = {key: value for key, value in request.args.to_dict().items() if value != ""}
    return {**(body or {}), **query}


def _node_ref(node_id: str) -> str:
    return validate(NodeRef, {"node_id": node_id}).node_id


def _require_admin() -> None:
    check_bearer(_state().config.admin_token, request.headers.get("Authorization"),
                 what="Network's admin token", code_prefix="admin_token")


# ------------------------------------------------------------------------------- identity


@blueprint.get("/health")
def health():
    try:
        with _state().db.session() as session:
            session.execute(text("SELECT 1"))
    except Exception:  # the database being down is exactly what this route reports
        return jsonify({"status": "unavailable", "database": "unreachable"}), 503
    return jsonify({"status": "ok", "database": "ok"})


@blueprint.get("/status")
def status():
    state = _state()
    return jsonify({
        "kind": "network",
        "version": __version__,
        "nodes": state.registry.counts(),
        "heartbeat_interval": state.config.heartbeat_interval,
        "offline_after": state.config.offline_after_seconds,
        "uptime_seconds": round(time.time() - _started, 3),
    })


@blueprint.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(__version__))


# ------------------------------------------------------------------------------- Nodes' side


@blueprint.post("/join")
def join():
    state = _state()
    check_bearer(state.config.registration_secret, request.headers.get("Authorization"),
                 what="Network's registration secret (NETWORK_SECRET)",
                 code_prefix="registration_secret")
    joining = validate(JoinRequest, _json_body())
    return jsonify(state.registry.join(joining))


def _node_token() -> str:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        raise ApiError("node_token_required",
                       "send 'Authorization: Bearer <node token>' (the token the join answered)",
                       401, headers={"WWW-Authenticate": "Bearer"})
    return token


@blueprint.post("/heartbeat")
def heartbeat():
    data = _json_body()
    token = _node_token()
    beat = validate(HeartbeatRequest, data)
    state = _state()
    answer = state.registry.heartbeat(beat, token)
    state.activity.heartbeat(beat.node_id)
    return jsonify(answer)


@blueprint.post("/leave")
def leave():
    data = _json_body()
    token = _node_token()
    leaving = validate(LeaveRequest, data)
    return jsonify(_state().registry.leave(leaving.node_id, token, leaving.replica))


# ------------------------------------------------------------------------------- directory


@blueprint.get("/nodes")
def list_nodes():
    return jsonify({"nodes": _state().registry.list_nodes()})


@blueprint.get("/nodes/<node_id>")
def get_node(node_id: str):
    return jsonify(_state().registry.get_node(_node_ref(node_id)))


@blueprint.delete("/nodes/<node_id>")
def remove_node(node_id: str):
    _require_admin()
    return jsonify(_state().registry.remove(_node_ref(node_id)))


@blueprint.get("/connected-nodes")
def connected_nodes():
    """PyGrid's spelling: the ids of the Nodes online now."""
    nodes = _state().registry.list_nodes()
    return jsonify({"grid-nodes": [n["node_id"] for n in nodes if n["status"] == "online"]})


@blueprint.route("/search-model", methods=["GET", "POST"])
def search_model():
    body = _json_body() if request.method == "POST" else {}
    query = validate(ModelQuery, _query(body))
    return jsonify(_state().registry.search_model(query.name, query.version, query.node))


@blueprint.get("/models")
def models():
    return jsonify({"models": _state().registry.models()})


@blueprint.get("/route")
def route():
    query = validate(ModelQuery, _query())
    state = _state()
    try:
        answer = state.registry.route(query.name, query.version, query.node)
    except ApiError:
        state.activity.route_refused()
        raise
    state.activity.routed(answer["node_id"], answer["model"], answer["version"])
    return jsonify(answer)
