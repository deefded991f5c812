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
  | 'process_state_conflict'
  | 'checkpoint_invalid'
  | 'plan_invalid'
  | 'server_config_invalid'
  | 'client_config_invalid'
  | 'evaluation_set_invalid'
  | 'evaluation_set_mismatch'
  | 'evaluation_set_too_large'
  | 'plan_not_evaluable'
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
  | 'storage_unavailable'
  | 'diff_mismatch'
  | 'diff_not_finite'
  | 'diff_encoding_mismatch'
  | 'diff_scale_invalid'
  | 'diff_out_of_range'
  | 'num_samples_invalid'
  | 'metrics_invalid'
  | 'report_diff_missing'
  | 'report_diff_unexpected'
  | 'secure_report_refused'
  | 'not_secure_cycle'
  | 'secagg_not_in_round'
  | 'secagg_message_invalid'
  | 'secagg_aborted'
  | 'registration_secret_required'
  | 'registration_secret_invalid'
  | 'node_token_required'
  | 'node_token_invalid'
  | 'node_unknown'
  | 'node_id_taken'
  | 'model_not_found'
  | 'replica_unavailable'
  | 'replica_failed'
  | 'replica_timeout'
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
  readonly process_state_conflict: ErrorCodeEntry<409, 'RequestInvalid'>;
  readonly checkpoint_invalid: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly plan_invalid: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly server_config_invalid: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly client_config_invalid: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly evaluation_set_invalid: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly evaluation_set_mismatch: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly evaluation_set_too_large: ErrorCodeEntry<413, 'RequestInvalid'>;
  readonly plan_not_evaluable: ErrorCodeEntry<400, 'RequestInvalid'>;
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
  readonly storage_unavailable: ErrorCodeEntry<503, 'Unavailable'>;
  readonly diff_mismatch: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly diff_not_finite: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly diff_encoding_mismatch: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly diff_scale_invalid: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly diff_out_of_range: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly num_samples_invalid: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly metrics_invalid: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly report_diff_missing: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly report_diff_unexpected: ErrorCodeEntry<400, 'ReportRefused'>;
  readonly secure_report_refused: ErrorCodeEntry<409, 'ReportRefused'>;
  readonly not_secure_cycle: ErrorCodeEntry<409, 'RequestInvalid'>;
  readonly secagg_not_in_round: ErrorCodeEntry<409, 'AssignmentExpired'>;
  readonly secagg_message_invalid: ErrorCodeEntry<400, 'RequestInvalid'>;
  readonly secagg_aborted: ErrorCodeEntry<409, 'AssignmentExpired'>;
  readonly registration_secret_required: ErrorCodeEntry<401, 'AdminAuthError'>;
  readonly registration_secret_invalid: ErrorCodeEntry<403, 'AdminAuthError'>;
  readonly node_token_required: ErrorCodeEntry<401, 'AdminAuthError'>;
  readonly node_token_invalid: ErrorCodeEntry<403, 'AdminAuthError'>;
  readonly node_unknown: ErrorCodeEntry<404, 'RequestInvalid'>;
  readonly node_id_taken: ErrorCodeEntry<409, 'RequestInvalid'>;
  readonly model_not_found: ErrorCodeEntry<404, 'ProcessUnknown'>;
  readonly replica_unavailable: ErrorCodeEntry<503, 'Unavailable'>;
  readonly replica_failed: ErrorCodeEntry<502, 'Unavailable'>;
  readonly replica_timeout: ErrorCodeEntry<504, 'Unavailable'>;
  readonly internal_error: ErrorCodeEntry<500, 'Unavailable'>;
}

export interface SdkCodes {
  readonly network_unreachable: 'NetworkUnreachable';
  readonly unexpected_answer: 'FedgridError';
}

// ----------------------------------------------------------------------------- wire types
// The events' requests and answers as they travel (snake_case), from their JSON Schema.
// Bounds TypeScript cannot express are in the doc comments; servers enforce them.

/**
 * Wire payload: an answer of `cycle-request`.
 * Servers may send more fields than these.
 */
