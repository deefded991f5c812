"""Exceptions the SDK raises. Every one says what to do next; Node errors keep the Node's code.

The Node answers every failure as ``{"error": {"code", "message", "status", "details"}}`` (over
HTTP and WebSocket alike). :func:`error_from_answer` turns that into the most specific class below,
so device code can catch what it can act on (``Rejected``: wait ``timeout`` seconds;
``AssignmentExpired``: ask for a new cycle) and let the rest surface.
"""

from __future__ import annotations

from typing import Any


class FedgridError(Exception):
    """Base class. ``code`` is the Node's stable error code (or an SDK code such as
    ``network_unreachable``), ``status`` the HTTP status, ``details`` any extra fields."""

    def __init__(self, message: str, *, code: str = "error", status: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details or {}

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"


class NetworkUnreachable(FedgridError):
    """The Node (or Network) could not be reached even after retrying with backoff.
    Check the URL and that the Node is running; the device can try again later."""


class AuthenticationError(FedgridError):
    """The Node refused the device's ``auth_token`` (missing, invalid, expired or signed with an
    algorithm the model does not allow). Get a fresh token from whoever issues them."""


class AdminAuthError(FedgridError):
    """An admin route refused the admin token. Pass the Node's token (``--admin-token`` /
    ``GRID_ADMIN_TOKEN``, or the ``admin-token`` file in the Node's data directory)."""


class ProcessUnknown(FedgridError):
    """No hosted model has that name (and version) on this Node. Check the name, or host it."""


class AssignmentExpired(FedgridError):
    """The assignment is no longer valid: its lease ran out before the report
    (``assignment_expired``: the accepted answer's ``timeout`` passed), its cycle has closed (goal
    reached or deadline passed: ``cycle_closed``) or its request key is not valid
    (``request_key_invalid``). Drop the work and ask for a place again (``job.request()``)."""


class ReportRefused(FedgridError):
    """The Node refused a report; ``code`` says why (``report_duplicate``, ``diff_mismatch``,
    ``diff_not_finite``, ``diff_out_of_range``, ``num_samples_invalid``, ``metrics_invalid``...)."""


class Rejected(FedgridError):
    """The Node has no place for this device now. Ask again after ``timeout`` seconds
    (``reason`` is e.g. ``cycle_full``, ``not_selected``, ``worker_cooling_down``)."""

    def __init__(self, reason: str, timeout: float | None, answer: dict[str, Any] | None = None):
        wait = "" if timeout is None else f"; ask again in {timeout:.1f} s"
        super().__init__(f"cycle request rejected: {reason}{wait}", code="rejected",
                         details={"reason": reason})
        self.reason = reason
        self.timeout = timeout
        self.answer = answer or {}


class TrainingFinished(Rejected):
    """The model has run all its cycles: there is nothing left to train. Stop asking."""

    def __init__(self, answer: dict[str, Any] | None = None):
        super().__init__("training_finished", None, answer)
        self.message = "training of this model is finished; there are no more cycles"


_AUTH_CODES = {"auth_token_required", "auth_token_invalid", "auth_token_expired",
               "auth_algorithm_not_allowed", "auth_endpoint_unavailable"}
_ADMIN_CODES = {"admin_token_required", "admin_token_invalid"}
_EXPIRED_CODES = {"assignment_expired", "cycle_closed", "request_key_invalid"}
_REPORT_CODES = {"report_duplicate", "diff_malformed", "diff_mismatch", "diff_not_finite",
                 "diff_out_of_range", "num_samples_invalid", "metrics_invalid", "body_too_large"}


def error_from_answer(body: Any, status: int | None, event: str) -> FedgridError:
    """The exception for a Node error answer (``{"error": {...}}``) to ``event``."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return FedgridError(f"{event}: the Node answered HTTP {status} without an error body",
                            code="unexpected_answer", status=status)
    code = str(error.get("code", "error"))
    message = str(error.get("message", "the Node refused the request"))
    kwargs = {"code": code, "status": error.get("status", status), "details": error.get("details")}
    if code in _AUTH_CODES:
        return AuthenticationError(message, **kwargs)
    if code in _ADMIN_CODES:
        return AdminAuthError(message, **kwargs)
    if code == "process_unknown":
        return ProcessUnknown(message, **kwargs)
    if code in _EXPIRED_CODES:
        return AssignmentExpired(message, **kwargs)
    if code in _REPORT_CODES and event == "report":
        return ReportRefused(message, **kwargs)
    return FedgridError(message, **kwargs)
