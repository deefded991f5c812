// Job: one hosted model this device trains. request() asks for a place in the current cycle and
// downloads the checkpoint and plan when accepted; train() runs the plan on local data; report()
// sends the diff. An assignment whose `task` is 'evaluate' (federated evaluation, scheduled by the
// Node's server_config.evaluation_every) is scored instead with evaluate() and reported without a
// diff. Events (syft.js style): 'accepted' (the assignment), 'rejected' ({reason,
// timeout}), 'error' (the FedgridError).

import { AssignmentExpired, FedgridError, ReportRefused, TrainingStoppedError, WorkerUnknown } from './errors.js';
import { Emitter } from './events.js';
import { encodeDiff } from './diff_encoding.js';
import { evaluateLocally, PlanExecutor, trainLocally } from './executor.js';
import { MAX_WAIT_SECONDS } from './protocol.generated.js';
import { parseSafetensors } from './safetensors.js';
import { reportSecurely } from './secagg.js';

export const TRAINING_PLAN_NAME = 'training_plan'; // PyGrid's name for the plan devices run
/** Seconds participate() lets the Node hold each cycle-request (long-poll) by default. */
const PARTICIPATE_WAIT = 25;
/** The `timeout` of a final rejection (`training_finished`, `training_stopped`), which the Node sends without one: a loop that
 *  waits `timeout` before asking again then waits an hour instead of asking in a tight loop
 *  (`timeout: null` made `setTimeout(ask, timeout * 1000)` fire at once, hundreds of times a
 *  second). Nothing changes in that hour: a finished model trains no more. */
export const FINISHED_TIMEOUT = 3600;

/** Rejections that end training for good: the model ran its cycles, or its researcher stopped it.
 * (A paused model, `process_paused`, is a rejection like any other: ask again after `timeout`.) */
const FINAL_REASONS = new Set(['training_finished', 'training_stopped']);
/** client_config keys the Node's researcher may set -> train() option names. */
const CLIENT_CONFIG_OPTIONS = { batch_size: 'batchSize', epochs: 'epochs', max_updates: 'maxUpdates', lr: 'learningRate', learning_rate: 'learningRate', shuffle: 'shuffle' };

/** The metrics the Node takes: finite numbers, without the plan's internal counters. */
function reportableMetrics(metrics) {
  const kept = Object.fromEntries(Object.entries(metrics ?? {}).filter(([k, v]) => k !== 'num_samples' && typeof v === 'number' && Number.isFinite(v)));
  return Object.keys(kept).length ? kept : undefined;
}

export class Job extends Emitter {
  constructor(client, { modelName, modelVersion }) {
    super();
    this.client = client;
    this.modelName = modelName;
    this.modelVersion = modelVersion;
    this.workerId = null;
    this.requiresSpeedTest = false;
    this.speeds = null;
    /** The current assignment (after an accepted request()), or null. */
    this.assignment = null;
    this.executors = new Map(); // plan content hash -> PlanExecutor (a hosted plan never changes)
    // plan id -> Promise of its PlanExecutor: one download per plan and job, not one per cycle
    // and another in train(). A plan id names one hosted plan on the job's Node for good.
    this.planDownloads = new Map();
    /** True once the Node answered `training_finished` or `training_stopped`: the model trains no more. */
    this.finished = false;
    this.nodeTransport = null;
  }

  /** The transport to this model's Node (after the first call; a Network routes it once). */
  get transport() { return this.nodeTransport ?? this.client.transport; }

  async resolveTransport() {
    this.nodeTransport ??= await this.client.transportFor(this.modelName, this.modelVersion);
    return this.nodeTransport;
  }

  /** Get a worker id bound to this model. request() calls it when needed. */
  async authenticate() {
    await this.resolveTransport();
    const answer = await this.transport.call('authenticate', {
      model_name: this.modelName,
      model_version: this.modelVersion,
      auth_token: this.client.authToken,
    });
    this.workerId = answer.worker_id;
    this.modelVersion = answer.version ?? this.modelVersion;
    this.requiresSpeedTest = Boolean(answer.requires_speed_test);
    return this.workerId;
  }