export interface AcceptedAnswer {
  status: 'accepted';
  request_key: string;
  model: string;
  version: string;
  model_id: number;
  plans: Record<string, number>;
  client_config: Record<string, unknown>;
  cycle: number;
  checkpoint: number;
  /** ISO 8601 UTC, e.g. 2026-11-26T18:00:00.000000Z */
  deadline: string;
  /** seconds left to report: the assignment's lease */
  timeout: number;
  /** ISO 8601 UTC, e.g. 2026-11-26T18:00:00.000000Z */
  report_by: string;
  /** `evaluate`: run the plan's forward graph on local data without training and report metrics and num_samples only, no diff */
  task?: 'train' | 'evaluate';
  /** present when the cycle aggregates securely: its SecAgg+ parameters (server_config.secure_aggregation's keys) and, with differential privacy, `clip_norm`: the L2 norm the device clips its whole update to before quantising it (`SecureCycleSettings`); the device runs the secagg rounds instead of `report` */
  secure_aggregation?: Record<string, unknown> | null;
}

/** Wire payload: an answer of `checkpoints`, an answer of `cycles`, an answer of `processes`. */
export interface Answer {
  [key: string]: unknown;
}

/**
 * Wire payload: an answer of `authenticate`.
 * Servers may send more fields than these.
 */
export interface AuthenticateAnswer {
  status: 'success';
  worker_id: string;
  model: string;
  version: string;
  requires_speed_test: boolean;
}

/** Wire payload: the request of `authenticate`. */
export interface AuthenticateRequest {
  /** Constraints: minLength 1; maxLength 255; pattern `^[^\x00-\x1f\x7f]*$`. */
  model_name: string;
  /** Constraints: minLength 1; maxLength 64; pattern `^[^\x00-\x1f\x7f]*$`. */
  model_version?: string | null;
  /**
   * the device token, when the model needs one
   * Constraints: maxLength 16384; pattern `^[^\x00-\x1f\x7f]*$`.
   */
  auth_token?: string | null;
}

/** Wire payload: the request of `cycle-request`. */
export interface CycleRequest {
  /** Constraints: minLength 1; maxLength 64; pattern `^[0-9A-Za-z_-]+$`. */
  worker_id: string;
  /** Constraints: minLength 1; maxLength 255; pattern `^[^\x00-\x1f\x7f]*$`. */
  model: string;
  /** Constraints: minLength 1; maxLength 64; pattern `^[^\x00-\x1f\x7f]*$`. */
  version?: string | null;
  /**
   * milliseconds
   * Constraints: minimum 0.
   */
  ping?: number | null;
  /**
   * Mbit/s
   * Constraints: minimum 0.
   */
  download?: number | null;
  /**
   * Mbit/s
   * Constraints: minimum 0.
   */
  upload?: number | null;
  /**
   * seconds the Node may hold the request until a place opens (long-poll)
   * Constraints: minimum 0; maximum 30.
   */
  wait?: number | null;
  /** WebSocket only: push place-available to this socket when rejected */
  notify?: boolean | null;
}

/**
 * Wire payload: an answer of `delete-process`.
 * Servers may send more fields than these.
 */
export interface DeleteProcessAnswer {
  status: 'success';
  model: string;
  version: string;
  deleted: true;
}

/** Wire payload: the request of `delete-process`. */
export interface DeleteProcessRequest {
  /** Constraints: minLength 1; maxLength 255; pattern `^[^\x00-\x1f\x7f]*$`. */
  name: string;
  /** Constraints: minLength 1; maxLength 64; pattern `^[^\x00-\x1f\x7f]*$`. */
  version?: string | null;
  /** delete even an active process (its open cycle and the unreported work in it are dropped) */
  force?: boolean;
}

/** Wire payload: the answer of every event that fails. */
export interface ErrorAnswer {
  error: ErrorBody;
}

/** Wire payload: a part of ErrorAnswer. */
export interface ErrorBody {
  code: string;
  message: string;
  status: number;
  details?: Record<string, unknown> | null;
}

/**
 * Wire payload: an answer of `evaluation-set`.
 * Servers may send more fields than these.
 */
export interface EvaluationSetAnswer {
  status: 'success';
  model: string;
  version: string;
  num_samples: number;
  /** checkpoints the Node will now score, asynchronously */
  checkpoints_to_score: number;
}

/**
 * Give the Node a held-out test set for a hosted model (admin). Over HTTP: the body is the
 * safetensors file, `name` and `version` in the query string.
 * Wire payload: the request of `evaluation-set`.
 */
export interface EvaluationSetRequest {
  /** Constraints: minLength 1; maxLength 255; pattern `^[^\x00-\x1f\x7f]*$`. */
  name: string;
  /** Constraints: minLength 1; maxLength 64; pattern `^[^\x00-\x1f\x7f]*$`. */
  version?: string | null;
  /** safetensors holding `features` (the plan's feature shape, one row per example) and `labels` (class indices, or targets shaped like the output) */
  evaluation_set: Uint8Array;
}

