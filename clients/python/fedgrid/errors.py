"""Exceptions the SDK raises. Every one says what to do next; server errors keep the server's code.

A Node (or Network) answers every failure as ``{"error": {"code", "message", "status",
"details"}}``, over HTTP and WebSocket alike. :func:`error_from_answer` raises the class that the
protocol's error table (``fedgrid_protocol.errors.ERROR_CODES``) names for the code, one class per
``SDK_EXCEPTIONS`` name, the same class the JavaScript SDK raises for that code; a code the table
does not know (from a newer server) is ``Unavailable`` when its status is 5xx, else
``RequestInvalid``. Device code catches what it can act on (``Rejected``: wait ``timeout``
seconds; ``AssignmentExpired``: ask for a new place) and lets the rest surface.

``Rejected``, ``TrainingFinished`` and ``TrainingStopped`` are not errors from the table: they are
the Node's ``rejected`` answers to a cycle request, raised so a loop can wait or stop.
"""

from __future__ import annotations

from typing import Any

from fedgrid_protocol.errors import SDK_CODES, SDK_EXCEPTIONS, sdk_exception_for


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
    """``network_unreachable``: the Node (or Network) could not be reached (connection refused or
    reset, DNS, timeout) even after retrying with backoff. Check the URL and that the server is
    running; the device can try again later."""

    def __init__(self, message: str, *, code: str = "network_unreachable", **kwargs: Any) -> None:
        super().__init__(message, code=code, **kwargs)


class AuthenticationError(FedgridError):
    """The Node refused the device's ``auth_token`` (``auth_token_required``,
    ``auth_token_invalid``, ``auth_token_expired``, ``auth_algorithm_not_allowed``). Get a valid
    token from whoever issues them."""


class AdminAuthError(FedgridError):
    """An admin route refused the admin token (``admin_token_*``, ``admin_login_required``; on a
    Network also ``registration_secret_*``, ``node_token_*``). Pass the server's token
    (``--admin-token`` / ``GRID_ADMIN_TOKEN``, or the ``admin-token`` file in its data
    directory)."""


class WorkerUnknown(FedgridError):
    """The Node does not know this worker id (``worker_unknown``: e.g. a new database) or issued it
    for another model (``worker_process_mismatch``). Authenticate again for this model
    (``job.authenticate()``); ``job.request()`` does so once by itself."""


class ProcessUnknown(FedgridError):
    """No hosted model has that name (and version) on this Node (``process_unknown``), or no online
    Node of the Network hosts it (``model_not_found``). Check the name, or host it."""


class AssignmentExpired(FedgridError):
    """The assignment is no longer valid: its lease ran out before the report
    (``assignment_expired``: the accepted answer's ``timeout`` passed), its cycle has closed (goal
    reached or deadline passed: ``cycle_closed``) or its request key is not valid
    (``request_key_invalid``). Drop the work and ask for a place again (``job.request()``)."""


class ReportRefused(FedgridError):
    """The Node refused a report; ``code`` says why (``diff_malformed``, ``diff_mismatch``,
    ``diff_not_finite``, ``diff_out_of_range``, ``num_samples_invalid``, ``metrics_invalid``): fix
    the report. ``report_duplicate``: this assignment was reported already and the first report
    stands (it was counted); ``Assignment.report()`` takes that as success after a resend."""


class Unavailable(FedgridError):
    """The server could not answer now (``cycle_unavailable``, ``auth_endpoint_unavailable``,
    ``internal_error``, or an unknown 5xx code). Transient, and already retried: try again later.
    An ``internal_error`` is a bug whose traceback is in the server's log."""


class RequestInvalid(FedgridError):
    """The request itself is wrong (a missing or out-of-range field, an unknown id, a plan or
    config the Node refuses, ...; or an unknown 4xx code). Retrying will not help: fix what
    ``details`` (e.g. ``details.field``) and the message name."""


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


class TrainingStopped(TrainingFinished):
    """The researcher stopped the model's training early (``training_stopped``): there are no
    more cycles. Stop asking (a loop that stops at ``TrainingFinished`` stops here too)."""

    def __init__(self, answer: dict[str, Any] | None = None):
        Rejected.__init__(self, "training_stopped", None, answer)
        self.message = "training of this model was stopped by its researcher; there are no more cycles"


# One class per name the protocol's table uses: its SDK exceptions and the SDK-made codes' classes.
EXCEPTIONS: dict[str, type[FedgridError]] = {
    cls.__name__: cls
    for cls in (FedgridError, NetworkUnreachable, AuthenticationError, AdminAuthError,
                WorkerUnknown, ProcessUnknown, AssignmentExpired, ReportRefused, Unavailable,
                RequestInvalid)
}
_missing = sorted((set(SDK_EXCEPTIONS) | set(SDK_CODES.values())) - set(EXCEPTIONS))
if _missing:  # the protocol named a new exception: the SDK needs its class
    raise ImportError(f"fedgrid.errors has no class for the protocol's {_missing}")


def exception_for(code: str, status: int | None = None) -> type[FedgridError]:
    """The class the protocol's table names for ``code`` (unknown codes: by ``status``)."""
    return EXCEPTIONS[sdk_exception_for(code, status)]


def error_from_answer(body: Any, status: int | None, event: str) -> FedgridError:
    """The exception for a server's error answer (``{"error": {...}}``) to ``event``: the class
    the protocol's table names for its code. An answer without that shape is a ``FedgridError``
    with the code ``unexpected_answer``."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return FedgridError(f"{event}: the server answered HTTP {status} without a Fedgrid error "
                            "body; check that the URL is a Fedgrid server's",
                            code="unexpected_answer", status=status)
    code = error["code"]
    answered = error.get("status")
    status = answered if isinstance(answered, int) and not isinstance(answered, bool) else status
    message = str(error.get("message") or f"{event}: the server refused the request ({code})")
    details = error.get("details")
    return exception_for(code, status)(message, code=code, status=status,
                                       details=details if isinstance(details, dict) else None)
