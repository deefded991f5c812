"""The Node's dashboard at `/`, for researchers and operators.

Server-rendered (Jinja templates, charts as inline SVG drawn in Python), with assets served by
the Node itself: nothing comes from a CDN, and the page works without JavaScript. A small script
of our own re-fetches the page every few seconds and swaps the content, so a training run can be
watched live.

Anyone sees who the Node is and whether it is registered with its Network. Hosted processes,
cycles, client metrics and checkpoints are admin data: the admin token is typed into a form once,
checked, and the browser then holds a signed session cookie (HttpOnly, SameSite=Strict, signed
with SECRET_KEY) carrying only an HMAC of the token — never the token itself, and never in a URL
or a log. Changing the admin token (or SECRET_KEY) logs every browser out.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import distinct, func, select

from fedgrid_protocol.errors import ApiError
from fedgrid_protocol.events import MAX_ID
from fedgrid_server.charts import Line, legend, multi_line_chart
from fedgrid_server.dashboard import STATIC_DIR

from .. import __version__
from ..cycles.cycle_aggregate import privacy_status
from ..cycles.server_config import parse_server_config
from ..cycles.statuses import AbandonReason, AssignmentStatus, CloseReason
from ..db.models import Assignment, Checkpoint, Cycle, Model, Process, utcnow
from ..model_centric.events import checkpoint_evaluations
from .loss_warnings import RULE as LOSS_RULE
from .loss_warnings import loss_warnings

blueprint = Blueprint("node_dashboard", __name__, template_folder="templates")
# The stylesheet and the live-refresh script are the ones the Network's dashboard serves too.
ASSETS = {"dashboard.css": "text/css", "refresh.js": "text/javascript"}

SESSION_KEY = "fedgrid_admin"
HISTORY_ROWS = 12
MAX_CHART_POINTS = 240
PREFERRED_METRICS = ("loss", "accuracy")
_started = time.time()


class DashboardSessions(SecureCookieSessionInterface):
    """The signed session cookie is the dashboard's alone. Flask opens (verifies and decodes) it
    on every request; the protocol's routes never read it, and at hundreds of requests a second
    that was ~4 % of the hub's time per report (py-spy under report_ingest.py)."""

    def open_session(self, app: Flask, request):
        if request.path == "/" or request.path.startswith("/dashboard/"):
            return super().open_session(app, request)
        return self.make_null_session(app)


def init_app(app: Flask) -> None:
    """Register the dashboard, harden its session cookie and document its routes."""
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_NAME="fedgrid_dashboard")
    app.session_interface = DashboardSessions()
    app.register_blueprint(blueprint)
    documented = app.view_functions.get("node_info.openapi")
    if documented is not None:
        def openapi_with_dashboard():
            document = documented().get_json()
            document["paths"].update(OPENAPI_PATHS)
            return jsonify(document)

        app.view_functions["node_info.openapi"] = openapi_with_dashboard


# ----------------------------------------------------------------------------------- access