/** Wire payload: the request of `get-model`. */
export interface GetModelRequest {
  /** Constraints: minLength 1; maxLength 64; pattern `^[0-9A-Za-z_-]+$`. */
  worker_id: string;
  /** Constraints: minLength 1; maxLength 128; pattern `^[0-9A-Za-z_-]+$`. */
  request_key: string;
  /** Constraints: minimum 1; maximum 2147483647. */
  model_id?: number | null;
}

/** Wire payload: the request of `get-plan`. */
export interface GetPlanRequest {
  /** Constraints: minLength 1; maxLength 64; pattern `^[0-9A-Za-z_-]+$`. */
  worker_id: string;
  /** Constraints: minLength 1; maxLength 128; pattern `^[0-9A-Za-z_-]+$`. */
  request_key: string;
  /** Constraints: minimum 1; maximum 2147483647. */
  plan_id: number;
  /** PyGrid's plan formats: accepted for compatibility; the answer is always the Fedgrid plan file */
  receive_operations_as?: 'list' | 'torchscript' | 'tfjs' | null;
}

/**
 * Wire payload: an answer of `host-training`.
 * Servers may send more fields than these.
 */
export interface HostTrainingAnswer {
  status: 'success';
  model: string;
  version: string;
  process_id?: number | null;
}

/**
 * Host a model (admin). Over HTTP: multipart, plans as files `plans[<name>]`.
 * Wire payload: the request of `host-training`.
 */
export interface HostTrainingRequest {
  /**
   * the model's name (or client_config.name, PyGrid)
   * Constraints: minLength 1; maxLength 255; pattern `^[^\x00-\x1f\x7f]*$`.
   */
  name?: string | null;
  /**
   * its version (or client_config.version)
   * Constraints: minLength 1; maxLength 64; pattern `^[^\x00-\x1f\x7f]*$`.
   */
  version?: string | null;
  /** checkpoint 1: safetensors of float tensors */
  model: Uint8Array;
  /**
   * client plans by name
   * Constraints: keys: minLength 1, maxLength 255; keys match `^[^\x00-\x1f\x7f]*$`.
   */
  plans?: Record<string, Uint8Array>;
  /** PyGrid's hosted averaging plan */
  averaging_plan?: Uint8Array | null;
  /** sent to devices (ClientConfig) */
  client_config?: Record<string, unknown> | null;
  /** the cycle policy (ServerConfig) */
  server_config?: Record<string, unknown> | null;
  /** PyGrid's SMPC protocols: accepted for compatibility, ignored */
  protocols?: Record<string, unknown> | null;
  /** optional held-out test set (safetensors `features`, `labels`), as for the evaluation-set event */
  evaluation_set?: Uint8Array | null;
}

/** Wire payload: the request of `checkpoints`, the request of `cycles`. */
export interface ModelQuery {
  /** Constraints: minLength 1; maxLength 255; pattern `^[^\x00-\x1f\x7f]*$`. */
  name: string;
  /** Constraints: minLength 1; maxLength 64; pattern `^[^\x00-\x1f\x7f]*$`. */
  version?: string | null;
}

/**
 * Wire payload: an answer of `pause-process`, an answer of `resume-process`, an answer of `stop-process`.
 * Servers may send more fields than these.
 */
export interface ProcessControlAnswer {
  status: 'success';
  model: string;
  version: string;
  /** the process's status after the call */
  process_status: 'active' | 'paused' | 'stopped' | 'finished';
  /** false when the process already was in that state (the call is idempotent) */
  changed: boolean;
  /** stop only: the cycle it closed, {sequence, status (completed or abandoned), checkpoint}; null when none was open */
  cycle?: Record<string, unknown> | null;
}

/**
 * Pause, resume or stop a hosted process (admin). No version: the newest one by that name.
 * Wire payload: the request of `pause-process`, the request of `resume-process`, the request of `stop-process`.
 */
export interface ProcessControlRequest {
  /** Constraints: minLength 1; maxLength 255; pattern `^[^\x00-\x1f\x7f]*$`. */
  name: string;
  /** Constraints: minLength 1; maxLength 64; pattern `^[^\x00-\x1f\x7f]*$`. */
  version?: string | null;
}

/** Wire payload: the request of `processes`. */
export interface ProcessesRequest {}

/**
 * Wire payload: an answer of `cycle-request`.
 * Servers may send more fields than these.
 */
