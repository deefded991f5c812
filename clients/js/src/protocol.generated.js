// Generated from protocol/fedgrid_protocol by `python -m fedgrid_protocol.export` (`make protocol`); do not edit.
// The JavaScript SDK builds and runs from this committed file; test/protocol.test.js fails when
// it no longer matches the protocol package.

const freeze = (value) => {
  if (value && typeof value === 'object') Object.values(value).forEach(freeze);
  return Object.freeze(value);
};

/** The exception classes both SDKs raise for server codes, named by what the caller should do. */
export const SDK_EXCEPTIONS = freeze([
  "AuthenticationError",
  "AdminAuthError",
  "WorkerUnknown",
  "ProcessUnknown",
  "AssignmentExpired",
  "ReportRefused",
  "Unavailable",
  "RequestInvalid"
]);

/** What the caller should do about each SDK exception. */
export const SDK_EXCEPTION_ADVICE = freeze({
  "AuthenticationError": "get a valid device token",
  "AdminAuthError": "pass the server's admin token",
  "WorkerUnknown": "authenticate again (for this model)",
  "ProcessUnknown": "no such hosted model (check the name, or host it)",
  "AssignmentExpired": "drop this assignment's work and ask for a new place",
  "ReportRefused": "the report was refused (`report_duplicate`: the first report stands)",
  "Unavailable": "the server could not answer now (busy, a dependency down, or a bug it logged): try again later",
  "RequestInvalid": "the request itself is wrong; fix what `details` names"
});

/** Every error code a Fedgrid server answers: its HTTP status, the SDK exception, what it means
 *  and which servers answer it ('node', 'network'). */
