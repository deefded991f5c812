"""API errors: one exception type, a stable machine-readable code, a human message, an HTTP status.

Every failure a client can see goes through `ApiError`, over HTTP and over WebSocket alike, so the
body is always ``{"error": {"code": ..., "message": ...}}`` — never a traceback or an HTML page.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failure to report to the client. ``code`` is stable; ``message`` says what to do."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            body["details"] = self.details
        return {"error": body}


def invalid_request(message: str, **details: Any) -> ApiError:
    return ApiError("invalid_request", message, 400, details=details or None)


def require_field(data: dict[str, Any], name: str, kind: type | tuple[type, ...] = str) -> Any:
    """Fetch a required field of the given type, or raise `invalid_request` naming it."""
    if name not in data or data[name] is None or data[name] == "":
        raise invalid_request(f"field '{name}' is required", field=name)
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(k.__name__ for k in kinds)
        raise invalid_request(f"field '{name}' must be of type {expected}", field=name)
    return value
