// Typed errors. Every error a Fedgrid server sends is {"error": {code, message, status, details}};
// apiErrorFrom raises it as the class the protocol's error table names for its code (one class per
// SDK_EXCEPTIONS name, the same class the Python SDK raises for that code), so callers can
// `instanceof` the cases they handle (authenticate again, ask for a new place, fix the request)
// and read `.code` for the rest. The table is generated from the protocol package into
// protocol.generated.js (`python -m fedgrid_protocol.export`, committed).

import { ERROR_CODES, SDK_CODES, SDK_EXCEPTIONS, SDK_EXCEPTION_ADVICE } from './protocol.generated.js';

export { ERROR_CODES, SDK_CODES, SDK_EXCEPTIONS, SDK_EXCEPTION_ADVICE };

/** Base class of everything the SDK throws on purpose. `code` is stable: a server's error code or
 *  the SDK's own (network_unreachable, unexpected_answer, format_invalid, ...). */
export class FedgridError extends Error {
  constructor(message, { code = 'fedgrid_error', cause, status, details } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.code = code;
    if (status !== undefined) this.status = status;
    if (details !== undefined) this.details = details;
  }
}

/** Bytes that are not a valid safetensors file or plan file. */
export class FormatError extends FedgridError {
  constructor(message, options = {}) {
    super(message, { code: 'format_invalid', ...options });
  }
}

/** network_unreachable: the Node (or Network) could not be reached (connection refused or reset,
 *  DNS, timeout) after all retries. Check the URL and that the server runs; try again later. */
export class NetworkUnreachable extends FedgridError {
  constructor(message, options = {}) {
    super(message, { code: 'network_unreachable', ...options });
  }
}

/** An error answer from a Fedgrid server. `code`, `status` and `details` are the server's. */
export class ApiError extends FedgridError {
  constructor({ code = 'http_error', message = '', status = 0, details = undefined } = {}) {
    super(message || `the server answered ${status} (${code})`, { code });
    this.status = status;
    this.details = details;
  }
}

/** The device token was refused (auth_token_*): get a valid device token. */
export class AuthenticationError extends ApiError {}

/** An admin route refused the admin token (admin_token_*, admin_login_required; a Network's
 *  registration_secret_*, node_token_*): pass the server's admin token. */
export class AdminAuthError extends ApiError {}

/** The Node does not know this worker id (worker_unknown) or issued it for another model
 *  (worker_process_mismatch): authenticate again for this model (job.request() does so once). */
export class WorkerUnknown extends ApiError {}

/** No hosted model by that name and version (process_unknown; a Network's model_not_found):
 *  check the name, or host it. */
export class ProcessUnknown extends ApiError {}

/** The assignment is no longer valid (assignment_expired: its lease ran out; cycle_closed;
 *  request_key_invalid): drop its work and call job.request() again for a new place. */
export class AssignmentExpired extends ApiError {}

/** The report was refused; `code` says why (diff_*, num_samples_invalid, metrics_invalid: fix the
 *  report). report_duplicate: the first report of this assignment stands (it was counted);
 *  job.report() takes that as success after a retry of its own. */
export class ReportRefused extends ApiError {}

/** Transient (cycle_unavailable, auth_endpoint_unavailable, internal_error, an unknown 5xx),
 *  already retried: try again later. */
export class Unavailable extends ApiError {}

/** The request itself is wrong (a field, an id, a plan or config refused; an unknown 4xx):
 *  retrying will not help, fix what `details` names. */
export class RequestInvalid extends ApiError {}

// The names before the protocol's table decided them, kept as aliases (the same class, so
// `instanceof` keeps working): only the codes they cover changed. CycleClosedError no longer covers
// worker_* (WorkerUnknown) nor report_duplicate (ReportRefused); RequestError no longer covers
// process_unknown (ProcessUnknown) nor the report refusals (ReportRefused); AuthenticationError no
// longer covers admin_token_* (AdminAuthError) and NetworkError's code is network_unreachable.
/** @deprecated Use AssignmentExpired (the same class). */
export const CycleClosedError = AssignmentExpired;
/** @deprecated Use NetworkUnreachable (the same class). */
export const NetworkError = NetworkUnreachable;
/** @deprecated Use Unavailable (the same class). */
export const UnavailableError = Unavailable;
/** @deprecated Use RequestInvalid (the same class). */
export const RequestError = RequestInvalid;

/** Training was stopped through its AbortSignal; `checkpoint` resumes it (see Job.train). */
export class TrainingStoppedError extends FedgridError {
  constructor(checkpoint) {
    super('training was stopped; pass error.checkpoint as `resumeFrom` to continue', { code: 'training_stopped' });
    this.checkpoint = checkpoint;
  }
}

/** The class for each name the protocol's table uses: its SDK exceptions and the SDK codes'. */
export const ERROR_CLASSES = Object.freeze({
  FedgridError, NetworkUnreachable, AuthenticationError, AdminAuthError, WorkerUnknown, ProcessUnknown, AssignmentExpired, ReportRefused, Unavailable, RequestInvalid,
});
for (const name of [...SDK_EXCEPTIONS, ...Object.values(SDK_CODES)]) {
  if (!ERROR_CLASSES[name]) throw new Error(`errors.js has no class for the protocol's ${name}`);
}

/** The name of the class the table gives a code; a code it does not know (from a newer server)
 *  by its status: 5xx Unavailable, anything else RequestInvalid. */
export function sdkExceptionFor(code, status) {
  // Any HTTP-level refusal: its real status decides (as in fedgrid_protocol.errors).
  if (code === 'http_error') return status >= 500 ? 'Unavailable' : 'RequestInvalid';
  if (Object.hasOwn(ERROR_CODES, code)) return ERROR_CODES[code].exception;
  if (Object.hasOwn(SDK_CODES, code)) return SDK_CODES[code];
  return status >= 500 ? 'Unavailable' : 'RequestInvalid';
}

/**
 * The error for a server's answer (its JSON body, or null when it was not JSON, and the HTTP
 * status): an instance of the class the table names for the body's code. A body that is not a
 * Fedgrid error answer gives a FedgridError with code 'unexpected_answer' (and `status`).
 */
export function apiErrorFrom(body, status) {
  const error = body && typeof body === 'object' ? body.error : undefined;
  if (!error || typeof error !== 'object' || typeof error.code !== 'string') {
    return new FedgridError(`the server answered HTTP ${status} without a Fedgrid error body; check that the URL is a Fedgrid server's`, { code: 'unexpected_answer', status });
  }
  const fields = { ...error, status: Number.isInteger(error.status) ? error.status : status };
  const Class = ERROR_CLASSES[sdkExceptionFor(fields.code, fields.status)];
  if (Class.prototype instanceof ApiError) return new Class(fields);
  return new Class(fields.message || `the server answered ${fields.status} (${fields.code})`, { code: fields.code, status: fields.status, details: fields.details });
}
