// Type declarations of the `fedgrid` package (the sources are JavaScript with JSDoc).
// Checked by `npm run typecheck` (tsc on types/check.ts) and, for the list of exports, by
// test/types.test.js. protocol.generated.d.ts is generated from the protocol package with
// src/protocol.generated.js: `python -m fedgrid_protocol.export` (`make protocol`). It holds the
// error codes and the wire types: every event's request and answer as they travel (snake_case,
// e.g. CycleRequest, AcceptedAnswer; EventRequests / EventAnswers by event name). The SDK's own
// objects below are camelCase; where they carry a wire field, their type is that field's.

import type {
  AcceptedAnswer, AuthenticateAnswer, CycleRequest, ErrorBody, ErrorCode, ErrorCodeEntry, ErrorCodes, RejectedAnswer,
  ReportAnswer, ReportRequest, SdkCode, SdkCodes, SdkExceptionName,
} from './protocol.generated.js';
export type * from './protocol.generated.js';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
export type TypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

/** One tensor: its safetensors dtype, shape and values (row-major). */
export interface Tensor<T extends TypedArray = TypedArray> {
  dtype: SafetensorsDtype;
  shape: number[];
  data: T;
}
/** Named tensors, in checkpoint order. */
export type TensorMap<T extends TypedArray = TypedArray> = Record<string, Tensor<T>>;

export function parseSafetensors(bytes: ArrayBuffer | ArrayBufferView): { tensors: TensorMap; metadata: Record<string, string> };
export function writeSafetensors(
  tensors: Record<string, TypedArray | { data: TypedArray; shape?: number[]; dtype?: SafetensorsDtype }>,
  metadata?: Record<string, string>,
): Uint8Array;
/** How a diff travels: the model's client_config.diff_encoding (docs/protocol.md, "Compressed updates"). */
export type DiffEncoding = 'float32' | 'float16' | 'int8';
/** A diff's safetensors bytes in `encoding` (float32 when undefined or null): F32, F16, or I8 codes with a float32 NAME.__scale__ each. */
export function encodeDiff(
  diff: Record<string, Float32Array | { data: Float32Array | ArrayLike<number>; shape?: number[] }>,
  encoding?: DiffEncoding | null,
): Uint8Array;

export interface ManifestEntry { name: string; role: string; dtype: string; shape: Array<number | 'batch'>; parameter?: string; metric?: string }
export interface PlanManifest {
  format: string;
  format_version: number;
  name: string;
  content_hash: string;
  parameters: Array<{ name: string; dtype: string; shape: number[] }>;
  optimizer_state?: Array<{ name: string; parameter: string; dtype: string; shape: number[]; init: string }>;
  defaults: { batch_size?: number; epochs?: number; max_updates?: number | null; learning_rate: number; shuffle?: boolean };
  train: { inputs: ManifestEntry[]; outputs: ManifestEntry[] };
  [key: string]: unknown;
}

/** A plan file: the manifest and the ONNX graphs. */
export class Plan {
  constructor(manifest: PlanManifest, graphs: Record<string, Uint8Array>);
  manifest: PlanManifest;
  graphs: Record<string, Uint8Array>;
  readonly name: string;
  readonly contentHash: string;
  readonly parameters: Array<{ name: string; dtype: string; shape: number[] }>;
  static fromBytes(bytes: ArrayBuffer | ArrayBufferView): Plan;
  computeContentHash(): Promise<string>;
  /** Throws FormatError unless the graphs hash to the manifest's content_hash. */
  verify(expectedHash?: string): Promise<string>;
}

export interface StepResult {
  loss: number;
  metrics: Record<string, number>;
  parameters: TensorMap<Float32Array>;
  optimizerState: TensorMap<Float32Array>;
}

export type Features = Float32Array | ArrayLike<number>[] | number[][] | number[];
export type Labels = ArrayLike<number> | BigInt64Array;

