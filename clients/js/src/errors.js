// Typed errors. Every error a Node sends is {"error": {code, message, status, details}}; the SDK
// raises it as an ApiError subclass chosen by code so callers can `instanceof` the cases they
// handle (authenticate again, ask for a new cycle, fix the data) and read `.code` for the rest.

/** Base class of everything the SDK throws on purpose. */
export class FedgridError extends Error {
  constructor(message, { code = 'fedgrid_error', cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/** Bytes that are not a valid safetensors file or plan file. */
export class FormatError extends FedgridError {
  constructor(message, options = {}) {
    super(message, { code: 'format_invalid', ...options });
  }
}

/** The Node could not be reached (connection refused, reset, DNS, timeout) after all retries. */
export class NetworkError extends FedgridError {
  constructor(message, options = {}) {
    super(message, { code: 'network_error', ...options });
  }
}

/** An error answer from the Node. `code`, `status` and `details` are the Node's. */
export class ApiError extends FedgridError {
  constructor({ code = 'http_error', message = '', status = 0, details = undefined } = {}) {
    super(message || `the Node answered ${status} (${code})`, { code });
    this.status = status;
    this.details = details;
  }
}

/** 401/403 on device or admin credentials: get a valid token (auth_token_*, admin_token_*). */
export class AuthenticationError extends ApiError {}

/** The assignment is no longer valid (cycle_closed, assignment_expired, request_key_invalid,
 *  worker_*): drop its work and call job.request() again for a new place. */
export class CycleClosedError extends ApiError {}

/** The request itself was refused (a 4xx that retrying will not fix): fix what `details` names. */
export class RequestError extends ApiError {}

/** The Node is temporarily unable to answer (5xx, cycle_unavailable); it was retried already. */
export class UnavailableError extends ApiError {}

/** Training was stopped through its AbortSignal; `checkpoint` resumes it (see Job.train). */
export class TrainingStoppedError extends FedgridError {
  constructor(checkpoint) {
    super('training was stopped; pass error.checkpoint as `resumeFrom` to continue', { code: 'training_stopped' });
    this.checkpoint = checkpoint;
  }
}

const AUTH_CODES = new Set([
  'auth_token_required', 'auth_token_invalid', 'auth_token_expired', 'auth_algorithm_not_allowed',
  'admin_token_required', 'admin_token_invalid',
]);
const ASSIGNMENT_CODES = new Set([
  'cycle_closed', 'assignment_expired', 'request_key_invalid', 'worker_unknown', 'worker_process_mismatch', 'report_duplicate',
]);

/** Build the right ApiError subclass from a Node error body (or a bare status). */
export function apiErrorFrom(body, status) {
  const fields = body && typeof body === 'object' && body.error && typeof body.error === 'object'
    ? { ...body.error, status: body.error.status ?? status }
    : { code: 'http_error', message: `the Node answered HTTP ${status} without a Fedgrid error body`, status };
  if (AUTH_CODES.has(fields.code)) return new AuthenticationError(fields);
  if (ASSIGNMENT_CODES.has(fields.code)) return new CycleClosedError(fields);
  if (fields.status >= 500 || fields.code === 'cycle_unavailable') return new UnavailableError(fields);
  return new RequestError(fields);
}
