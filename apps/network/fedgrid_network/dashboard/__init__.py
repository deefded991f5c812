"""The Network's dashboard at `/`: Nodes with health and last heartbeat, and the model directory.

Server-rendered from the registry (nothing from a CDN); a small script of our own re-fetches the
page every few seconds and swaps the content, so the figures stay current without a reload.
Everything shown is public directory information, so the page needs no token.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from fedgrid_server.dashboard import STATIC_DIR

from .. import __version__

# /static/dashboard.css and /static/refresh.js: the assets both dashboards share (fedgrid_server).
blueprint = Blueprint(
    "network_dashboard", __name__, template_folder="templates",
    static_folder=STATIC_DIR, static_url_path="/static",
)


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


@blueprint.get("/")
def index():
    state = current_app.extensions["fedgrid_network"]
    nodes = state.registry.list_nodes()
    for node in nodes:
        node["heartbeat_ago"] = _ago(node["seconds_since_heartbeat"])
    response = current_app.make_response(render_template(
        "network_dashboard.html",
        version=__version__,
        nodes=nodes,
        models=state.registry.models(),
        counts=state.registry.counts(),
        offline_after=state.config.offline_after_seconds,
    ))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:"
    )
    return response