export class PlanExecutor {
  /** `packTensors` (default: true for plans of up to 16,384 parameter values) runs the training
   *  graph with parameters, state and results packed into a few flat tensors: the same results,
   *  fewer tensors through the runtime per step (docs/sdk-js.md, "Performance").
   *  `loopSteps` (default true) lets stepMany() and trainLocally() take several steps per
   *  session.run on the CPU's providers (an ONNX Loop around the training graph): the same results. */
  static create(plan: Plan | ArrayBuffer | ArrayBufferView, options?: { executionProviders?: string[]; verify?: boolean; packTensors?: boolean; loopSteps?: boolean }): Promise<PlanExecutor>;
  readonly plan: Plan;
  readonly parameterNames: string[];
  readonly featureShape: number[];
  readonly featureSize: number;
  readonly defaultLearningRate: number;
  readonly usesOptimizerState: boolean;
  readonly usesGlobalParameters: boolean;
  initialOptimizerState(): TensorMap<Float32Array>;
  step(
    parameters: TensorMap,
    features: Features,
    labels: Labels,
    options?: { learningRate?: number; optimizerState?: TensorMap; globalParameters?: TensorMap },
  ): Promise<StepResult>;
  /** `count` updates on `count` consecutive equal batches (`features` holds count x batch
   *  examples): bit for bit `count` step() calls, in one session.run where stepsTogether(). */
  stepMany(
    parameters: TensorMap,
    features: Features,
    labels: Labels,
    count: number,
    options?: { learningRate?: number; optimizerState?: TensorMap; globalParameters?: TensorMap },
  ): Promise<{ losses: number[]; metrics: Record<string, number>[]; parameters: TensorMap<Float32Array>; optimizerState: TensorMap<Float32Array> }>;
  /** Whether stepMany() runs its steps in one session.run (the plan suits the Loop form and the
   *  providers are the CPU's). */
  stepsTogether(): Promise<boolean>;
  /** Whether the plan has a forward graph (predict, evaluateLocally). */
  readonly hasForwardGraph: boolean;
  /** The forward graph's raw output (logits for classification) for a batch; throws
   *  `plan_not_evaluable` when the plan has no forward graph. */
  predict(parameters: TensorMap, features: Features): Promise<{ data: Float32Array; dims: number[] }>;
  release(): Promise<void>;
}

/** A checkpoint's score on labelled examples: what an evaluation assignment reports. */
export interface EvaluationResult {
  /** `accuracy` for classification, `loss` (the plan's loss): the Node's held-out definitions. */
  metrics: { accuracy?: number; loss?: number };
  /** Examples scored: the report's weight in the Node's federated average. */
  numSamples: number;
}

export function evaluateLocally(
  executor: PlanExecutor,
  parameters: TensorMap,
  options: { features: Features; labels: Labels },
): Promise<EvaluationResult>;

export interface BatchReport { epoch: number; update: number; batchSize: number; loss: number; metrics: Record<string, number> }

export interface TrainOptions {
  /** Examples: flat (n x feature size) or one array per example. */
  data: Features;
  /** One class index per example. */
  labels: Labels;
  batchSize?: number;
  epochs?: number;
  maxUpdates?: number | null;
  learningRate?: number;
  shuffle?: boolean;
  seed?: number;
  /** Full batches per session.run (default 8) where the executor can take several at once:
   *  the same results, less time in the runtime's binding. 1: one step per run. */
  stepsPerRun?: number;
  /** Runs after every update; return false to end the round early. */
  onBatch?: (report: BatchReport) => unknown;
  /** Aborting throws TrainingStoppedError with a resumable checkpoint. */
  signal?: AbortSignal;
  /** A TrainingStoppedError's checkpoint: continue that run. */
  resumeFrom?: TrainingCheckpoint;
}

export interface TrainingResult {
  /** start - trained, in the checkpoint's names, shapes and order. */
  diff: TensorMap<Float32Array>;
  /** Distinct examples trained on: the FedAvg weight. */
  numSamples: number;
  /** `loss` and the plan's metrics (e.g. `accuracy`), sample-weighted means over the round. */
  metrics: Record<string, number>;
  parameters: TensorMap<Float32Array>;
  updates: number;
  losses: number[];
}