  /**
   * Ask for a place in the current cycle. Resolves to the assignment
   * ({status: 'accepted', cycle, checkpoint, clientConfig, deadline, timeout (seconds left to
   * report), reportBy, parameters, plan}) or to {status: 'rejected', reason, timeout} (seconds to wait
   * before asking again; reason 'training_finished' or 'training_stopped' means never), after the
   * matching event's handlers ran. With `wait` (seconds, at most 30 and half the client's timeout) a Node holds
   * the request while no place is free (cycle full, already reported to, cooling down, no cycle
   * open) and accepts as soon as one frees.
   * Errors go to the 'error' handlers when there are any (the promise then resolves to
   * {status: 'error', error}); without one the promise rejects, like Node's EventEmitter.
   * Aborting `signal` rejects with its reason, emitted to no handler (it is the caller's doing).
   * With `notify` over WebSocket, a Node that rejects the request because no place is free (cycle
   * full, already reported, cooling down) later pushes `place-available` to the transport
   * (`job.transport.on('place-available', ({model, version}) => ...)`) when one may be open;
   * over HTTP `notify` is not sent.
   * @param {{speeds?: {ping?: number, download?: number, upload?: number}, wait?: number, notify?: boolean, signal?: AbortSignal}} [options]
   */
  async request({ speeds, wait, notify, signal } = {}) {
    let outcome;
    try {
      outcome = await this.requestCycle({ speeds, wait, notify, signal });
    } catch (error) {
      if (signal?.aborted || this.listenerCount('error') === 0) throw error;
      await this.emit('error', error);
      return { status: 'error', error };
    }
    await this.emit(outcome.status, outcome);
    return outcome;
  }

  async requestCycle({ speeds, wait, notify, signal } = {}) {
    if (!this.workerId) await this.authenticate();
    if (!speeds && this.requiresSpeedTest) {
      this.speeds ??= await this.transport.speedTest(); // the Node's link, not the Network's
      speeds = this.speeds;
    }
    // A hold past half the timeout could outlast the request itself, which would then be retried.
    const held = wait === undefined ? undefined : Math.max(0, Math.min(wait, MAX_WAIT_SECONDS, this.transport.timeout / 2));
    // Pushes exist only on a socket (api.md: cycle-request `notify`).
    const push = notify && this.transport.kind === 'websocket' ? true : undefined;
    const fields = () => ({ worker_id: this.workerId, model: this.modelName, version: this.modelVersion, ...(speeds ?? {}), wait: held, notify: push });
    let answer;
    try {
      answer = await this.transport.call('cycle-request', fields(), { signal });
    } catch (error) {
      // The Node forgot this worker (a new database), or it was issued for another model:
      // authenticate again, once (WorkerUnknown: worker_unknown, worker_process_mismatch).
      if (!(error instanceof WorkerUnknown)) throw error;
      await this.authenticate();
      answer = await this.transport.call('cycle-request', fields(), { signal });
    }
    if (answer.status !== 'accepted') {
      this.assignment = null;
      const reason = answer.reason ?? 'rejected';
      if (FINAL_REASONS.has(reason)) {
        this.finished = true;
        return { status: 'rejected', reason, timeout: answer.timeout ?? FINISHED_TIMEOUT };
      }
      return { status: 'rejected', reason, timeout: answer.timeout ?? null };
    }
    const planName = TRAINING_PLAN_NAME in (answer.plans ?? {}) ? TRAINING_PLAN_NAME : Object.keys(answer.plans ?? {})[0];
    if (planName === undefined) throw new FedgridError('the assignment lists no plans; the model was hosted without one', { code: 'plan_unknown' });
    const base = {
      modelName: answer.model ?? this.modelName,
      modelVersion: answer.version ?? this.modelVersion,
      workerId: this.workerId,
      requestKey: answer.request_key,
      cycle: answer.cycle,
      checkpoint: answer.checkpoint,
      modelId: answer.model_id,
      planName,
      planId: answer.plans[planName],
      clientConfig: answer.client_config ?? {},
      deadline: answer.deadline,
      timeout: answer.timeout,
      reportBy: answer.report_by, // the lease's end; absent from Nodes without leases
      task: answer.task ?? 'train', // 'evaluate': score the checkpoint, report metrics only
      // Set when the cycle aggregates securely: report() then runs the SecAgg rounds (secagg.js).
      secureAggregation: answer.secure_aggregation ?? null,
    };
    const model = await this.transport.download('get-model', { worker_id: this.workerId, request_key: base.requestKey, model_id: base.modelId });
    const executor = await this.executorFor(base);
    this.assignment = { status: 'accepted', ...base, parameters: parseSafetensors(model.bytes).tensors, plan: executor.plan };
    return this.assignment;
  }

