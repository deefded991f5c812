"""Browser devices: the JavaScript SDK's bundle, ONNX Runtime's WASM files and an example page.

A web page trains with one script tag, ``<script src="/js/fedgrid.js">``; the bundle then loads
ONNX Runtime from ``/js/ort/`` on this same Node, so no CDN (and no third-party origin) is involved.
``/examples/browser-device`` is a page that trains a digits shard in the browser with a live loss
chart and the report's status.

The files come from the directory in ``FEDGRID_JS_ASSETS`` (read at each request, so an operator
can point a running Node at a new build), defaulting to the repository's ``clients/js/dist`` built
by ``make js`` (``npm run build``). Without them every route here answers a JSON 404
``js_assets_missing`` that says how to build them.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Blueprint, current_app, request, send_from_directory
from werkzeug.exceptions import NotFound

from fedgrid_protocol.errors import ApiError

from .cors import resource_policy
from .isolation import isolation_headers

blueprint = Blueprint("browser", __name__)

ASSETS_ENV = "FEDGRID_JS_ASSETS"
# apps/node/fedgrid_node/browser.py -> the repository root -> clients/js/dist
REPOSITORY_DIST = Path(__file__).resolve().parents[3] / "clients" / "js" / "dist"
BUNDLE = "fedgrid.js"
EXAMPLE_PAGE = "examples/browser-device.html"
# Browsers refuse module scripts and streaming WASM compilation served with other types, and
# Python's mimetypes does not know .mjs everywhere.
MEDIA_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".html": "text/html",
    ".json": "application/json",
    ".map": "application/json",
    ".safetensors": "application/octet-stream",
}


def assets_directory() -> Path | None:
    """Where the built JS assets are, or None when there are none to serve."""
    configured = os.environ.get(ASSETS_ENV)
    directory = Path(configured) if configured else REPOSITORY_DIST
    return directory if (directory / BUNDLE).is_file() else None


def _missing() -> ApiError:
    configured = os.environ.get(ASSETS_ENV)
    where = f"{ASSETS_ENV}={configured}" if configured else f"{REPOSITORY_DIST} (set {ASSETS_ENV} to use another)"
    return ApiError(
        "js_assets_missing",
        f"the JavaScript SDK's browser files are not on this Node: {where} has no {BUNDLE}. "
        "Build them with `make js` (cd clients/js && npm ci && npm run build)",
        404,
    )


def _send(relative: str):
    directory = assets_directory()
    if directory is None:
        raise _missing()
    try:
        response = send_from_directory(directory, relative, max_age=300)
    except NotFound:
        raise ApiError("not_found", f"/js/{relative} is not part of the JavaScript SDK's files", 404) from None
    media_type = MEDIA_TYPES.get(Path(relative).suffix)
    if media_type:
        response.mimetype = media_type
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@blueprint.get("/js/<path:filename>")
def js_asset(filename: str):
    """The bundle (``fedgrid.js``, ``fedgrid.mjs``), ``ort/<file>`` and the example's data."""
    return _send(filename)


@blueprint.get("/examples/browser-device")
def browser_device_example():
    return _send(EXAMPLE_PAGE)


@blueprint.after_request
def add_embedding_policies(response):
    """CORP on every /js/ answer (errors too: an isolated page sees the JSON 404, not a network
    error), and the isolation headers on pages and scripts unless the operator turned them off."""
    config = current_app.extensions["fedgrid"].config
    if request.path.startswith("/js/"):
        response.headers["Cross-Origin-Resource-Policy"] = resource_policy(config.cors_origins)
    if config.cross_origin_isolation:
        response.headers.update(isolation_headers(response.mimetype))
    return response
