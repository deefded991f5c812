"""Every error code a Fedgrid server answers, its HTTP status, and the exception the SDKs raise.

An error answer is always ``{"error": {"code", "message", "status"[, "details"]}}``, over HTTP and
WebSocket alike: never a traceback or an HTML page. ``code`` is stable; ``message`` is for people.

The SDK exception is named by what the caller should do, and both SDKs (Python and JavaScript)
raise the class of that same name for the same code (a test holds each SDK to this table):

- ``AuthenticationError``: get a valid device token;
- ``AdminAuthError``: pass the server's admin token;
- ``WorkerUnknown``: authenticate again (for this model);
- ``ProcessUnknown``: no such hosted model (check the name, or host it);
- ``AssignmentExpired``: drop this assignment's work and ask for a new place;
- ``ReportRefused``: the report was refused (``report_duplicate``: the first report stands);
- ``Unavailable``: the server could not answer now (busy, a dependency down, or a bug it logged): try again later;
- ``RequestInvalid``: the request itself is wrong; fix what ``details`` names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SDK_EXCEPTIONS = (
    "AuthenticationError",
    "AdminAuthError",
    "WorkerUnknown",
    "ProcessUnknown",
    "AssignmentExpired",
    "ReportRefused",
    "Unavailable",
    "RequestInvalid",
)


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    sdk_exception: str  # one of SDK_EXCEPTIONS
    meaning: str
    servers: tuple[str, ...] = ("node",)  # who answers it: "node", "network"


def _codes(*entries: ErrorCode) -> dict[str, ErrorCode]:
    return {entry.code: entry for entry in entries}


BOTH = ("node", "network")
NETWORK = ("network",)

ERROR_CODES: dict[str, ErrorCode] = _codes(
    # The request itself.
    ErrorCode("invalid_json", 400, "RequestInvalid",
              "the body (or a JSON form field, or a WebSocket text frame) is not JSON", BOTH),
    ErrorCode("invalid_request", 400, "RequestInvalid",
              "a field is missing, of the wrong type or out of range (`details.field` names it)",
              BOTH),
    ErrorCode("invalid_frame", 400, "RequestInvalid",
              "a binary WebSocket frame is not a valid container"),
    ErrorCode("bad_request", 400, "RequestInvalid", "the HTTP request is malformed", BOTH),
    ErrorCode("not_found", 404, "RequestInvalid", "no such route", BOTH),
    ErrorCode("method_not_allowed", 405, "RequestInvalid", "the route does not take this method",
              BOTH),
    ErrorCode("unknown_event", 404, "RequestInvalid", "no such event"),
    ErrorCode("unsupported_media_type", 415, "RequestInvalid",
              "the body's content type is not one the route takes", BOTH),
    ErrorCode("body_too_large", 413, "RequestInvalid", "over the server's body limit", BOTH),
    ErrorCode("websocket_required", 426, "RequestInvalid", "a plain HTTP request on `/ws`"),
    ErrorCode("cross_origin_form", 403, "RequestInvalid",
              "a form posted from another origin to the dashboard"),
    ErrorCode("http_error", 400, "RequestInvalid",
              "any other HTTP-level refusal; `status` is the HTTP status", BOTH),
    ErrorCode("js_assets_missing", 404, "RequestInvalid",
              "the Node has no JavaScript SDK bundle to serve at `/js/`; the message says how to "
              "build it"),
    # Credentials.
    ErrorCode("admin_token_required", 401, "AdminAuthError", "an admin route without a token",
              BOTH),
    ErrorCode("admin_token_invalid", 403, "AdminAuthError", "an admin route with a wrong token",
              BOTH),
    ErrorCode("admin_login_required", 401, "AdminAuthError",
              "the dashboard's admin pages need a login", BOTH),
    ErrorCode("auth_token_required", 401, "AuthenticationError",
              "the model needs a device token"),
    ErrorCode("auth_token_invalid", 401, "AuthenticationError",
              "the device token's signature, audience or issuer is wrong"),
    ErrorCode("auth_token_expired", 401, "AuthenticationError", "the device token has expired"),
    ErrorCode("auth_algorithm_not_allowed", 401, "AuthenticationError",
              "the device token is signed with an algorithm the model does not allow"),
    ErrorCode("auth_endpoint_unavailable", 503, "Unavailable",
              "the external token verification service did not answer in time"),
    # Hosting.
    ErrorCode("process_exists", 409, "RequestInvalid", "that name and version is already hosted"),
    ErrorCode("process_unknown", 404, "ProcessUnknown",
              "no hosted model by that name (and version)"),
    ErrorCode("process_state_conflict", 409, "RequestInvalid",
              "the process's status does not allow this control (e.g. resuming a stopped one, "
              "deleting an active one without `force`); `details.process_status` names it"),
    ErrorCode("checkpoint_invalid", 400, "RequestInvalid",
              "the hosted model is not a safetensors checkpoint of float tensors"),
    ErrorCode("plan_invalid", 400, "RequestInvalid",
              "a plan was refused; `details.reason` is the plan validator's code"),
    ErrorCode("server_config_invalid", 400, "RequestInvalid",
              "`server_config` is refused; `details.field` names the key"),
    ErrorCode("client_config_invalid", 400, "RequestInvalid",
              "`client_config` is refused; `details.field` names the key"),
    # Held-out evaluation sets.
    ErrorCode("evaluation_set_invalid", 400, "RequestInvalid",
              "the evaluation set is not a safetensors file holding exactly `features` and "
              "`labels` with one row per example; `details.reason` says what is wrong"),
    ErrorCode("evaluation_set_mismatch", 400, "RequestInvalid",
              "the evaluation set does not fit the model's plan: `details.field` names `features` "
              "(shape or dtype) or `labels` (dtype, shape or a class outside the model's outputs)"),
    ErrorCode("evaluation_set_too_large", 413, "RequestInvalid",
              "the evaluation set is over the Node's limit (`details.limit_bytes`)"),
    ErrorCode("plan_not_evaluable", 400, "RequestInvalid",
              "the model's plan has no forward graph, so the Node cannot score checkpoints"),
    # Devices and cycles.
    ErrorCode("worker_unknown", 404, "WorkerUnknown", "unknown worker id: authenticate first"),
    ErrorCode("worker_process_mismatch", 403, "WorkerUnknown",
              "the worker id was issued for another model: authenticate for this one"),
    ErrorCode("speed_test_required", 400, "RequestInvalid",
              "the model has speed gates; `details.missing` lists what to send"),
    ErrorCode("request_key_invalid", 403, "AssignmentExpired", "not this worker's request key"),
    ErrorCode("cycle_closed", 409, "AssignmentExpired",
              "the assignment's cycle closed (goal reached or deadline passed)"),
    ErrorCode("assignment_expired", 409, "AssignmentExpired",
              "the assignment's lease ran out before it reported; its place went to another device"),
    ErrorCode("cycle_unavailable", 503, "Unavailable",
              "transient: the next cycle is being opened; retry"),
    ErrorCode("model_unknown", 404, "RequestInvalid", "a model id that is not the assignment's"),
    ErrorCode("plan_unknown", 404, "RequestInvalid", "a plan id that is not the assignment's"),
    ErrorCode("checkpoint_unknown", 404, "RequestInvalid", "no such checkpoint number"),
    # Reports.
    ErrorCode("report_duplicate", 409, "ReportRefused",
              "one report per assignment: the first one stands (it was counted)"),
    ErrorCode("diff_malformed", 400, "ReportRefused", "the diff is not a safetensors buffer"),
    ErrorCode("storage_unavailable", 503, "Unavailable",
              "the Node could not write to its disk (full or failing): retry later; after its "
              "disk failed a flush it takes no writes until it is restarted"),
    ErrorCode("diff_mismatch", 400, "ReportRefused",
              "the diff has other names, shapes or dtypes than the model"),
    ErrorCode("diff_not_finite", 400, "ReportRefused", "the diff holds NaN or infinity"),
    ErrorCode("diff_encoding_mismatch", 400, "ReportRefused",
              "the diff is not in the model's `client_config.diff_encoding` (`details.expected`, "
              "`details.tensor`)"),
    ErrorCode("diff_scale_invalid", 400, "ReportRefused",
              "an int8 diff's scale is not a finite, non-negative float32 scalar "
              "(`details.tensor` names it)"),
    ErrorCode("diff_out_of_range", 400, "ReportRefused",
              "`num_samples` × |diff value| exceeds 1e36; `details.tensor` names the tensor"),
    ErrorCode("num_samples_invalid", 400, "ReportRefused", "`num_samples` is not a positive integer"),
    ErrorCode("metrics_invalid", 400, "ReportRefused",
              "`metrics` is not an object of at most 32 finite numbers (an evaluation report "
              "needs at least one)"),
    ErrorCode("report_diff_missing", 400, "ReportRefused",
              "a training assignment's report without a `diff`"),
    ErrorCode("report_diff_unexpected", 400, "ReportRefused",
              "an evaluation assignment's report with a `diff`: it reports metrics only"),
    # Secure aggregation (docs/secure-aggregation.md).
    ErrorCode("secure_report_refused", 409, "ReportRefused",
              "the cycle aggregates securely: updates go through the `secagg-*` events, never in "
              "the clear with `report`"),
    ErrorCode("not_secure_cycle", 409, "RequestInvalid",
              "a `secagg-*` event for an assignment whose cycle does not aggregate securely"),
    ErrorCode("secagg_not_in_round", 409, "AssignmentExpired",
              "the assignment takes no part in this secure round (it missed an earlier round, "
              "the round closed before its message came, or it already sent another message "
              "for this round): drop this work"),
    ErrorCode("secagg_message_invalid", 400, "RequestInvalid",
              "a secure-aggregation message does not fit its round (a body that is not its "
              "field's binary layout or is empty, a key's length, the neighbours a share goes "
              "to, the masked input's length)"),
    ErrorCode("secagg_aborted", 409, "AssignmentExpired",
              "the cycle's secure aggregation cannot complete (too few devices left in a round, "
              "or the cycle closed before its rounds did): drop this work"),
    # The Network.
    ErrorCode("registration_secret_required", 401, "AdminAuthError",
              "joining this Network needs its registration secret", NETWORK),
    ErrorCode("registration_secret_invalid", 403, "AdminAuthError",
              "a wrong registration secret", NETWORK),
    ErrorCode("node_token_required", 401, "AdminAuthError",
              "a Node's call to its Network without its node token", NETWORK),
    ErrorCode("node_token_invalid", 403, "AdminAuthError", "a wrong node token", NETWORK),
    ErrorCode("node_unknown", 404, "RequestInvalid", "no Node by that id", NETWORK),
    ErrorCode("node_id_taken", 409, "RequestInvalid", "another Node holds that id", NETWORK),
    ErrorCode("model_not_found", 404, "ProcessUnknown",
              "no online Node hosts that model (and version)", NETWORK),
    # The load balancer in front of a replicated Node (deploy/haproxy/haproxy.cfg): answered at
    # the Node's address when no replica answered.
    ErrorCode("replica_unavailable", 503, "Unavailable",
              "no replica of the Node passes the load balancer's health check: retry shortly"),
    ErrorCode("replica_failed", 502, "Unavailable",
              "the replica handling the request closed its connection without answering (it "
              "died): the request may have been acted on; a repeated report is refused "
              "`report_duplicate` if the first one was counted"),
    ErrorCode("replica_timeout", 504, "Unavailable",
              "the replica handling the request did not answer within the load balancer's "
              "timeout (120 s)"),
    # Anything else.
    ErrorCode("internal_error", 500, "Unavailable",
              "a bug: the server's log has the traceback, the client gets none", BOTH),
)

# Codes the SDKs make up themselves, for failures that never reached a server's answer.
SDK_CODES: dict[str, str] = {
    "network_unreachable": "NetworkUnreachable",  # connection refused, reset, DNS, timeout
    "unexpected_answer": "FedgridError",  # an answer that is not the protocol's
}


class ApiError(Exception):
    """A failure to report to the client, raised by the servers: a code from `ERROR_CODES`, a
    message that says what to do, and (by default) the code's status."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        if code not in ERROR_CODES:
            raise ValueError(f"undocumented error code {code!r}: add it to ERROR_CODES")
        self.code = code
        self.message = message
        self.status = ERROR_CODES[code].status if status is None else status
        self.details = details or {}
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            body["details"] = self.details
        return {"error": body}


def invalid_request(message: str, **details: Any) -> ApiError:
    return ApiError("invalid_request", message, details=details or None)


def sdk_exception_for(code: str, status: int | None = None) -> str:
    """The SDK exception for a code; unknown codes by their status (5xx: Unavailable)."""
    if code in ERROR_CODES and code != "http_error":  # http_error: its real status decides
        return ERROR_CODES[code].sdk_exception
    if code in SDK_CODES:
        return SDK_CODES[code]
    return "Unavailable" if status is not None and status >= 500 else "RequestInvalid"
