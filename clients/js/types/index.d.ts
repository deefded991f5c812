// Type declarations of the `fedgrid` package (the sources are JavaScript with JSDoc).
// Checked by `npm run typecheck` (tsc on types/check.ts) and, for the list of exports, by
// test/types.test.js.

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
export type TypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

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
  static create(plan: Plan | ArrayBuffer | ArrayBufferView, options?: { executionProviders?: string[]; verify?: boolean }): Promise<PlanExecutor>;
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
  release(): Promise<void>;
}

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

export function configureRuntime(options?: { wasmPaths?: string; numThreads?: number; webgpu?: boolean }): void;

export interface Speeds { ping: number; download: number; upload: number }

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

export interface Assignment {
  status: 'accepted';
  modelName: string;
  modelVersion: string;
  workerId: string;
  requestKey: string;
  cycle: number;
  checkpoint: number;
  modelId: number;
  planName: string;
  planId: number;
  clientConfig: Record<string, unknown>;
  /** ISO 8601 UTC. */
  deadline: string;
  /** Seconds left to report when accepted: the assignment's lease, never past the deadline. */
  timeout: number;
  /** ISO 8601 UTC: when the lease ends (Nodes without leases send none). */
  reportBy?: string;
  /** The cycle's checkpoint (null after resuming elsewhere: the checkpoint holds the start). */
  parameters: TensorMap | null;
  plan: Plan;
}
export interface Rejection { status: 'rejected'; reason: string; timeout: number | null }
export interface RequestFailure { status: 'error'; error: FedgridError }

export interface ParticipationReport { cycle: number; checkpoint: number; numSamples: number; metrics: Record<string, number> }

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
  request(options?: { speeds?: Partial<Speeds>; wait?: number; notify?: boolean; signal?: AbortSignal }): Promise<Assignment | Rejection | RequestFailure>;
  train(options: TrainOptions): Promise<TrainingResult>;
  /** Request (long-polling `wait` s, default 25), train, report, cycle after cycle, until the model finishes.
   *  A rejection's `timeout` is waited out, or over WebSocket until the Node pushes `place-available`. */
  participate(options: Omit<TrainOptions, 'resumeFrom'> & {
    cycles?: number;
    wait?: number;
    onReport?: (report: ParticipationReport, result: TrainingResult) => unknown;
  }): Promise<ParticipationReport[]>;
  /** Resolves to the Node's {status: 'success', cycle} once the report is stored. */
  report(result: Pick<TrainingResult, 'diff' | 'numSamples'> & { metrics?: Record<string, number> } | { diff: Uint8Array; numSamples: number; metrics?: Record<string, number> }): Promise<{ status: 'success'; cycle: number; duplicate?: true }>;
}

export function saveTrainingCheckpoint(key: string, checkpoint: TrainingCheckpoint): Promise<unknown>;
export function loadTrainingCheckpoint(key: string): Promise<TrainingCheckpoint | undefined>;
export function deleteTrainingCheckpoint(key: string): Promise<unknown>;

export class FedgridError extends Error {
  constructor(message: string, options?: { code?: string; cause?: unknown });
  /** Stable, machine-readable: the Node's error code, or the SDK's own. */
  code: string;
}
export class FormatError extends FedgridError {}
export class NetworkError extends FedgridError {}
export class ApiError extends FedgridError {
  constructor(fields?: { code?: string; message?: string; status?: number; details?: Record<string, unknown> });
  status: number;
  details?: Record<string, unknown>;
  attempts?: number;
}
export class AuthenticationError extends ApiError {}
/** cycle_closed, assignment_expired, request_key_invalid, worker_*, report_duplicate: request a new place. */
export class CycleClosedError extends ApiError {}
export class RequestError extends ApiError {}
export class UnavailableError extends ApiError {}
export class TrainingStoppedError extends FedgridError {
  constructor(checkpoint: TrainingCheckpoint);
  checkpoint: TrainingCheckpoint;
}
export function apiErrorFrom(body: unknown, status: number): ApiError;
