"""Health, identity and the OpenAPI document of the Node."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify
from sqlalchemy import func, select, text

from . import __version__
from .db.models import Process
from .openapi import openapi_document

blueprint = Blueprint("node_info", __name__)
_started = time.time()


@blueprint.get("/health")
def health():
    state = current_app.extensions["fedgrid"]
    try:
        with state.db.session() as session:
            session.execute(text("SELECT 1"))
    except Exception:  # the database being down is exactly what this route reports
        body = {"status": "unavailable", "database": "unreachable"}
        return jsonify(body), 503
    # The disk failed a flush: the Node takes no more writes until it is restarted.
    diff_files = state.engine.diff_files
    if state.db.storage_failure is not None or (diff_files is not None and diff_files.failure):
        return jsonify({"status": "unavailable", "database": "ok", "storage": "failed"}), 503
    return jsonify({"status": "ok", "database": "ok", "storage": "ok"})


@blueprint.get("/status")
def status():
    state = current_app.extensions["fedgrid"]
    with state.db.session() as session:
        processes = session.scalar(select(func.count()).select_from(Process))
    cluster = state.engine.cluster
    replica = None if cluster is None else {"id": cluster.replica_id, "leader": cluster.leading}
    return jsonify(
        {
            "kind": "node",
            "node_id": state.config.node_id,
            "version": __version__,
            "address": state.config.address,
            "network": state.config.network_url,
            "processes": processes,
            # One of several replicas (--cluster): which, and whether it runs the cycles' timers.
            "replica": replica,
            "uptime_seconds": round(time.time() - _started, 3),
        }
    )


@blueprint.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(__version__))