def _fingerprint(token: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def is_admin() -> bool:
    held = session.get(SESSION_KEY)
    token = current_app.extensions["fedgrid"].config.admin_token
    return isinstance(held, str) and bool(token) and hmac.compare_digest(held, _fingerprint(token))


def _check_same_origin() -> None:
    """Forms post only from this Node's own pages (SameSite=Strict already keeps cookies home)."""
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        expected = urlsplit(request.host_url)
        given = urlsplit(origin)
        if (given.scheme, given.netloc) != (expected.scheme, expected.netloc):
            raise ApiError("cross_origin_form", "dashboard forms must come from this Node's pages",
                           403)


def _page(html: str, status: int = 200) -> Response:
    response = current_app.make_response((html, status))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# ----------------------------------------------------------------------------------- views


@blueprint.get("/")
def index():
    return _render()


@blueprint.post("/dashboard/login")
def login():
    _check_same_origin()
    token = request.form.get("token", "").strip()
    expected = current_app.extensions["fedgrid"].config.admin_token or ""
    if not token or not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        return _render(login_error="That is not this Node's admin token.", status=403)
    session.clear()
    session[SESSION_KEY] = _fingerprint(expected)
    return redirect(url_for("node_dashboard.index"), code=303)


@blueprint.post("/dashboard/logout")
def logout():
    _check_same_origin()
    session.clear()
    return redirect(url_for("node_dashboard.index"), code=303)


@blueprint.get("/dashboard/dashboard.css")
def stylesheet():
    return _asset("dashboard.css")


@blueprint.get("/dashboard/refresh.js")
def script():
    return _asset("refresh.js")


def _asset(name: str) -> Response:
    # Explicit routes (not a static folder) keep the OpenAPI paths plain; both files are tiny.
    response = send_from_directory(STATIC_DIR, name, mimetype=ASSETS[name], max_age=300)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _positive_id(raw: str) -> int | None:
    """A database id or checkpoint number written in ASCII digits, 1 to MAX_ID; else None (int()
    alone takes "٣" and " 1", and an id past 64 bits overflowed the database driver: a 500)."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 20):
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_ID else None


@blueprint.get("/dashboard/checkpoint")
def download_checkpoint():
    if not is_admin():
        raise ApiError("admin_login_required",
                       "log in on the dashboard (or use retrieve-model with the admin token)", 401)
    process_id, number = (_positive_id(request.args.get(name, "")) for name in ("process", "number"))
    if process_id is None or number is None:
        raise ApiError("invalid_request",
                       f"process and number must be integers from 1 to {MAX_ID}", 400)
    state = current_app.extensions["fedgrid"]
    with state.db.session() as session_:
        row = session_.execute(
            select(Process.name, Process.version, Checkpoint.data)
            .join(Model, Model.process_id == Process.id)
            .join(Checkpoint, Checkpoint.model_id == Model.id)
            .where(Process.id == process_id, Checkpoint.number == number)
        ).first()
    if row is None:
        raise ApiError("checkpoint_unknown", "no such checkpoint", 404)
    filename = f"{row.name}-{row.version}-checkpoint-{number}.safetensors".replace('"', "")
    return Response(row.data, mimetype="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
    })


def _render(*, login_error: str | None = None, control_error: str | None = None,
            status: int = 200) -> Response:
    state = current_app.extensions["fedgrid"]
    admin = is_admin()
    with state.db.session() as db_session:
        hosted = db_session.scalar(select(Process.id).limit(1)) is not None
        processes = _processes(state, db_session) if admin else []
    html = render_template(
        "node_dashboard.html",
        node_id=state.config.node_id,
        version=__version__,
        address=state.config.address,
        uptime=_duration(time.time() - _started),
        network=_membership(),
        admin=admin,
        hosted=hosted,
        processes=processes,
        login_error=login_error,
        control_error=control_error,
        loss_rule=LOSS_RULE,
    )
    return _page(html, status)


# ----------------------------------------------------------------------------------- data


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "–"


def _membership() -> dict[str, Any] | None:
    membership = current_app.extensions.get("fedgrid_membership")
    if membership is None:
        return None
    status = membership.status
    last = status.last_heartbeat_at
    return {
        "url": status.network_url,
        "joined": status.joined,
        "address": status.address,
        "replica": status.replica,  # one of several replicas of this Node (--cluster)
        "last_heartbeat": (f"{_duration((utcnow() - last).total_seconds())} ago" if last else None),
        "error": status.last_error,
    }


def _cycle_figures(state, cycle: Cycle) -> dict[str, Any]:
    figures = getattr(state.engine, "cycle_metrics", None)
    if figures is not None:
        return figures(cycle)
    summary = dict(cycle.summary or {})  # an engine without cycle_metrics: closed cycles only
    return {"sequence": cycle.sequence, "status": cycle.status, **summary,
            "checkpoint": cycle.checkpoint_number}


def _processes(state, db_session) -> list[dict[str, Any]]:
    described = []
    now = utcnow()
    processes = db_session.scalars(
        select(Process).order_by(Process.created_at.desc(), Process.id.desc())
    ).all()
    for process in processes:
        cycles = db_session.scalars(
            select(Cycle).where(Cycle.process_id == process.id).order_by(Cycle.sequence)
        ).all()
        figures = [_cycle_figures(state, cycle) for cycle in cycles]
        by_sequence = {cycle.sequence: cycle for cycle in cycles}
        current = next((f for f in reversed(figures) if f.get("status") == "open"), None)
        if current is not None:
            cycle = by_sequence[current["sequence"]]
            current = {
                **current,
                "seconds_left": max(0.0, (cycle.deadline - now).total_seconds()),
                "deadline_text": _time(cycle.deadline),
                "left_text": _duration((cycle.deadline - now).total_seconds()),
                "started_text": _time(cycle.started_at),
            }
        closed = [f for f in figures if f.get("status") != "open"]
        shown = closed[-HISTORY_ROWS:]
        devices = _distinct_devices(db_session, [by_sequence[f["sequence"]].id for f in shown])
        warnings = loss_warnings(closed)
        evaluations = checkpoint_evaluations(db_session, process.id)
        checkpoints = db_session.execute(
            select(Checkpoint.number, Checkpoint.created_at)
            .join(Model, Model.id == Checkpoint.model_id)
            .where(Model.process_id == process.id)
            .order_by(Checkpoint.number.desc())
        ).all()
        # Read through the model, never as raw JSON: defaults filled in, a strategy given as a
        # plain name ("fedadam") normalised to {"name": ...} (reading it raw answered 500).
        config = parse_server_config(process.server_config)
        described.append({
            "id": process.id,
            "name": process.name,
            "version": process.version,
            "status": process.status,
            "controls": controls.controls_for(process.status),
            "hosted_at": _time(process.created_at),
            "goal": config.max_diffs,
            "max_workers": config.max_workers,
            "cycle_length": config.cycle_length,
            "num_cycles": config.num_cycles,
            "strategy": config.strategy["name"],
            "aggregator": config.aggregator,
            "privacy": privacy_status(db_session, process.id, config),
            "completed": sum(1 for f in closed if f.get("status") == "completed"),
            "devices": _distinct_devices_of_process(db_session, process.id),
            "loss_warnings": sorted(warnings.items(), reverse=True),
            "current": current,
            "history": [
                {**f, "closed_text": _time(by_sequence[f["sequence"]].closed_at),
                 "why_closed": why_closed(f),
                 "devices": devices.get(by_sequence[f["sequence"]].id, 0),
                 "loss_warning": warnings.get(f["sequence"]),
                 **_evaluated_accuracy(evaluations.get(f.get("new_checkpoint")))}
                for f in reversed(shown)
            ],
            "charts": _charts(closed, evaluations),
            "evaluated": bool(evaluations),
            "checkpoints": [
                {"number": number, "created": _time(created)} for number, created in checkpoints
            ],
        })
    return fold_older_versions(described)


# What a closed cycle's summary says (engine._close) → the words on the page.
_CLOSED_BECAUSE = {
    (CloseReason.GOAL, None): "goal reached",
    (CloseReason.DEADLINE, None): "deadline",
    (CloseReason.DEADLINE, AbandonReason.NO_QUORUM): "abandoned: no quorum",
    (CloseReason.GOAL, AbandonReason.AGGREGATE_NOT_FINITE): "abandoned: aggregate not finite",
    (CloseReason.DEADLINE, AbandonReason.AGGREGATE_NOT_FINITE): "abandoned: aggregate not finite",
    (CloseReason.STOPPED, None): "stopped",
    (CloseReason.STOPPED, AbandonReason.NO_QUORUM): "stopped: no quorum",
    (CloseReason.STOPPED, AbandonReason.AGGREGATE_NOT_FINITE): "stopped: aggregate not finite",
}


def why_closed(figures: dict[str, Any]) -> str:
    """Why a cycle closed, in words; "–" for cycles closed before the reason was recorded."""
    reason, abandoned = figures.get("reason"), figures.get("abandoned_because")
    return _CLOSED_BECAUSE.get((reason, abandoned)) or (
        f"abandoned: {abandoned.replace('_', ' ')}" if abandoned else reason or "–"
    )


def _distinct_devices(db_session, cycle_ids: list[int]) -> dict[int, int]:
    """Cycle id → how many distinct workers reported in it."""
    if not cycle_ids:
        return {}
    return dict(db_session.execute(
        select(Assignment.cycle_id, func.count(distinct(Assignment.worker_id)))
        .where(Assignment.cycle_id.in_(cycle_ids),
               Assignment.status == AssignmentStatus.REPORTED)
        .group_by(Assignment.cycle_id)
    ).all())


def _distinct_devices_of_process(db_session, process_id: int) -> int:
    """How many distinct workers reported in any cycle of the process (a worker id belongs to
    one process, so the same device in ten cycles counts once)."""
    return db_session.scalar(
        select(func.count(distinct(Assignment.worker_id)))
        .join(Cycle, Cycle.id == Assignment.cycle_id)
        .where(Cycle.process_id == process_id, Assignment.status == AssignmentStatus.REPORTED)
    ) or 0


def fold_older_versions(processes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each model name's versions together, newest first.

    The template wraps each name's older versions (all but the newest) in one collapsed
    <details> (`fold_opens` on the first of them, `fold_closes` on the last), so a name hosted
    ten times shows one section. `processes` come newest first, so the first of each name is its
    newest.
    """
    by_name: dict[str, list[dict[str, Any]]] = {}
    for process in processes:
        by_name.setdefault(process["name"], []).append(process)
    ordered = []
    for versions in by_name.values():
        older = versions[1:]
        for index, process in enumerate(versions):
            process["fold_opens"] = index == 1
            process["fold_closes"] = bool(older) and index == len(versions) - 1
            process["older_count"] = len(older)
            process["older_training"] = sum(1 for p in older if p["status"] != "finished")
            ordered.append(process)
    return ordered


def _evaluated_accuracy(evaluation: dict[str, Any] | None) -> dict[str, float | None]:
    """The held-out and federated accuracy of the checkpoint a cycle produced, for its row."""
    evaluation = evaluation or {}
    return {
        "test_accuracy": (evaluation.get("test_metrics") or {}).get("accuracy"),
        "federated_accuracy": ((evaluation.get("federated_metrics") or {}).get("metrics")
                               or {}).get("accuracy"),
    }


def _evaluation_series(closed: list[dict[str, Any]], evaluations: dict[int, dict],
                       metric: str) -> dict[str, list[tuple[int, float]]]:
    """The held-out ("test") and federated values of `metric`, at the cycle that produced each
    checkpoint (0: the hosted checkpoint)."""
    produced_by = {1: 0, **{f["new_checkpoint"]: f["sequence"] for f in closed
                            if f.get("new_checkpoint") and f.get("status") == "completed"}}
    series: dict[str, list[tuple[int, float]]] = {"test": [], "federated": []}
    for number, evaluation in sorted(evaluations.items()):
        if number not in produced_by:
            continue
        test = (evaluation.get("test_metrics") or {}).get(metric)
        federated = ((evaluation.get("federated_metrics") or {}).get("metrics") or {}).get(metric)
        if test is not None:
            series["test"].append((produced_by[number], test))
        if federated is not None:
            series["federated"].append((produced_by[number], federated))
    # As many points as the clients' line at most, the newest always shown.
    for name, values in series.items():
        stride = max(1, -(-len(values) // MAX_CHART_POINTS))
        if stride > 1:
            series[name] = values[::stride] + ([values[-1]] if (len(values) - 1) % stride else [])
    return series


def _charts(closed: list[dict[str, Any]], evaluations: dict[int, dict] | None = None) -> list:
    evaluations = evaluations or {}
    names: list[str] = []
    for figures in closed:
        for name in (figures.get("client_metrics") or {}):
            if name not in names:
                names.append(name)
    for evaluation in evaluations.values():  # a metric only evaluations have gets a chart too
        for name in ((evaluation.get("test_metrics") or {}).keys()
                     | ((evaluation.get("federated_metrics") or {}).get("metrics") or {}).keys()):
            if name in PREFERRED_METRICS and name not in names:
                names.append(name)
    names.sort(key=lambda n: (PREFERRED_METRICS.index(n) if n in PREFERRED_METRICS else 99, n))
    stride = max(1, -(-len(closed) // MAX_CHART_POINTS))
    sampled = closed[::stride]
    if closed and sampled[-1] is not closed[-1]:
        sampled.append(closed[-1])
    charts = []
    for name in names[:6]:
        clients = Line("clients", [(f["sequence"], (f.get("client_metrics") or {}).get(name))
                                   for f in sampled])
        # Both evaluation lines or neither, so that each keeps its colour (test: the second
        # series, federated: the third) as the page's key says.
        series = _evaluation_series(closed, evaluations, name)
        evaluated = ([Line(key, points) for key, points in series.items()]
                     if any(series.values()) else [])
        chart = multi_line_chart(name, [clients, *evaluated], y_caption=name)
        charts.append({"title": name, "last": chart.last, "svg": chart.svg,
                       "legend": legend(chart)})
    return charts


_HTML = {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
_SEE_OTHER = {"description": "back to the dashboard", "headers": {"Location": {
    "schema": {"type": "string"}}}}
_ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
OPENAPI_PATHS: dict[str, Any] = {
    "/": {"get": {"summary": "Dashboard: processes, current cycle, client metrics, checkpoints "
                             "(admin data after logging in)", "responses": {"200": _HTML}}},
    "/dashboard/login": {"post": {
        "summary": "Log the browser in with the admin token (form field `token`); sets a "
                   "signed session cookie",
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
            "schema": {"type": "object", "properties": {"token": {"type": "string"}},
                       "required": ["token"]}}}},
        # 403: a wrong token gets the login page again; a form from another origin gets
        # cross_origin_form as JSON.
        "responses": {"303": _SEE_OTHER, "403": {
            "description": "wrong token (HTML page) or a cross-origin form (JSON error)",
            "content": {**_HTML["content"], **_ERROR["content"]}}},
    }},
    "/dashboard/logout": {"post": {"summary": "Forget the browser's dashboard session",
                                   "responses": {"303": _SEE_OTHER, "403": _ERROR}}},
    "/dashboard/checkpoint": {"get": {
        "summary": "Download a checkpoint (dashboard session required)",
        "parameters": [{"name": n, "in": "query", "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}
                       for n in ("process", "number")],
        "responses": {"200": {"description": "safetensors bytes", "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            "400": _ERROR, "401": _ERROR, "404": _ERROR},
    }},
    "/dashboard/dashboard.css": {"get": {"summary": "The dashboard's stylesheet",
                                         "responses": {"200": {"description": "CSS"}}}},
    "/dashboard/refresh.js": {"get": {"summary": "The dashboard's live-refresh script",
                                      "responses": {"200": {"description": "JavaScript"}}}},
}


# The process control buttons' routes (controls.py) live on this blueprint too.
from . import controls  # noqa: E402

OPENAPI_PATHS.update(controls.OPENAPI_PATHS)
