// Generated from protocol/fedgrid_protocol by `python -m fedgrid_protocol.export` (`make protocol`); do not edit.

/** The exception classes both SDKs raise for server codes. */
export type SdkExceptionName =
  | 'AuthenticationError'
  | 'AdminAuthError'
  | 'WorkerUnknown'
  | 'ProcessUnknown'
  | 'AssignmentExpired'
  | 'ReportRefused'
  | 'Unavailable'
  | 'RequestInvalid';

/** Every error code a Fedgrid server answers. */
export type ErrorCode =
  | 'invalid_json'
  | 'invalid_request'
  | 'invalid_frame'
  | 'bad_request'
  | 'not_found'
  | 'method_not_allowed'
  | 'unknown_event'
  | 'unsupported_media_type'
  | 'body_too_large'
  | 'websocket_required'
  | 'cross_origin_form'
  | 'http_error'
  | 'js_assets_missing'
  | 'admin_token_required'
  | 'admin_token_invalid'
  | 'admin_login_required'
  | 'auth_token_required'
  | 'auth_token_invalid'
  | 'auth_token_expired'
  | 'auth_algorithm_not_allowed'
  | 'auth_endpoint_unavailable'
  | 'process_exists'
  | 'process_unknown'
  | 'checkpoint_invalid'
  | 'plan_invalid'
  | 'server_config_invalid'
  | 'client_config_invalid'
  | 'worker_unknown'
  | 'worker_process_mismatch'
  | 'speed_test_required'
  | 'request_key_invalid'
  | 'cycle_closed'
  | 'assignment_expired'
  | 'cycle_unavailable'
  | 'model_unknown'
  | 'plan_unknown'
  | 'checkpoint_unknown'
  | 'report_duplicate'
  | 'diff_malformed'
  | 'diff_mismatch'
  | 'diff_not_finite'
  | 'diff_out_of_range'
  | 'num_samples_invalid'
  | 'metrics_invalid'
  | 'registration_secret_required'
  | 'registration_secret_invalid'
  | 'node_token_required'
  | 'node_token_invalid'
  | 'node_unknown'
  | 'node_id_taken'
  | 'model_not_found'
  | 'internal_error';

/** Codes the SDKs make up themselves (never answered by a server). */
export type SdkCode =
  | 'network_unreachable'
  | 'unexpected_answer';

export interface ErrorCodeEntry<S extends number = number, E extends SdkExceptionName = SdkExceptionName> {
  readonly status: S;
  readonly exception: E;
  readonly meaning: string;
  readonly servers: readonly ('node' | 'network')[];
}

export interface ErrorCodes {
  readonly invalid_json: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly invalid_request: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly invalid_frame: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly bad_request: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly not_found: ErrorCodeEntry<404, 'RequestInvalid'>;
  readonly method_not_allowed: ErrorCodeEntry<405, 'RequestInvalid'>;
  readonly unknown_event: ErrorCodeEntry<404, 'RequestInvalid'>;
  readonly unsupported_media_type: ErrorCodeEntry<415, 'RequestInvalid'>;
  readonly body_too_large: ErrorCodeEntry<413, 'RequestInvalid'>;
  readonly websocket_required: ErrorCodeEntry<426, 'RequestInvalid'>;
  readonly cross_origin_form: ErrorCodeEntry<403, 'RequestInvalid'>;
  readonly http_error: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly js_assets_missing: ErrorCodeEntry<404, 'RequestInvalid'>;
  readonly admin_token_required: ErrorCodeEntry<401, 'AdminAuthError'>;
  readonly admin_token_invalid: ErrorCodeEntry<403, 'AdminAuthError'>;
  readonly admin_login_required: ErrorCodeEntry<401, 'AdminAuthError'>;
  readonly auth_token_required: ErrorCodeEntry<401, 'AuthenticationError'>;
  readonly auth_token_invalid: ErrorCodeEntry<401, 'AuthenticationError'>;
  readonly auth_token_expired: ErrorCodeEntry<401, 'AuthenticationError'>;
  readonly auth_algorithm_not_allowed: ErrorCodeEntry<401, 'AuthenticationError'>;
  readonly auth_endpoint_unavailable: ErrorCodeEntry<503, 'Unavailable'>;
  readonly process_exists: ErrorCodeEntry<409, 'RequestInvalid'>;
  readonly process_unknown: ErrorCodeEntry<404, 'ProcessUnknown'>;
  readonly checkpoint_invalid: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly plan_invalid: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly server_config_invalid: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly client_config_invalid: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly worker_unknown: ErrorCodeEntry<404, 'WorkerUnknown'>;
  readonly worker_process_mismatch: ErrorCodeEntry<403, 'WorkerUnknown'>;
  readonly speed_test_required: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly request_key_invalid: ErrorCodeEntry<403, 'AssignmentExpired'>;
  readonly cycle_closed: ErrorCodeEntry<409, 'AssignmentExpired'>;
  readonly assignment_expired: ErrorCodeEntry<409, 'AssignmentExpired'>;
  readonly cycle_unavailable: ErrorCodeEntry<503, 'Unavailable'>;
  readonly model_unknown: ErrorCodeEntry<404, 'RequestInvalid'>;
  readonly plan_unknown: ErrorCodeEntry<404, 'RequestInvalid'>;
  readonly checkpoint_unknown: ErrorCodeEntry<404, 'RequestInvalid'>;
  readonly report_duplicate: ErrorCodeEntry<409, 'ReportRefused'>;
  readonly diff_malformed: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly diff_mismatch: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly diff_not_finite: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly diff_out_of_range: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly num_samples_invalid: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly metrics_invalid: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly registration_secret_required: ErrorCodeEntry<401, 'AdminAuthError'>;
  readonly registration_secret_invalid: ErrorCodeEntry<403, 'AdminAuthError'>;
  readonly node_token_required: ErrorCodeEntry<401, 'AdminAuthError'>;
  readonly node_token_invalid: ErrorCodeEntry<403, 'AdminAuthError'>;
  readonly node_unknown: ErrorCodeEntry<404, 'RequestInvalid'>;
  readonly node_id_taken: ErrorCodeEntry<409, 'RequestInvalid'>;
  readonly model_not_found: ErrorCodeEntry<404, 'ProcessUnknown'>;
  readonly internal_error: ErrorCodeEntry<500, 'Unavailable'>;
}

export interface SdkCodes {
  readonly network_unreachable: 'NetworkUnreachable';
  readonly unexpected_answer: 'FedgridError';
}