export interface RejectedAnswer {
  status: 'rejected';
  /** cycle_full, not_selected, worker_cooling_down, already_reported, download_too_slow, upload_too_slow, ping_too_high, process_paused (ask again after timeout), training_finished, training_stopped (never ask again) */
  reason: string;
  /** seconds until asking again is worthwhile */
  timeout?: number | null;
  model: string;
  version: string;
}

/**
 * Wire payload: an answer of `report`.
 * Servers may send more fields than these.
 */
export interface ReportAnswer {
  status: 'success';
  cycle: number;
}

/** Wire payload: the request of `report`. */
export interface ReportRequest {
  /** Constraints: minLength 1; maxLength 64; pattern `^[0-9A-Za-z_-]+$`. */
  worker_id: string;
  /** Constraints: minLength 1; maxLength 128; pattern `^[0-9A-Za-z_-]+$`. */
  request_key: string;
  /** start parameters − trained parameters, safetensors; required for a training assignment, refused for an evaluation assignment */
  diff?: Uint8Array | null;
  /**
   * the samples trained on (evaluated on, for an evaluation assignment): the report's weight in the average
   * Constraints: minimum 1; maximum 2147483647.
   */
  num_samples: number;
  /**
   * finite numbers, e.g. loss and accuracy
   * Constraints: maxProperties 32; keys: maxLength 64.
   */
  metrics?: Record<string, number> | null;
}

/** Wire payload: the request of `retrieve-model`. */
export interface RetrieveModelRequest {
  /** Constraints: minLength 1; maxLength 255; pattern `^[^\x00-\x1f\x7f]*$`. */
  name: string;
  /** Constraints: minLength 1; maxLength 64; pattern `^[^\x00-\x1f\x7f]*$`. */
  version?: string | null;
  /**
   * a number, or latest
   * Constraints: minimum 1; maximum 2147483647.
   */
  checkpoint?: number | 'latest' | null;
}

/** Wire payload: the request of `secagg-advertise-keys`. */
export interface SecAggAdvertiseKeysRequest {
  /** Constraints: minLength 1; maxLength 64; pattern `^[0-9A-Za-z_-]+$`. */
  worker_id: string;
  /** Constraints: minLength 1; maxLength 128; pattern `^[0-9A-Za-z_-]+$`. */
  request_key: string;
  /** deprecated (older SDKs): the c public key alone */
  c_public?: Uint8Array | null;
  /** deprecated (older SDKs): the s public key alone */
  s_public?: Uint8Array | null;
  /** the c public key (X25519, 32 bytes: share boxes are agreed with it) then the s public key (32 bytes: masks are agreed with it); the body */
  public_keys?: Uint8Array | null;
}

/** Wire payload: the request of `secagg-masked-input`. */
export interface SecAggMaskedInputRequest {
  /** Constraints: minLength 1; maxLength 64; pattern `^[0-9A-Za-z_-]+$`. */
  worker_id: string;
  /** Constraints: minLength 1; maxLength 128; pattern `^[0-9A-Za-z_-]+$`. */
  request_key: string;
  /** the masked, quantised update: little-endian uint32 words, the model's tensors by name, row-major */
  masked_input: Uint8Array;
}

/**
 * Wire payload: an answer of `secagg-advertise-keys`, an answer of `secagg-masked-input`, an answer of `secagg-share-keys`, an answer of `secagg-unmask`.
 * Servers may send more fields than these.
 */
export interface SecAggReceivedAnswer {
  status: 'success';
  round: 'cohort' | 'advertise-keys' | 'share-keys' | 'masked-input' | 'unmask' | 'done';
}

/**
 * The secure round the cycle is in, and what this device needs for it (bytes: base64).
 * Wire payload: an answer of `secagg-round`.
 * Servers may send more fields than these.
 */
export interface SecAggRoundAnswer {
  status: 'success';
  /** `cohort`: places are still being taken; `done`: the sum is unmasked */
  round: 'cohort' | 'advertise-keys' | 'share-keys' | 'masked-input' | 'unmask' | 'done';
  /** this device already sent its message for this round */
  sent: boolean;
  /** seconds until the round closes */
  timeout?: number | null;
  /** this device's index in the cohort */
  index?: number | null;
  /** devices in the cohort */
  cohort?: number | null;
  /** share-keys: index -> [c_public, s_public] of every device that advertised keys, or with the request's `roster: neighbours` of this device and its neighbours */
  roster?: Record<string, string[]> | null;
  /** share-keys: how many devices advertised keys (the count k and t follow from) */
  advertised?: number | null;
  /** share-keys: this device's neighbours */
  neighbours?: number[] | null;
  /** masked-input: sender index -> its share box for this device */
  boxes?: Record<string, string> | null;
  /** unmask: who sent a masked input */
  survivors?: number[] | null;
  /** unmask: who shared keys but sent none */
  dropped?: number[] | null;
}