/** A paused local round: JSON-able (JSON.stringify, localStorage, IndexedDB). */
export interface TrainingCheckpoint {
  format: 'fedgrid.training-state';
  version: 1;
  planHash: string;
  updates: number;
  losses: number[];
  assignment?: Omit<Assignment, 'status' | 'parameters' | 'plan'>;
  [key: string]: unknown;
}

export function trainLocally(
  executor: PlanExecutor,
  parameters: TensorMap,
  options: Omit<TrainOptions, 'data'> & { features: Features },
): Promise<TrainingResult>;

/** Call before the first plan runs. `numThreads` defaults to defaultThreadCount(). */
export function configureRuntime(options?: { wasmPaths?: string; numThreads?: number; webgpu?: boolean }): void;
/** min(4, ceil(navigator.hardwareConcurrency / 2)) on a cross-origin isolated page (SharedArrayBuffer), else 1. */
export function defaultThreadCount(): number;
export interface RuntimeInfo {
  name: 'onnxruntime-node' | 'onnxruntime-web';
  executionProviders: string[];
  crossOriginIsolated: boolean;
  /** Configured threads; once the WASM has started, the ones it runs (1 where threads were refused). */
  threads: number;
}
export function runtimeInfo(): RuntimeInfo;
/** The ONNX Runtime plans run on: native 'onnxruntime-node' under Node.js when installed, else 'onnxruntime-web'. */
export function runtimeName(): 'onnxruntime-node' | 'onnxruntime-web';

/** The link's speeds, sent with cycle-request (its `ping`, `download`, `upload`). */
export interface Speeds {
  /** Milliseconds. */
  ping: NonNullable<CycleRequest['ping']>;
  /** Mbit/s. */
  download: NonNullable<CycleRequest['download']>;
  /** Mbit/s. */
  upload: NonNullable<CycleRequest['upload']>;
}

export interface ClientOptions {
  /** http(s)://host:port (HTTP) or ws(s)://host:port/ws (WebSocket). */
  url: string;
  /** Device token, for models hosted with device authentication. */
  authToken?: string;
  transport?: 'http' | 'websocket';
  /** Extra attempts on network failures and 429/502/503/504 (default 5). */
  retries?: number;
  /** Seconds before the first retry, doubling (default 0.5); Retry-After wins. */
  backoff?: number;
  /** Seconds one request may take (default 60). */
  timeout?: number;
  executionProviders?: string[];
  fetch?: typeof fetch;
  sleep?: (seconds: number) => Promise<void>;
}

export interface Transport {
  readonly kind: 'http' | 'websocket';
  readonly url: string;
  /** Seconds one request may take. */
  readonly timeout: number;
  call(event: string, fields?: Record<string, unknown>, options?: { blobs?: Record<string, Uint8Array>; adminToken?: string; signal?: AbortSignal }): Promise<any>;
  download(event: string, fields?: Record<string, unknown>, options?: { adminToken?: string }): Promise<{ bytes: Uint8Array; headers: Record<string, string> }>;
  getJson(path: string): Promise<any>;
  speedTest(options?: { bytes?: number }): Promise<Speeds>;
  close(): void;
}
export class HttpTransport implements Transport {
  constructor(url: string, options?: Omit<ClientOptions, 'url' | 'authToken' | 'transport' | 'executionProviders'>);
  readonly kind: 'http';
  readonly url: string;
  readonly timeout: number;
  getJson(path: string): Promise<any>;
  call(event: string, fields?: Record<string, unknown>, options?: { blobs?: Record<string, Uint8Array>; adminToken?: string; signal?: AbortSignal }): Promise<any>;
  download(event: string, fields?: Record<string, unknown>, options?: { adminToken?: string }): Promise<{ bytes: Uint8Array; headers: Record<string, string> }>;
  speedTest(options?: { bytes?: number }): Promise<Speeds>;
  close(): void;
}
/** Frames a Node sends a socket unasked (`request_id: null`), by event name. */
export interface PushEvents {
  /** After a cycle-request with `notify: true` was turned away: a place may be open now; ask again. */
  'place-available': { model: string; version: string };
}
export class WebSocketTransport implements Transport {
  constructor(url: string, options?: Omit<ClientOptions, 'url' | 'authToken' | 'transport' | 'executionProviders'>);
  readonly kind: 'websocket';
  readonly url: string;
  readonly timeout: number;
  /** Listen for the Node's pushes; they never answer a request. */
  on<E extends keyof PushEvents>(event: E, handler: (payload: PushEvents[E]) => unknown): this;
  once<E extends keyof PushEvents>(event: E, handler: (payload: PushEvents[E]) => unknown): this;
  off<E extends keyof PushEvents>(event: E, handler: (payload: PushEvents[E]) => unknown): this;
  listenerCount(event: keyof PushEvents): number;
  getJson(path: string): Promise<any>;
  call(event: string, fields?: Record<string, unknown>, options?: { blobs?: Record<string, Uint8Array>; adminToken?: string; signal?: AbortSignal }): Promise<any>;
  download(event: string, fields?: Record<string, unknown>, options?: { adminToken?: string }): Promise<{ bytes: Uint8Array; headers: Record<string, string> }>;
  speedTest(options?: { bytes?: number }): Promise<Speeds>;
  close(): void;
}