export const ERROR_CODES = freeze({
  "invalid_json": {
    "status": 400,
    "exception": "RequestInvalid",
    "meaning": "the body (or a JSON form field, or a WebSocket text frame) is not JSON",
    "servers": [
      "node",
      "network"
    ]
  },
  "invalid_request": {
    "status": 400,
    "exception": "RequestInvalid",
    "meaning": "a field is missing, of the wrong type or out of range (`details.field` names it)",
    "servers": [
      "node",
      "network"
    ]
  },
  "invalid_frame": {
    "status": 400,
    "exception": "RequestInvalid",
    "meaning": "a binary WebSocket frame is not a valid container",
    "servers": [
      "node"
    ]
  },
  "bad_request": {
    "status": 400,
    "exception": "RequestInvalid",
    "meaning": "the HTTP request is malformed",
    "servers": [
      "node",
      "network"
    ]
  },
  "not_found": {
    "status": 404,
    "exception": "RequestInvalid",
    "meaning": "no such route",
    "servers": [
      "node",
      "network"
    ]
  },
  "method_not_allowed": {
    "status": 405,
    "exception": "RequestInvalid",
    "meaning": "the route does not take this method",
    "servers": [
      "node",
      "network"
    ]
  },
  "unknown_event": {
    "status": 404,
    "exception": "RequestInvalid",
    "meaning": "no such event",
    "servers": [
      "node"
    ]
  },
  "unsupported_media_type": {
    "status": 415,
    "exception": "RequestInvalid",
    "meaning": "the body's content type is not one the route takes",
    "servers": [
      "node",
      "network"
    ]
  },
  "body_too_large": {
    "status": 413,
    "exception": "RequestInvalid",
    "meaning": "over the server's body limit",
    "servers": [
      "node",
      "network"
    ]
  },
  "websocket_required": {
    "status": 426,
    "exception": "RequestInvalid",
    "meaning": "a plain HTTP request on `/ws`",
    "servers": [
      "node"
    ]
  },
  "cross_origin_form": {
    "status": 403,
    "exception": "RequestInvalid",
    "meaning": "a form posted from another origin to the dashboard",
    "servers": [
      "node"
    ]
  },
  "http_error": {
    "status": 400,
    "exception": "RequestInvalid",
    "meaning": "any other HTTP-level refusal; `status` is the HTTP status",
    "servers": [
      "node",
      "network"
    ]
  },
  "js_assets_missing": {
    "status": 404,
    "exception": "RequestInvalid",
    "meaning": "the Node has no JavaScript SDK bundle to serve at `/js/`; the message says how to build it",
    "servers": [
      "node"
    ]
  },
  "admin_token_required": {
    "status": 401,
    "exception": "AdminAuthError",
    "meaning": "an admin route without a token",
    "servers": [
      "node",
      "network"
    ]
  },
  "admin_token_invalid": {
    "status": 403,
    "exception": "AdminAuthError",
    "meaning": "an admin route with a wrong token",
    "servers": [
      "node",
      "network"
    ]
  },
  "admin_login_required": {
    "status": 401,
    "exception": "AdminAuthError",
    "meaning": "the dashboard's admin pages need a login",
    "servers": [
      "node",
      "network"
    ]
  },
  "auth_token_required": {
    "status": 401,
    "exception": "AuthenticationError",
    "meaning": "the model needs a device token",
    "servers": [
      "node"
    ]
  },
  "auth_token_invalid": {
    "status": 401,
    "exception": "AuthenticationError",
    "meaning": "the device token's signature, audience or issuer is wrong",
    "servers": [
      "node"
    ]
  },
  "auth_token_expired": {
    "status": 401,
    "exception": "AuthenticationError",
    "meaning": "the device token has expired",
    "servers": [
      "node"
    ]
  },
  "auth_algorithm_not_allowed": {
    "status": 401,
    "exception": "AuthenticationError",
    "meaning": "the device token is signed with an algorithm the model does not allow",
    "servers": [
      "node"
    ]
  },
  "auth_endpoint_unavailable": {
    "status": 503,
    "exception": "Unavailable",
    "meaning": "the external token verification service did not answer in time",
    "servers": [
      "node"
    ]
  },
  "process_exists": {
    "status": 409,
    "exception": "RequestInvalid",
    "meaning": "that name and version is already hosted",
    "servers": [
      "node"
    ]
  },
  "process_unknown": {
    "status": 404,
    "exception": "ProcessUnknown",
    "meaning": "no hosted model by that name (and version)",
    "servers": [
      "node"
    ]
  },
  "process_state_conflict": {
    "status": 409,
    "exception": "RequestInvalid",
    "meaning": "the process's status does not allow this control (e.g. resuming a stopped one, deleting an active one without `force`); `details.process_status` names it",
    "servers": [
      "node"
    ]
  },
  "checkpoint_invalid": {
    "status": 400,
    "exception": "RequestInvalid",
    "meaning": "the hosted model is not a safetensors checkpoint of float tensors",
    "servers": [
      "node"
    ]
  },
  "plan_invalid": {
    "status": 400,
    "exception": "RequestInvalid",
    "meaning": "a plan was refused; `details.reason` is the plan validator's code",
    "servers": [
      "node"
    ]
  },
  "server_config_invalid": {
    "status": 400,
    "exception": "RequestInvalid",
    "meaning": "`server_config` is refused; `details.field` names the key",
    "servers": [
      "node"
    ]
  },
  "client_config_invalid": {
    "status": 400,
    "exception": "RequestInvalid",
    "meaning": "`client_config` is refused; `details.field` names the key",
    "servers": [
      "node"
    ]
  },
  "evaluation_set_invalid": {
    "status": 400,
    "exception": "RequestInvalid",
    "meaning": "the evaluation set is not a safetensors file holding exactly `features` and `labels` with one row per example; `details.reason` says what is wrong",
    "servers": [
      "node"
    ]
  },
  "evaluation_set_mismatch": {
    "status": 400,
    "exception": "RequestInvalid",
    "meaning": "the evaluation set does not fit the model's plan: `details.field` names `features` (shape or dtype) or `labels` (dtype, shape or a class outside the model's outputs)",
    "servers": [
      "node"
    ]
  },
  "evaluation_set_too_large": {
    "status": 413,
    "exception": "RequestInvalid",
    "meaning": "the evaluation set is over the Node's limit (`details.limit_bytes`)",
    "servers": [
      "node"
    ]
  },
  "plan_not_evaluable": {
    "status": 400,
    "exception": "RequestInvalid",
    "meaning": "the model's plan has no forward graph, so the Node cannot score checkpoints",
    "servers": [
      "node"
    ]
  },
  "worker_unknown": {
    "status": 404,
    "exception": "WorkerUnknown",
    "meaning": "unknown worker id: authenticate first",
    "servers": [
      "node"
    ]
  },
  "worker_process_mismatch": {
    "status": 403,
    "exception": "WorkerUnknown",
    "meaning": "the worker id was issued for another model: authenticate for this one",
    "servers": [
      "node"
    ]
  },
  "speed_test_required": {
    "status": 400,
    "exception": "RequestInvalid",
    "meaning": "the model has speed gates; `details.missing` lists what to send",
    "servers": [
      "node"
    ]
  },
  "request_key_invalid": {
    "status": 403,
    "exception": "AssignmentExpired",
    "meaning": "not this worker's request key",
    "servers": [
      "node"
    ]
  },
  "cycle_closed": {
    "status": 409,
    "exception": "AssignmentExpired",
    "meaning": "the assignment's cycle closed (goal reached or deadline passed)",
    "servers": [
      "node"
    ]
  },
  "assignment_expired": {
    "status": 409,
    "exception": "AssignmentExpired",
    "meaning": "the assignment's lease ran out before it reported; its place went to another device",
    "servers": [
      "node"
    ]
  },
  "cycle_unavailable": {
    "status": 503,
    "exception": "Unavailable",
    "meaning": "transient: the next cycle is being opened; retry",
    "servers": [
      "node"
    ]
  },
  "model_unknown": {
    "status": 404,
    "exception": "RequestInvalid",
    "meaning": "a model id that is not the assignment's",
    "servers": [
      "node"
    ]
  },
  "plan_unknown": {
    "status": 404,
    "exception": "RequestInvalid",
    "meaning": "a plan id that is not the assignment's",
    "servers": [
      "node"
    ]
  },
  "checkpoint_unknown": {
    "status": 404,
    "exception": "RequestInvalid",
    "meaning": "no such checkpoint number",
    "servers": [
      "node"
    ]
  },
  "report_duplicate": {
    "status": 409,
    "exception": "ReportRefused",
    "meaning": "one report per assignment: the first one stands (it was counted)",
    "servers": [
      "node"
    ]
  },
  "diff_malformed": {
    "status": 400,
    "exception": "ReportRefused",
    "meaning": "the diff is not a safetensors buffer",
    "servers": [
      "node"
    ]
  },
  "storage_unavailable": {
    "status": 503,
    "exception": "Unavailable",
    "meaning": "the Node could not write to its disk (full or failing): retry later; after its disk failed a flush it takes no writes until it is restarted",
    "servers": [
      "node"
    ]
  },
  "diff_mismatch": {
    "status": 400,
    "exception": "ReportRefused",
    "meaning": "the diff has other names, shapes or dtypes than the model",
    "servers": [
      "node"
    ]
  },
  "diff_not_finite": {
    "status": 400,
    "exception": "ReportRefused",
    "meaning": "the diff holds NaN or infinity",
    "servers": [
      "node"
    ]
  },
  "diff_encoding_mismatch": {
    "status": 400,
    "exception": "ReportRefused",
    "meaning": "the diff is not in the model's `client_config.diff_encoding` (`details.expected`, `details.tensor`)",
    "servers": [
      "node"
    ]
  },
  "diff_scale_invalid": {
    "status": 400,
    "exception": "ReportRefused",
    "meaning": "an int8 diff's scale is not a finite, non-negative float32 scalar (`details.tensor` names it)",
    "servers": [
      "node"
    ]
  },
  "diff_out_of_range": {
    "status": 400,
    "exception": "ReportRefused",
    "meaning": "`num_samples` × |diff value| exceeds 1e36; `details.tensor` names the tensor",
    "servers": [
      "node"
    ]
  },
  "num_samples_invalid": {
    "status": 400,
    "exception": "ReportRefused",
    "meaning": "`num_samples` is not a positive integer",
    "servers": [
      "node"
    ]
  },
  "metrics_invalid": {
    "status": 400,
    "exception": "ReportRefused",
    "meaning": "`metrics` is not an object of at most 32 finite numbers (an evaluation report needs at least one)",
    "servers": [
      "node"
    ]
  },
  "report_diff_missing": {
    "status": 400,
    "exception": "ReportRefused",
    "meaning": "a training assignment's report without a `diff`",
    "servers": [
      "node"
    ]
  },
  "report_diff_unexpected": {
    "status": 400,
    "exception": "ReportRefused",
    "meaning": "an evaluation assignment's report with a `diff`: it reports metrics only",
    "servers": [
      "node"
    ]
  },
  "secure_report_refused": {
    "status": 409,
    "exception": "ReportRefused",
    "meaning": "the cycle aggregates securely: updates go through the `secagg-*` events, never in the clear with `report`",
    "servers": [
      "node"
    ]
  },
  "not_secure_cycle": {
    "status": 409,
    "exception": "RequestInvalid",
    "meaning": "a `secagg-*` event for an assignment whose cycle does not aggregate securely",
    "servers": [
      "node"
    ]
  },
  "secagg_not_in_round": {
    "status": 409,
    "exception": "AssignmentExpired",
    "meaning": "the assignment takes no part in this secure round (it missed an earlier round, the round closed before its message came, or it already sent another message for this round): drop this work",
    "servers": [
      "node"
    ]
  },
  "secagg_message_invalid": {
    "status": 400,
    "exception": "RequestInvalid",
    "meaning": "a secure-aggregation message does not fit its round (a body that is not its field's binary layout or is empty, a key's length, the neighbours a share goes to, the masked input's length)",
    "servers": [
      "node"
    ]
  },
  "secagg_aborted": {
    "status": 409,
    "exception": "AssignmentExpired",
    "meaning": "the cycle's secure aggregation cannot complete (too few devices left in a round, or the cycle closed before its rounds did): drop this work",
    "servers": [
      "node"
    ]
  },
  "registration_secret_required": {
    "status": 401,
    "exception": "AdminAuthError",
    "meaning": "joining this Network needs its registration secret",
    "servers": [
      "network"
    ]
  },
  "registration_secret_invalid": {
    "status": 403,
    "exception": "AdminAuthError",
    "meaning": "a wrong registration secret",
    "servers": [
      "network"
    ]
  },
  "node_token_required": {
    "status": 401,
    "exception": "AdminAuthError",
    "meaning": "a Node's call to its Network without its node token",
    "servers": [
      "network"
    ]
  },
  "node_token_invalid": {
    "status": 403,
    "exception": "AdminAuthError",
    "meaning": "a wrong node token",
    "servers": [
      "network"
    ]
  },
  "node_unknown": {
    "status": 404,
    "exception": "RequestInvalid",
    "meaning": "no Node by that id",
    "servers": [
      "network"
    ]
  },
  "node_id_taken": {
    "status": 409,
    "exception": "RequestInvalid",
    "meaning": "another Node holds that id",
    "servers": [
      "network"
    ]
  },
  "model_not_found": {
    "status": 404,
    "exception": "ProcessUnknown",
    "meaning": "no online Node hosts that model (and version)",
    "servers": [
      "network"
    ]
  },
  "replica_unavailable": {
    "status": 503,
    "exception": "Unavailable",
    "meaning": "no replica of the Node passes the load balancer's health check: retry shortly",
    "servers": [
      "node"
    ]
  },
  "replica_failed": {
    "status": 502,
    "exception": "Unavailable",
    "meaning": "the replica handling the request closed its connection without answering (it died): the request may have been acted on; a repeated report is refused `report_duplicate` if the first one was counted",
    "servers": [
      "node"
    ]
  },
  "replica_timeout": {
    "status": 504,
    "exception": "Unavailable",
    "meaning": "the replica handling the request did not answer within the load balancer's timeout (120 s)",
    "servers": [
      "node"
    ]
  },
  "internal_error": {
    "status": 500,
    "exception": "Unavailable",
    "meaning": "a bug: the server's log has the traceback, the client gets none",
    "servers": [
      "node",
      "network"
    ]
  }
});

/** Codes the SDKs make up themselves, for failures that never reached a server's answer. */
export const SDK_CODES = freeze({
  "network_unreachable": "NetworkUnreachable",
  "unexpected_answer": "FedgridError"
});

/** The longest a cycle-request may be held (its `wait`, seconds). */
export const MAX_WAIT_SECONDS = 30;