/** Wire payload: the request of `secagg-round`. */
export interface SecAggRoundRequest {
  /** Constraints: minLength 1; maxLength 64; pattern `^[0-9A-Za-z_-]+$`. */
  worker_id: string;
  /** Constraints: minLength 1; maxLength 128; pattern `^[0-9A-Za-z_-]+$`. */
  request_key: string;
  /**
   * seconds the Node may hold the request until the round changes
   * Constraints: minimum 0; maximum 30.
   */
  wait?: number | null;
  /** share-keys: whose public keys the answer's roster carries: every device that advertised keys (`all`, what older SDKs expect) or this device's and its neighbours' (`neighbours`: all a device uses) */
  roster?: 'all' | 'neighbours';
}

/** Wire payload: the request of `secagg-share-keys`. */
export interface SecAggShareKeysRequest {
  /** Constraints: minLength 1; maxLength 64; pattern `^[0-9A-Za-z_-]+$`. */
  worker_id: string;
  /** Constraints: minLength 1; maxLength 128; pattern `^[0-9A-Za-z_-]+$`. */
  request_key: string;
  /** neighbour index -> its AES-GCM share box, as entries (the body); deprecated (older SDKs): an object of them */
  boxes: Uint8Array;
}

/** Wire payload: the request of `secagg-unmask`. */
export interface SecAggUnmaskRequest {
  /** Constraints: minLength 1; maxLength 64; pattern `^[0-9A-Za-z_-]+$`. */
  worker_id: string;
  /** Constraints: minLength 1; maxLength 128; pattern `^[0-9A-Za-z_-]+$`. */
  request_key: string;
  /** neighbour index -> the Shamir share (66 bytes) of its self-mask seed (a survivor) or of its mask key (a device that dropped), as entries (the body); deprecated (older SDKs): an object of them */
  shares: Uint8Array;
}

/** Each event's request, by event name: the wire's fields, snake_case. Blobs
 *  (`format: binary`) travel as files, a binary body or WebSocket frame blobs. */
export interface EventRequests {
  'authenticate': AuthenticateRequest;
  'checkpoints': ModelQuery;
  'cycle-request': CycleRequest;
  'cycles': ModelQuery;
  'delete-process': DeleteProcessRequest;
  'evaluation-set': EvaluationSetRequest;
  'get-model': GetModelRequest;
  'get-plan': GetPlanRequest;
  'host-training': HostTrainingRequest;
  'pause-process': ProcessControlRequest;
  'processes': ProcessesRequest;
  'report': ReportRequest;
  'resume-process': ProcessControlRequest;
  'retrieve-model': RetrieveModelRequest;
  'secagg-advertise-keys': SecAggAdvertiseKeysRequest;
  'secagg-masked-input': SecAggMaskedInputRequest;
  'secagg-round': SecAggRoundRequest;
  'secagg-share-keys': SecAggShareKeysRequest;
  'secagg-unmask': SecAggUnmaskRequest;
  'stop-process': ProcessControlRequest;
}

/** Each event's successful answer, by event name (`Uint8Array`: the answer is bytes).
 *  Failures answer an ErrorAnswer. */
export interface EventAnswers {
  'authenticate': AuthenticateAnswer;
  'checkpoints': Answer;
  'cycle-request': AcceptedAnswer | RejectedAnswer;
  'cycles': Answer;
  'delete-process': DeleteProcessAnswer;
  'evaluation-set': EvaluationSetAnswer;
  'get-model': Uint8Array;
  'get-plan': Uint8Array;
  'host-training': HostTrainingAnswer;
  'pause-process': ProcessControlAnswer;
  'processes': Answer;
  'report': ReportAnswer;
  'resume-process': ProcessControlAnswer;
  'retrieve-model': Uint8Array;
  'secagg-advertise-keys': SecAggReceivedAnswer;
  'secagg-masked-input': SecAggReceivedAnswer;
  'secagg-round': SecAggRoundAnswer;
  'secagg-share-keys': SecAggReceivedAnswer;
  'secagg-unmask': SecAggReceivedAnswer;
  'stop-process': ProcessControlAnswer;
}