export class Client {
  constructor(options: ClientOptions);
  readonly url: string;
  readonly authToken?: string;
  /** The transport to `url` (a Node, or a Network). */
  readonly transport: Transport;
  /** What answers at `url`, known after the first request. */
  readonly kind: 'node' | 'network' | null;
  /** The transport to the Node serving a model: this client's own, or the Network's route. */
  transportFor(modelName: string, modelVersion?: string): Promise<Transport>;
  newJob(options: { modelName: string; modelVersion?: string }): Job;
  /** ping in ms, download and upload in Mbit/s. */
  speedTest(options?: { bytes?: number }): Promise<Speeds>;
  close(): void;
}

/** A cycle-request's AcceptedAnswer, camelCase (`request_key` is `requestKey`...), with the
 *  training plan chosen from its `plans` and the checkpoint downloaded. */
export interface Assignment {
  status: AcceptedAnswer['status'];
  modelName: AcceptedAnswer['model'];
  modelVersion: AcceptedAnswer['version'];
  workerId: AuthenticateAnswer['worker_id'];
  requestKey: AcceptedAnswer['request_key'];
  cycle: AcceptedAnswer['cycle'];
  checkpoint: AcceptedAnswer['checkpoint'];
  modelId: AcceptedAnswer['model_id'];
  /** The key of `plans` the SDK trains with. */
  planName: string;
  planId: AcceptedAnswer['plans'][string];
  clientConfig: AcceptedAnswer['client_config'];
  /** ISO 8601 UTC. */
  deadline: AcceptedAnswer['deadline'];
  /** Seconds left to report when accepted: the assignment's lease, never past the deadline. */
  timeout: AcceptedAnswer['timeout'];
  /** ISO 8601 UTC: when the lease ends (Nodes without leases send none). */
  reportBy?: AcceptedAnswer['report_by'];
  /** The SecAgg+ parameters when the cycle aggregates securely (report() then runs the rounds
   *  and the diff never leaves the device unmasked; see docs/secure-aggregation.md), else null. */
  secureAggregation: AcceptedAnswer['secure_aggregation'];
  /** The cycle's checkpoint (null after resuming elsewhere: the checkpoint holds the start). */
  parameters: TensorMap | null;
  plan: Plan;
  /** 'train', or 'evaluate': score the checkpoint with job.evaluate() and report metrics only. */
  task: NonNullable<AcceptedAnswer['task']>;
}
/** A cycle-request's RejectedAnswer: why, and the seconds until asking again is worthwhile. */
export interface Rejection {
  status: RejectedAnswer['status'];
  reason: RejectedAnswer['reason'];
  timeout: Exclude<RejectedAnswer['timeout'], undefined>;
}
export interface RequestFailure { status: 'error'; error: FedgridError }

