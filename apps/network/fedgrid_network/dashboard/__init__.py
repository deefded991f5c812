"""The Network's dashboard at `/`: Nodes with health and last heartbeat, the model directory (one
row per Node, name and version), and the last hour's activity: Nodes online, heartbeats and
routes per minute, as small charts and as rates next to each Node and model.

Server-rendered from the registry and the in-memory activity counts (nothing from a CDN; charts
are inline SVG from `fedgrid_server.charts`); a small script of our own re-fetches the page every
few seconds and swaps the content, so the figures stay current without a reload. Everything shown
is public directory information, so the page needs no token.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template

from fedgrid_server.charts import Line, legend, multi_line_chart
from fedgrid_server.dashboard import STATIC_DIR

from .. import __version__
from ..activity import WINDOW_MINUTES, Window

# /static/dashboard.css and /static/refresh.js: the assets both dashboards share (fedgrid_server).
blueprint = Blueprint(
    "network_dashboard", __name__, template_folder="templates",
    static_folder=STATIC_DIR, static_url_path="/static",
)

RATE_MINUTES = 5  # the rates in the tables: over the last five minutes
CHART_LINES = 6  # the busiest Nodes / models get a line each; the rest are in the tables


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _minutes_ago(offset: float) -> str:
    return "now" if offset == 0 else f"{abs(offset):g}"


def _activity_chart(title: str, lines: list[Line], y_caption: str):
    # Counts per minute: whole-number ticks from 0.
    chart = multi_line_chart(
        title, lines, x_caption="minutes ago", y_caption=y_caption, y_from_zero=True,
        integer_y=True,
        x_range=(-(WINDOW_MINUTES - 1), 0), x_label=_minutes_ago, width=420, height=180,
    )
    return {"chart": chart, "legend": legend(chart)}


def _charts(window: Window) -> list[dict[str, Any]]:
    offsets = window.offsets

    def line(name: str, counts: list[int]) -> Line:
        return Line(name, list(zip(offsets, counts, strict=True)))

    routes = [line(f"{name} v{version} @ {node}", window.routes_to_model(node, name, version))
              for node, name, version in window.models()[:CHART_LINES - 1]]
    if any(window.refused):
        routes.append(line("refused", window.refused))
    return [
        {"id": "nodes-online", **_activity_chart(
            "Nodes online", [line("Nodes online", window.nodes_online())], "Nodes")},
        {"id": "heartbeats", **_activity_chart(
            "Heartbeats per minute",
            [line(node, window.heartbeats_of(node)) for node in window.nodes()[:CHART_LINES]],
            "per minute")},
        {"id": "routes", **_activity_chart("Routes per minute", routes, "per minute")},
    ]


@blueprint.get("/")
def index():
    state = current_app.extensions["fedgrid_network"]
    window = state.activity.window()
    nodes = state.registry.list_nodes()
    for node in nodes:
        node["heartbeat_ago"] = _ago(node["seconds_since_heartbeat"])
        node["heartbeat_rate"] = window.rate(window.heartbeats_of(node["node_id"]), RATE_MINUTES)
        node["route_rate"] = window.rate(window.routes_to_node(node["node_id"]), RATE_MINUTES)
    models = state.registry.models()
    for model in models:
        model["route_rate"] = window.rate(
            window.routes_to_model(model["node_id"], model["name"], model["version"]),
            RATE_MINUTES)
    # A name on several Nodes is several independent models: the page says so on each of them.
    nodes_of_name: dict[str, set[str]] = {}
    for model in models:
        nodes_of_name.setdefault(model["name"], set()).add(model["node_id"])
    for model in models:
        model["shared_name"] = len(nodes_of_name[model["name"]]) > 1
    response = current_app.make_response(render_template(
        "network_dashboard.html",
        version=__version__,
        nodes=nodes,
        models=models,
        counts=state.registry.counts(),
        offline_after=state.config.offline_after_seconds,
        charts=_charts(window),
        rate_minutes=RATE_MINUTES,
        window_minutes=WINDOW_MINUTES,
    ))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:"
    )
    return response
