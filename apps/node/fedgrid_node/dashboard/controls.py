"""The dashboard's process controls: pause, resume, stop and delete buttons.

Plain HTML forms posted to the Node's own pages, like the login: the browser's dashboard session
(see __init__.py) is the admin credential, and forms from other origins are refused. Stopping and
deleting cannot be undone, so their buttons lead to a confirmation page first (a page of its own,
outside the live-refreshed part, so the question does not vanish under the refresh); its form
carries `confirm=yes`, and a post without it is sent back to the question.

The controls are the admin events' own (`ModelCentricEvents.control_process`), so the dashboard
and the API move a process through the same states with the same checks.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from fedgrid_protocol.errors import ApiError

from ..db.models import Process
from . import _check_same_origin, _page, _positive_id, _render, blueprint, is_admin

CONTROLS = ("pause", "resume", "stop", "delete")
CONFIRMED = frozenset({"stop", "delete"})  # cannot be undone: asked again on a page of their own
QUESTIONS = {
    "stop": ("Stop training {who}?",
             "The open cycle closes now: it is aggregated into a new checkpoint if it has at least "
             "min_diffs reports, otherwise abandoned. No cycle follows; devices are told training "
             "is over. The checkpoints stay and can still be downloaded."),
    "delete": ("Delete {who}?",
               "Its cycles, reports, checkpoints and plans are removed for good; download the "
               "checkpoints you want to keep first. Its name and version can then be hosted "
               "again."),
}


def controls_for(status: str) -> list[str]:
    """The buttons a process in `status` shows (the events allow no others)."""
    return {
        "active": ["pause", "stop"],
        "paused": ["resume", "stop", "delete"],
    }.get(status, ["delete"])


def _admin_required() -> None:
    if not is_admin():
        raise ApiError("admin_login_required",
                       "log in on the dashboard (or use the process control events with the admin "
                       "token)", 401)


def _process(raw: str) -> dict[str, Any]:
    process_id = _positive_id(raw or "")
    if process_id is None:
        raise ApiError("invalid_request", "process must be a process id", 400)
    state = current_app.extensions["fedgrid"]
    with state.db.session() as session:
        row = session.execute(
            select(Process.id, Process.name, Process.version, Process.status)
            .where(Process.id == process_id)
        ).first()
    if row is None:
        raise ApiError("process_unknown", "no hosted model with that id", 404)
    return {"id": row.id, "name": row.name, "version": row.version, "status": row.status}


@blueprint.get("/dashboard/process/confirm")
def confirm_control():
    _admin_required()
    control = request.args.get("control", "")
    if control not in CONFIRMED:
        raise ApiError("invalid_request", "control must be stop or delete", 400)
    process = _process(request.args.get("process", ""))
    title, explanation = QUESTIONS[control]
    who = f"{process['name']} version {process['version']}"
    html = render_template("process_confirm.html", control=control, process=process,
                           question=title.format(who=who), explanation=explanation)
    return _page(html)


@blueprint.post("/dashboard/process/<control>")
def control_process(control: str):
    _admin_required()
    _check_same_origin()
    if control not in CONTROLS:
        raise ApiError("not_found", f"there is no process control named {control!r}", 404)
    process = _process(request.form.get("process", ""))
    if control in CONFIRMED and request.form.get("confirm") != "yes":
        return redirect(url_for("node_dashboard.confirm_control", control=control,
                                process=process["id"]), code=303)
    events = current_app.extensions["fedgrid"].events
    try:
        events.control_process(control, process["id"])
    except ApiError as exc:
        if exc.code != "process_state_conflict":
            raise
        # A stale page (the process finished, or another tab acted): say so on the dashboard.
        return _render(control_error=exc.message, status=409)
    return redirect(url_for("node_dashboard.index"), code=303)


_ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
OPENAPI_PATHS: dict[str, Any] = {
    "/dashboard/process/confirm": {"get": {
        "summary": "The confirmation page for stopping or deleting a process (dashboard session "
                   "required)",
        "parameters": [
            {"name": "control", "in": "query", "required": True,
             "schema": {"type": "string", "enum": sorted(CONFIRMED)}},
            {"name": "process", "in": "query", "required": True,
             "schema": {"type": "integer", "minimum": 1}},
        ],
        "responses": {"200": {"description": "HTML page", "content": {
            "text/html": {"schema": {"type": "string"}}}},
            "400": _ERROR, "401": _ERROR, "404": _ERROR},
    }},
    "/dashboard/process/{control}": {"post": {
        "summary": "Pause, resume, stop or delete a process from the dashboard (session "
                   "required; stop and delete need the form field confirm=yes, else 303 to the "
                   "confirmation page)",
        "parameters": [{"name": "control", "in": "path", "required": True,
                        "schema": {"type": "string", "enum": list(CONTROLS)}}],
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
            "schema": {"type": "object", "properties": {
                "process": {"type": "integer", "minimum": 1},
                "confirm": {"type": "string", "enum": ["yes"]}},
                "required": ["process"]}}}},
        "responses": {
            "303": {"description": "back to the dashboard, or on to the confirmation page",
                    "headers": {"Location": {"schema": {"type": "string"}}}},
            "400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR,
            "409": {"description": "the process's status does not allow it (dashboard page "
                                   "with the reason)",
                    "content": {"text/html": {"schema": {"type": "string"}}}},
        },
    }},
}