export interface ParticipationReport {
  cycle: ReportAnswer['cycle'];
  checkpoint: AcceptedAnswer['checkpoint'];
  task: NonNullable<AcceptedAnswer['task']>;
  numSamples: ReportRequest['num_samples'];
  metrics: NonNullable<ReportRequest['metrics']>;
}

export interface JobEvents {
  accepted: Assignment;
  rejected: Rejection;
  error: FedgridError;
}

export class Job {
  readonly client: Client;
  readonly modelName: string;
  modelVersion?: string;
  workerId: string | null;
  assignment: Assignment | null;
  /** The transport to this model's Node (routed by the Network when the client's URL is one). */
  readonly transport: Transport;
  /** ping (ms), download/upload (Mbit/s) measured for a speed-gated model. */
  speeds: Speeds | null;
  /** True once the Node answered `training_finished` (its rejection's `timeout` is then an hour). */
  finished: boolean;
  on<E extends keyof JobEvents>(event: E, handler: (payload: JobEvents[E]) => unknown): this;
  once<E extends keyof JobEvents>(event: E, handler: (payload: JobEvents[E]) => unknown): this;
  off<E extends keyof JobEvents>(event: E, handler: (payload: JobEvents[E]) => unknown): this;
  authenticate(): Promise<string>;
  /**
   * Resolves after the matching event's handlers ran; rejects on errors only without an 'error'
   * handler, and with the signal's reason when `signal` aborts. `wait` (seconds, at most 30 and
   * half the client's timeout): the Node holds the request until a place frees or the next cycle
   * opens. `notify` (WebSocket only): after a rejection for want of a free place, the Node pushes
   * `place-available` to `job.transport` when one may be open.
   */
  request(options?: {
    speeds?: Partial<Speeds>;
    wait?: NonNullable<CycleRequest['wait']>;
    notify?: NonNullable<CycleRequest['notify']>;
    signal?: AbortSignal;
  }): Promise<Assignment | Rejection | RequestFailure>;
  train(options: TrainOptions): Promise<TrainingResult>;
  /** Score the assignment's checkpoint on local data without training (an evaluation
   *  assignment's work); report() the result. */
  evaluate(options: { data: Features; labels: Labels }): Promise<EvaluationResult>;
  /** Request (long-polling `wait` s, default 25), train, report, cycle after cycle, until the model finishes.
   *  A rejection's `timeout` is waited out, or over WebSocket until the Node pushes `place-available`. */
  participate(options: Omit<TrainOptions, 'resumeFrom'> & {
    cycles?: number;
    wait?: NonNullable<CycleRequest['wait']>;
    onReport?: (report: ParticipationReport, result: TrainingResult | EvaluationResult) => unknown;
    /** Examples an evaluation assignment is scored on (default: `data` / `labels`). */
    evaluationData?: Features;
    evaluationLabels?: Labels;
  }): Promise<ParticipationReport[]>;
  /** Resolves to the Node's ReportAnswer ({status: 'success', cycle}) once the report is stored;
   *  `duplicate: true` when a retry found its first attempt stored; `secure: true` once a secure
   *  cycle's rounds have this device's unmask shares. */
  report(
    result: Pick<TrainingResult, 'diff' | 'numSamples'> & { metrics?: NonNullable<ReportRequest['metrics']> }
      | { diff: ReportRequest['diff']; numSamples: ReportRequest['num_samples']; metrics?: NonNullable<ReportRequest['metrics']> }
      | EvaluationResult,
  ): Promise<ReportAnswer & { duplicate?: true; secure?: true }>;
}

export function saveTrainingCheckpoint(key: string, checkpoint: TrainingCheckpoint): Promise<unknown>;
export function loadTrainingCheckpoint(key: string): Promise<TrainingCheckpoint | undefined>;
export function deleteTrainingCheckpoint(key: string): Promise<unknown>;

/** A server's error code, an SDK-made one, or another (a newer server's; the SDK's own). */
export type AnyErrorCode = ErrorCode | SdkCode | (string & {});