  /** The executor of the assignment's plan, downloaded and compiled once per job. */
  async executorFor(assignment) {
    const key = String(assignment.planId);
    if (!this.planDownloads.has(key)) {
      const pending = this.downloadExecutor(assignment);
      this.planDownloads.set(key, pending);
      pending.catch(() => this.planDownloads.delete(key)); // a failed download is tried again
    }
    return this.planDownloads.get(key);
  }

  async downloadExecutor(assignment) {
    await this.resolveTransport();
    const download = await this.transport.download('get-plan', { worker_id: assignment.workerId, request_key: assignment.requestKey, plan_id: assignment.planId });
    const hash = download.headers['x-fedgrid-plan-hash'];
    if (hash && this.executors.has(hash)) return this.executors.get(hash);
    const executor = await PlanExecutor.create(download.bytes, this.client.executionProviders ? { executionProviders: this.client.executionProviders } : {});
    this.executors.set(executor.plan.contentHash, executor);
    return executor;
  }

  /**
   * Train the assignment's plan on local data, starting from the cycle's checkpoint.
   *
   * @param {object} options
   * @param {Float32Array|number[][]|ArrayLike<number>[]} options.data  examples: flat (n x feature size) or one array per example
   * @param {ArrayLike<number>|BigInt64Array} options.labels  one class index per example
   * Unset batchSize / epochs / maxUpdates / learningRate / shuffle come from the model's
   * client_config, then from the plan's defaults. `onBatch({epoch, update, batchSize, loss,
   * metrics})` runs after every update (return false to end early). Aborting `signal` throws
   * TrainingStoppedError whose `checkpoint` (JSON-able) resumes the run via `resumeFrom`, also in
   * a new Job or after a page reload, while the cycle is still open.
   * @returns {Promise<{diff, numSamples, metrics, parameters, updates, losses}>}
   */
  async train(options) {
    const { data, labels, resumeFrom, ...rest } = options ?? {};
    if (resumeFrom?.assignment && resumeFrom.assignment.requestKey !== this.assignment?.requestKey) {
      // Resuming elsewhere (new page, new process): take the paused run's assignment back.
      const saved = resumeFrom.assignment;
      this.workerId = saved.workerId;
      this.modelVersion = saved.modelVersion;
      const executor = await this.executorFor(saved);
      this.assignment = { status: 'accepted', ...saved, parameters: null, plan: executor.plan };
    }
    const assignment = this.assignment;
    if (!assignment) throw new FedgridError('train() needs an assignment: await job.request() until it is accepted', { code: 'no_assignment' });
    const executor = await this.executorFor(assignment);
    const fromConfig = {};
    for (const [key, option] of Object.entries(CLIENT_CONFIG_OPTIONS)) {
      if (assignment.clientConfig?.[key] !== undefined && assignment.clientConfig[key] !== null) fromConfig[option] = assignment.clientConfig[key];
    }
    const explicit = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
    try {
      return await trainLocally(executor, assignment.parameters, {
        seed: Math.floor(Math.random() * 2 ** 32),
        ...fromConfig,
        ...explicit,
        features: data,
        labels,
        resumeFrom,
      });
    } catch (error) {
      if (error instanceof TrainingStoppedError) {
        const { parameters, plan, status, ...saved } = assignment;
        error.checkpoint.assignment = saved;
      }
      throw error;
    }
  }

