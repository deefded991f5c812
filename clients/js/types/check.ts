// Compiled (not run) by `npm run typecheck`: the README's and docs' usage must type-check.
import {
  AssignmentExpired, Client, CycleClosedError, ERROR_CODES, NetworkUnreachable, ReportRefused, Unavailable, WorkerUnknown, apiErrorFrom, sdkExceptionFor,
  type ErrorCode, type SdkExceptionName, PlanExecutor, TrainingStoppedError, WebSocketTransport, parseSafetensors, writeSafetensors,
  type Assignment, type TrainingCheckpoint, type TrainingResult,
  type AcceptedAnswer, type CycleRequest, type ErrorAnswer, type EventAnswers, type EventRequests, type Rejection, type RejectedAnswer, type ReportRequest,
} from 'fedgrid';

async function device(features: Float32Array, labels: number[]): Promise<number | undefined> {
  const client = new Client({ url: 'http://localhost:5000', authToken: 'token', retries: 3 });
  const job = client.newJob({ modelName: 'digits_mlp', modelVersion: '1.0' });
  job.on('rejected', ({ reason, timeout }) => console.log(reason, timeout?.toFixed(1)));
  job.on('error', (error) => console.log(error.code));
  const speeds = await client.speedTest({ bytes: 1 << 20 });
  const outcome = await job.request({ speeds });
  if (outcome.status !== 'accepted') return undefined;
  const assignment: Assignment = outcome;
  const controller = new AbortController();
  let result: TrainingResult;
  try {
    result = await job.train({ data: features, labels, batchSize: 32, epochs: 1, signal: controller.signal, onBatch: ({ loss }) => loss > 0 });
  } catch (error) {
    if (!(error instanceof TrainingStoppedError)) throw error;
    const saved: TrainingCheckpoint = JSON.parse(JSON.stringify(error.checkpoint));
    result = await job.train({ data: features, labels, resumeFrom: saved });
  }
  try {
    const answer = await job.report(result);
    return answer.cycle + assignment.checkpoint;
  } catch (error) {
    if (error instanceof CycleClosedError) return undefined;
    throw error;
  }
}

async function executor(planBytes: Uint8Array, checkpoint: Uint8Array): Promise<number> {
  const plan = await PlanExecutor.create(planBytes);
  const step = await plan.step(parseSafetensors(checkpoint).tensors, new Float32Array(64), [3]);
  writeSafetensors(step.parameters);
  return step.loss;
}

async function fleetDevice(features: Float32Array, labels: number[], signal: AbortSignal): Promise<number> {
  const job = new Client({ url: 'ws://localhost:5000/ws', timeout: 40 }).newJob({ modelName: 'digits_mlp' });
  const outcome = await job.request({ wait: 20, signal });
  if (outcome.status === 'accepted') console.log(outcome.timeout);
  const reports = await job.participate({ data: features, labels, wait: 10, signal, onReport: ({ cycle }) => console.log(cycle) });
  return reports.length;
}

async function pushedDevice(signal: AbortSignal): Promise<boolean> {
  const transport = new WebSocketTransport('ws://localhost:5000/ws');
  const job = new Client({ url: 'ws://localhost:5000/ws' }).newJob({ modelName: 'digits_mlp' });
  const outcome = await job.request({ wait: 5, notify: true, signal });
  const onPlace = ({ model, version }: { model: string; version: string }) => console.log(model, version);
  transport.on('place-available', onPlace).off('place-available', onPlace);
  return outcome.status === 'rejected' && transport.listenerCount('place-available') === 0;
}

function errorTable(error: unknown): string {
  const status: 409 = ERROR_CODES.cycle_closed.status;
  const exception: 'AssignmentExpired' = ERROR_CODES.assignment_expired.exception;
  const code: ErrorCode = 'report_duplicate';
  const name: SdkExceptionName | 'NetworkUnreachable' | 'FedgridError' = sdkExceptionFor(code, 409);
  if (error instanceof ReportRefused && error.code === 'report_duplicate') return `${error.status} ${status} ${exception}`;
  if (error instanceof AssignmentExpired || error instanceof CycleClosedError) return 'ask again';
  if (error instanceof WorkerUnknown) return 'authenticate';
  if (error instanceof Unavailable || error instanceof NetworkUnreachable) return 'later';
  const made = apiErrorFrom({ error: { code, message: '', status: 409 } }, 409);
  return `${made.code} ${made.status ?? 0} ${name}`;
}

// The wire types (generated from the protocol's JSON Schema): snake_case, as they travel.
function wire(answer: EventAnswers['cycle-request'], assignment: Assignment): string {
  const request: EventRequests['cycle-request'] = { worker_id: 'w1', model: 'digits_mlp', version: null, wait: 20, notify: true };
  const sameRequest: CycleRequest = request;
  const report: ReportRequest = { worker_id: 'w1', request_key: 'k1', diff: new Uint8Array(8), num_samples: 32, metrics: { loss: 0.5 } };
  const checkpoint: EventRequests['retrieve-model']['checkpoint'] = 'latest';
  const bytes: EventAnswers['get-model'] = new Uint8Array(0);
  const failed: ErrorAnswer = { error: { code: 'cycle_closed', message: 'closed', status: 409, details: null } };
  // @ts-expect-error: the wire's field is snake_case (the SDK's Assignment says requestKey)
  const misspelt: AcceptedAnswer = { ...assignment };
  // @ts-expect-error: cycle-request has no field `waitSeconds` (the wire refuses unknown fields)
  const unknownField: CycleRequest = { worker_id: 'w1', model: 'm', waitSeconds: 3 };
  if (answer.status === 'accepted') {
    const accepted: AcceptedAnswer = answer;
    // The SDK's camelCase assignment carries the same values, typed by the wire's fields.
    const key: Assignment['requestKey'] = accepted.request_key;
    const planId: number = accepted.plans[assignment.planName] ?? assignment.planId;
    return `${key} ${planId} ${accepted.report_by} ${accepted.timeout.toFixed(1)}`;
  }
  const rejected: RejectedAnswer = answer;
  const rejection: Rejection = { status: rejected.status, reason: rejected.reason, timeout: rejected.timeout ?? null };
  void misspelt; void unknownField;
  return `${rejection.reason} ${sameRequest.wait ?? 0} ${report.num_samples} ${checkpoint} ${bytes.length} ${failed.error.code}`;
}

void device;
void wire;
void errorTable;
void fleetDevice;
void pushedDevice;
void executor;