export class FedgridError extends Error {
  constructor(message: string, options?: { code?: AnyErrorCode; cause?: unknown; status?: number; details?: NonNullable<ErrorBody['details']> });
  /** Stable, machine-readable: the server's error code, or the SDK's own. */
  code: AnyErrorCode;
  /** The HTTP status, where an answer came (ApiErrors; `unexpected_answer`). */
  status?: number;
  /** The error answer's `details` (ErrorAnswer), e.g. the refused fields. */
  details?: NonNullable<ErrorBody['details']>;
}
export class FormatError extends FedgridError {}
/** network_unreachable: nothing answered after the retries. */
export class NetworkUnreachable extends FedgridError {}
/** An error answer from a Fedgrid server: the class the protocol's table names for its code. */
export class ApiError extends FedgridError {
  constructor(fields?: { code?: AnyErrorCode; message?: string; status?: number; details?: Record<string, unknown> });
  status: number;
  details?: Record<string, unknown>;
  attempts?: number;
}
/** auth_token_*: get a valid device token. */
export class AuthenticationError extends ApiError {}
/** admin_token_*, admin_login_required, registration_secret_*, node_token_*: pass the admin token. */
export class AdminAuthError extends ApiError {}
/** worker_unknown, worker_process_mismatch: authenticate again for this model. */
export class WorkerUnknown extends ApiError {}
/** process_unknown, model_not_found: check the name, or host it. */
export class ProcessUnknown extends ApiError {}
/** cycle_closed, assignment_expired, request_key_invalid: drop the work, request a new place. */
export class AssignmentExpired extends ApiError {}
/** diff_*, num_samples_invalid, metrics_invalid, report_duplicate (the first report stands). */
export class ReportRefused extends ApiError {}
/** Transient (cycle_unavailable, auth_endpoint_unavailable, internal_error, unknown 5xx): try later. */
export class Unavailable extends ApiError {}
/** The request itself is wrong (any other code, unknown 4xx): fix what `details` names. */
export class RequestInvalid extends ApiError {}
/** @deprecated The same class as AssignmentExpired. */
export const CycleClosedError: typeof AssignmentExpired;
export type CycleClosedError = AssignmentExpired;
/** @deprecated The same class as NetworkUnreachable. */
export const NetworkError: typeof NetworkUnreachable;
export type NetworkError = NetworkUnreachable;
/** @deprecated The same class as Unavailable. */
export const UnavailableError: typeof Unavailable;
export type UnavailableError = Unavailable;
/** @deprecated The same class as RequestInvalid. */
export const RequestError: typeof RequestInvalid;
export type RequestError = RequestInvalid;
export class TrainingStoppedError extends FedgridError {
  constructor(checkpoint: TrainingCheckpoint);
  checkpoint: TrainingCheckpoint;
}
/** The protocol's error table (generated from the protocol package). */
export const ERROR_CODES: ErrorCodes;
export const SDK_CODES: SdkCodes;
export const SDK_EXCEPTIONS: readonly SdkExceptionName[];
export const SDK_EXCEPTION_ADVICE: { readonly [name in SdkExceptionName]: string };
/** The class for each name the table uses. */
export const ERROR_CLASSES: {
  readonly FedgridError: typeof FedgridError;
  readonly NetworkUnreachable: typeof NetworkUnreachable;
  readonly AuthenticationError: typeof AuthenticationError;
  readonly AdminAuthError: typeof AdminAuthError;
  readonly WorkerUnknown: typeof WorkerUnknown;
  readonly ProcessUnknown: typeof ProcessUnknown;
  readonly AssignmentExpired: typeof AssignmentExpired;
  readonly ReportRefused: typeof ReportRefused;
  readonly Unavailable: typeof Unavailable;
  readonly RequestInvalid: typeof RequestInvalid;
};
/** The class name the table gives a code; unknown codes by status (5xx Unavailable, else RequestInvalid). */
export function sdkExceptionFor(code: string, status?: number): SdkExceptionName | SdkCodes[SdkCode];
/** The error for a server's answer: an ApiError subclass, or a FedgridError (`unexpected_answer`). */
export function apiErrorFrom(body: unknown, status: number): ApiError | FedgridError;