  /**
   * Score the assignment's checkpoint on local data with the plan's forward graph, without
   * training: an evaluation assignment's work (any assignment may call it). Resolves to
   * {metrics: {accuracy?, loss?}, numSamples}, defined as the Node's held-out scores; report() it.
   * @param {{data: Float32Array|number[][]|ArrayLike<number>[], labels: ArrayLike<number>|BigInt64Array}} options
   */
  async evaluate({ data, labels } = {}) {
    const assignment = this.assignment;
    if (!assignment?.parameters) throw new FedgridError('evaluate() needs an assignment: await job.request() until it is accepted', { code: 'no_assignment' });
    const executor = await this.executorFor(assignment);
    return evaluateLocally(executor, assignment.parameters, { features: data, labels });
  }

  /**
   * Listen, on a WebSocket transport, for the Node's `place-available` pushes for this model: the
   * returned watch's `pushed` turns true and its `wake` (set by the waiter) is called. `stop()`
   * removes the listener. Null over HTTP (no pushes).
   */
  watchPlaces(transport = this.transport) {
    if (transport?.kind !== 'websocket' || typeof transport.on !== 'function') return null;
    const watch = {
      transport,
      pushed: false,
      wake: null,
      stop: () => transport.off('place-available', listener),
    };
    const listener = ({ model, version } = {}) => {
      if (model !== this.modelName || (this.modelVersion != null && version != null && String(version) !== String(this.modelVersion))) return;
      watch.pushed = true;
      watch.wake?.();
    };
    transport.on('place-available', listener);
    return watch;
  }

