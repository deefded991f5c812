"""JSON error answers: no client ever sees an HTML error page or a traceback.

`fedgrid_protocol.errors.ApiError` is answered as it is; werkzeug's HTTP errors get stable codes;
anything unexpected is logged and answered `internal_error`.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from fedgrid_protocol.errors import ApiError

# Werkzeug's HTTP errors get stable codes too; any other status is `http_error`.
HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def register_error_handlers(app: Flask, *, name: str, log: logging.Logger) -> None:
    """``name`` ("Node", "Network") is how the messages refer to the server; ``log`` gets the
    tracebacks of unexpected errors."""

    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        response = jsonify(error.to_json())
        response.status_code = error.status
        response.headers.update(error.headers)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        code = HTTP_ERROR_CODES.get(error.code or 500, "http_error")
        message = error.description or error.name
        if error.code == 413:
            limit = app.config["MAX_CONTENT_LENGTH"]
            message = f"the request body is larger than this {name} accepts ({limit} bytes)"
        # werkzeug's own headers for the error go along: `Allow` on a 405 (RFC 9110 requires
        # it), `WWW-Authenticate` on a 401, `Retry-After` on a 429 or 503.
        headers = {key: value for key, value in error.get_headers()
                   if key.lower() != "content-type"}
        return api_error(ApiError(code, message, error.code or 500, headers=headers))

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        log.exception("unhandled error")
        return api_error(ApiError("internal_error", f"internal error; the {name}'s log has details",
                                  500))
