"""API errors: one exception type with a stable code, a message that says what to do, a status.

The body is always ``{"error": {"code", "message", "status"[, "details"]}}``, exactly as on the
Node, so an SDK parses one error shape whichever server it talks to.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
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