  /**
   * Keep this device in training until the model is finished (or stopped by its researcher; a
   * paused model's `process_paused` rejections are waited out like any other), `cycles` reports
   * were made, or `signal` aborts (while asking or waiting: resolves with the reports so far; during training:
   * throws TrainingStoppedError, as train() does). Each round: request a place, long-polling (the
   * Node holds the request up to `wait` seconds, default 25, until a place frees or the next cycle
   * opens; see request()); when still rejected, wait the Node's `timeout` (pace steering) or, over
   * WebSocket, until the Node pushes `place-available` for this model (requests carry `notify`),
   * whichever comes first; when accepted, train (the other options as for train()) and report.
   * An assignment whose cycle closed or whose lease ran out meanwhile (AssignmentExpired) is
   * dropped and the device asks again. An evaluation assignment is scored on `evaluationData` /
   * `evaluationLabels` (default: `data` / `labels`) and its metrics reported; it does not count
   * toward `cycles`. Resolves to one {cycle, checkpoint, task, numSamples, metrics} per report
   * (task: 'train' or 'evaluate').
   */
  async participate({ cycles, signal, onReport, wait = PARTICIPATE_WAIT, evaluationData, evaluationLabels, ...trainOptions } = {}) {
    const reports = [];
    let trained = 0;
    const pause = (seconds, places) => new Promise((resolve) => {
      if (places?.pushed) { resolve(); return; } // pushed while the rejection was on its way
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done); // one signal serves every round
        if (places) places.wake = null;
        resolve();
      };
      const timer = setTimeout(done, seconds * 1000);
      signal?.addEventListener('abort', done, { once: true });
      if (places) places.wake = done;
    });
    while (!signal?.aborted && (cycles === undefined || trained < cycles)) {
      // Listen from before the request: the push may follow the rejection in the same breath.
      let places = this.watchPlaces();
      let outcome;
      try {
        outcome = await this.request({ wait, notify: true, signal }).catch((error) => ({ status: 'error', error }));
        if (places?.transport !== this.transport) {
          // A Network's URL: the first request found the model's Node; its pushes come from there.
          places?.stop();
          places = this.watchPlaces();
        }
        if (!signal?.aborted && outcome.status === 'rejected' && !FINAL_REASONS.has(outcome.reason)) {
          await pause(outcome.timeout ?? 1, places);
        }
      } finally {
        places?.stop(); // one listener per round, gone before the next
      }
      if (signal?.aborted) break; // asking or waiting was cut short, or answered just as it ended
      if (outcome.status === 'error') {
        // The place lapsed before the downloads (the table's AssignmentExpired): ask again.
        if (outcome.error instanceof AssignmentExpired) continue;
        throw outcome.error;
      }
      if (outcome.status === 'rejected') {
        if (FINAL_REASONS.has(outcome.reason)) break;
        continue; // its timeout, or a push, has passed
      }
      let result;
      try {
        result = outcome.task === 'evaluate'
          ? await this.evaluate({ data: evaluationData ?? trainOptions.data, labels: evaluationLabels ?? trainOptions.labels })
          : await this.train({ ...trainOptions, signal });
        await this.report(result);
      } catch (error) {
        if (error instanceof AssignmentExpired) continue; // drop the work, ask for a new place
        throw error;
      }
      if (outcome.task !== 'evaluate') trained += 1;
      const entry = { cycle: outcome.cycle, checkpoint: outcome.checkpoint, task: outcome.task, numSamples: result.numSamples, metrics: result.metrics };
      reports.push(entry);
      await onReport?.(entry, result);
    }
    return reports;
  }

  /**
   * Send a training result's diff (start - trained), numSamples and metrics, the diff encoded as
   * the assignment's clientConfig.diff_encoding says (float32, float16 or int8); for an evaluation
   * assignment, evaluate()'s metrics and numSamples only.
   * Resolves to the Node's {status: 'success', cycle}, sent only once the report is stored.
   * Rejects with AssignmentExpired when the cycle closed or the assignment's lease ran out first
   * (cycle_closed, assignment_expired: request a new place), ReportRefused when the Node refused
   * the report (diff_*, num_samples_invalid, metrics_invalid; report_duplicate, except after a
   * retry of this call, which means its first attempt was stored: that is success).
   */
  async report(result) {
    const assignment = this.assignment;
    if (!assignment) throw new FedgridError('report() needs an assignment: request(), train(), then report()', { code: 'no_assignment' });
    const evaluation = assignment.task === 'evaluate';
    let blobs = {}; // an evaluation reports metrics only: the Node refuses a diff there
    if (evaluation) {
      if (!reportableMetrics(result?.metrics) || !(result.numSamples >= 1)) throw new TypeError('an evaluation assignment reports the {metrics, numSamples} that evaluate() returned');
    } else {
      if (!result?.diff || !(result.numSamples >= 1)) throw new TypeError('report(result) needs the {diff, numSamples, metrics} that train() returned');
      if (assignment.secureAggregation) {
        const diff = result.diff instanceof Uint8Array ? parseSafetensors(result.diff).tensors : result.diff;
        const answer = await reportSecurely(this.transport, assignment, diff);
        this.assignment = null;
        return answer;
      }
      blobs = { diff: result.diff instanceof Uint8Array ? result.diff : encodeDiff(result.diff, assignment.clientConfig?.diff_encoding) };
    }
    try {
      const answer = await this.transport.call('report', {
        worker_id: assignment.workerId,
        request_key: assignment.requestKey,
        num_samples: result.numSamples,
        metrics: reportableMetrics(result.metrics),
      }, { blobs });
      this.assignment = null;
      return answer;
    } catch (error) {
      // A retried report whose first attempt was stored (its answer was lost): that one stands.
      if (error instanceof ReportRefused && error.code === 'report_duplicate' && error.attempts > 1) {
        this.assignment = null;
        return { status: 'success', cycle: assignment.cycle, duplicate: true };
      }
      throw error;
    }
  }
}
