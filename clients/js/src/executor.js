// Run a plan's training graph with onnxruntime-web: one step (PlanExecutor.step) or a local round
// (trainLocally); and its forward graph: a prediction (PlanExecutor.predict) or a checkpoint's
// score on labelled examples (evaluateLocally, as plans/fedgrid_plans/scoring.py). Inputs and outputs are found by their manifest roles, never by position, exactly
// as plans/fedgrid_plans/executor.py does, so both executors meet the same conformance vectors.

import { FedgridError, TrainingStoppedError } from './errors.js';
import { Plan } from './plan.js';
import { defaultExecutionProviders, runtime, sessionDefaults } from './runtime.js';
import { loopTrainingGraph } from './loop_graph.js';
import { packTrainingGraph } from './packed_graph.js';
import { MANIFEST_DTYPES } from './safetensors.js';
import { SeededRandom } from './random.js';
import { decodeTrainingState, encodeTrainingState } from './training_state.js';

export { SeededRandom };

const ARRAY_FOR = { float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array, uint8: Uint8Array };

function product(shape) { return shape.reduce((a, b) => a * b, 1); }

function groupByRole(entries) {
  const grouped = {};
  for (const entry of entries) (grouped[entry.role] ??= []).push(entry);
  return grouped;
}

/** Convert numbers/arrays/typed arrays to the typed array a manifest dtype needs. */
export function toTypedArray(values, dtype) {
  const ArrayType = ARRAY_FOR[dtype];
  if (!ArrayType) throw new FedgridError(`plan input dtype ${dtype} is not supported by the JavaScript executor`);
  if (values instanceof ArrayType) return values;
  if (Array.isArray(values) && values.length && ArrayBuffer.isView(values[0])) {
    // One typed array per example: concatenate without going through plain numbers.
    const width = values[0].length;
    const out = new ArrayType(values.length * width);
    values.forEach((row, i) => out.set(ArrayType === BigInt64Array ? BigInt64Array.from(row, toInt64) : row, i * width));
    return out;
  }
  // A flat array (a batch's labels, every step) needs no flattening: Array.prototype.flat costs
  // more than the conversion itself.
  const flat = ArrayBuffer.isView(values) ? values : (Array.isArray(values) ? (values.some(Array.isArray) ? values.flat(Infinity) : values) : [values]);
  const out = new ArrayType(flat.length);
  const convert = ArrayType === BigInt64Array ? toInt64 : Number;
  for (let i = 0; i < flat.length; i += 1) out[i] = convert(flat[i]);
  return out;
}

function toInt64(value) { return BigInt(Math.trunc(Number(value))); }

export class PlanExecutor {
  // Per-step constants, made once: a round runs thousands of steps, and on a small model the
  // JavaScript around session.run is a measurable share of a step.
  #batchShapes = new Map();
  #learningRateFeed = null;
  #batchTensors = { features: null, labels: null };
  /** The Loop form's session (src/loop_graph.js), a promise made on first use, or null. */
  #loop = undefined;

  /** Use PlanExecutor.create(plan): sessions are created asynchronously. `packing`: the
   *  session runs packTrainingGraph's form of the graph (src/packed_graph.js), or null. */
  constructor(plan, trainSession, packing = null) {
    this.plan = plan;
    const { manifest } = plan;
    this.parameterSpecs = manifest.parameters;
    this.parameterNames = manifest.parameters.map((p) => p.name);
    const inputs = groupByRole(manifest.train.inputs);
    this.featuresInput = inputs.features[0];
    this.labelsInput = inputs.labels[0];
    this.learningRateInput = inputs.learning_rate[0].name;
    this.parameterInputs = inputs.parameter ?? [];
    this.stateInputs = inputs.optimizer_state ?? [];
    this.globalInputs = inputs.global_parameter ?? [];
    this.outputs = manifest.train.outputs;
    this.defaults = manifest.defaults ?? {};
    this.defaultLearningRate = Number(this.defaults.learning_rate ?? 0.01);
    this.featureShape = this.featuresInput.shape.slice(1).map(Number);
    this.featureSize = product(this.featureShape);
    this.labelShape = this.labelsInput.shape.slice(1).map(Number);
    this.labelSize = product(this.labelShape);
    this.session = trainSession;
    this.packing = packing;
    if (packing) {
      const placed = new Map(packing.output.entries.map((placement) => [placement.entry.name, placement]));
      // Per manifest output, in manifest order (results keep that order): its place in the packed
      // output, or null where it is fetched as its own tensor.
      this.outputPlacements = this.outputs.map((output) => placed.get(output.name) ?? null);
    }
  }

  /** Feature and label dims for a batch size (a round has at most two: full and last batch). */
  #shapesFor(batch) {
    let shapes = this.#batchShapes.get(batch);
    if (!shapes) {
      if (this.#batchShapes.size >= 8) this.#batchShapes.clear();
      shapes = { features: [batch, ...this.featureShape], labels: [batch, ...this.labelShape], labelCount: batch * this.labelSize };
      this.#batchShapes.set(batch, shapes);
    }
    return shapes;
  }

  /** The tensor over `data`: the previous step's when it was made over the same array (a round
   *  gathers every full batch into the same buffer, a benchmark feeds one batch), since the
   *  runtime reads a tensor's data when it runs, not when the tensor is made. */
  #batchTensor(ort, which, dtype, data, dims) {
    const last = this.#batchTensors[which];
    if (last && last.data === data && last.dims === dims) return last.tensor;
    const tensor = new ort.Tensor(dtype, data, dims);
    this.#batchTensors[which] = { data, dims, tensor };
    return tensor;
  }

  /** The learning-rate scalar tensor, reused while the rate stays the same (tensors are never
   *  written to, so sharing one between steps is safe). */
  #learningRateTensor(ort, value) {
    if (!this.#learningRateFeed || !Object.is(this.#learningRateFeed.value, value)) {
      this.#learningRateFeed = { value, tensor: new ort.Tensor('float32', new Float32Array([value]), []) };
    }
    return this.#learningRateFeed.tensor;
  }

  /**
   * @param {Plan|Uint8Array|ArrayBuffer} plan  a Plan or plan-file bytes
   * @param {{executionProviders?: string[], verify?: boolean, packTensors?: boolean}} [options]
   *   providers default to defaultExecutionProviders(): WASM, or WebGPU then WASM in the WebGPU
   *   bundle. `packTensors` (default: true for plans of up to PACKED_PARAMETERS_LIMIT parameter
   *   values) runs the graph with its parameters and results packed into a few flat tensors
   *   (src/packed_graph.js): the same results, fewer tensors through the runtime per step.
   *   `loopSteps` (default true) lets stepMany() and so trainLocally take several steps per
   *   session.run (src/loop_graph.js) where the providers are the CPU's: the same results.
   */
  static async create(plan, { executionProviders = defaultExecutionProviders(), verify = true, packTensors, loopSteps = true } = {}) {
    const parsed = plan instanceof Plan ? plan : Plan.fromBytes(plan);
    if (verify) await parsed.verify();
    const ort = runtime();
    const options = { ...sessionDefaults(), executionProviders, graphOptimizationLevel: 'all', logSeverityLevel: 3 };
    const parameterValues = parsed.manifest.parameters.reduce((sum, p) => sum + product(p.shape), 0);
    let packing = (packTensors ?? parameterValues <= PACKED_PARAMETERS_LIMIT) ? packTrainingGraph(parsed.graphs.train, parsed.manifest.train) : null;
    let session;
    if (packing) {
      // A graph the rewrite does not suit (a name it cannot reuse, an operator set it does not
      // know) still trains, unpacked.
      session = await ort.InferenceSession.create(packing.bytes, options).catch(() => null);
      if (!session) packing = null;
    }
    session ??= await ort.InferenceSession.create(parsed.graphs.train, options);
    const executor = new PlanExecutor(parsed, session, packing);
    executor.executionProviders = executionProviders; // for the forward session, made when needed
    if (!loopSteps) executor.#loop = Promise.resolve(null);
    return executor;
  }

  /** Whether the plan has a forward graph (predict, evaluateLocally). */
  get hasForwardGraph() { return Boolean(this.plan.graphs.forward && this.plan.manifest.forward); }

  /**
   * Run the forward graph (inference) on a batch: resolves to {data: Float32Array, dims}, the
   * model's raw output (logits for classification). Throws when the plan has no forward graph.
   * @param parameters {name: {data, shape}} (a parsed checkpoint's tensors)
   * @param features Float32Array of batch*featureSize values
   */
  async predict(parameters, features) {
    if (!this.hasForwardGraph) throw new FedgridError('this plan has no forward graph, so it cannot predict or evaluate', { code: 'plan_not_evaluable' });
    const ort = runtime();
    // One session for every call (a promise, so concurrent first calls share it).
    this.forwardSession ??= ort.InferenceSession.create(this.plan.graphs.forward, {
      executionProviders: this.executionProviders ?? defaultExecutionProviders(),
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    });
    const session = await this.forwardSession;
    const section = this.plan.manifest.forward;
    const featureValues = toTypedArray(features, 'float32');
    const batch = featureValues.length / this.featureSize;
    if (!Number.isInteger(batch) || batch < 1) {
      throw new FedgridError(`features hold ${featureValues.length} values, not a whole number of examples of shape [${this.featureShape}]`);
    }
    const feeds = {};
    for (const entry of section.inputs) {
      if (entry.role === 'features') {
        feeds[entry.name] = new ort.Tensor('float32', featureValues, [batch, ...this.featureShape]);
      } else {
        const tensor = parameters[entry.parameter];
        if (!tensor) throw new FedgridError(`parameter '${entry.parameter}' is missing`);
        feeds[entry.name] = new ort.Tensor(entry.dtype, tensor.data, entry.shape);
      }
    }
    const output = (await session.run(feeds))[section.outputs[0].name];
    return { data: output.data, dims: [...output.dims] };
  }

  get usesOptimizerState() { return this.stateInputs.length > 0; }

  get usesGlobalParameters() { return this.globalInputs.length > 0; }

  /** Zeros for every optimizer-state entry (momentum buffers start at zero), as views of one
   *  buffer: a packed session takes them as they lie. */
  initialOptimizerState() {
    return contiguousTensors((this.plan.manifest.optimizer_state ?? []).map((entry) => [entry.parameter, entry.shape]));
  }

  /**
   * One update on one batch.
   * @param parameters {name: {data, shape}} (a parsed checkpoint's tensors)
   * @param features Float32Array of batch*featureSize values
   * @param labels   labels of the batch (typed array or numbers)
   * @returns {Promise<{loss: number, metrics: Record<string, number>, parameters: object, optimizerState: object}>}
   */
  async step(parameters, features, labels, { learningRate, optimizerState, globalParameters } = {}) {
    const ort = runtime();
    const featureValues = toTypedArray(features, this.featuresInput.dtype);
    const batch = featureValues.length / this.featureSize;
    if (!Number.isInteger(batch) || batch < 1) {
      throw new FedgridError(`features hold ${featureValues.length} values, not a whole number of examples of shape [${this.featureShape}]`);
    }
    const labelValues = toTypedArray(labels, this.labelsInput.dtype);
    const shapes = this.#shapesFor(batch);
    if (labelValues.length !== shapes.labelCount) {
      throw new FedgridError(`a batch of ${batch} examples needs ${shapes.labelCount} label values, got ${labelValues.length}`);
    }
    const feeds = {
      [this.featuresInput.name]: this.#batchTensor(ort, 'features', this.featuresInput.dtype, featureValues, shapes.features),
      [this.labelsInput.name]: this.#batchTensor(ort, 'labels', this.labelsInput.dtype, labelValues, shapes.labels),
      [this.learningRateInput]: this.#learningRateTensor(ort, learningRate ?? this.defaultLearningRate),
    };
    if (this.packing) return this.#packedStep(ort, feeds, parameters, optimizerState, globalParameters);
    // The runtime reads inputs in place (no copy), so parameters go in as they are.
    feedTensors(ort, feeds, this.parameterInputs, parameters, 'parameter');
    if (this.usesOptimizerState) feedTensors(ort, feeds, this.stateInputs, optimizerState ?? this.initialOptimizerState(), 'optimizer state');
    if (this.usesGlobalParameters) feedTensors(ort, feeds, this.globalInputs, globalParameters ?? parameters, 'global parameter');
    const results = await this.session.run(feeds);
    let loss = 0;
    const metrics = {};
    const updated = {};
    const updatedState = {};
    for (const output of this.outputs) {
      const value = results[output.name];
      if (output.role === 'loss') loss = Number(value.data[0]);
      else if (output.role === 'metric') metrics[output.metric] = Number(value.data[0]);
      else if (output.role === 'updated_parameter') updated[output.parameter] = { dtype: MANIFEST_DTYPES[output.dtype], shape: [...value.dims], data: value.data };
      else if (output.role === 'updated_optimizer_state') updatedState[output.parameter] = { dtype: MANIFEST_DTYPES[output.dtype], shape: [...value.dims], data: value.data };
    }
    return { loss, metrics, parameters: updated, optimizerState: updatedState };
  }

  /** step() on the packed graph: one flat tensor per input role in, one flat tensor out (and the
   *  outputs it does not hold, such as an int64 sample count, as their own tensors). */
  async #packedStep(ort, feeds, parameters, optimizerState, globalParameters) {
    for (const input of this.packing.inputs) {
      let source = parameters;
      if (input.role === 'optimizer_state') source = optimizerState ?? this.initialOptimizerState();
      else if (input.role === 'global_parameter') source = globalParameters ?? parameters;
      feeds[input.name] = new ort.Tensor('float32', packedVector(input, source, input.what), input.dims);
    }
    const results = await this.session.run(feeds, this.packing.fetches);
    const packed = results[this.packing.output.name].data;
    if (packed.length !== this.packing.output.length) {
      throw new FedgridError(`the training graph returned ${packed.length} values where its manifest's outputs hold ${this.packing.output.length}`);
    }
    let loss = 0;
    const metrics = {};
    const updated = {};
    const updatedState = {};
    for (let i = 0; i < this.outputs.length; i += 1) {
      const output = this.outputs[i];
      const placement = this.outputPlacements[i];
      const { role } = output;
      if (role === 'loss' || role === 'metric') {
        const value = Number(placement ? packed[placement.offset] : results[output.name].data[0]);
        if (role === 'loss') loss = value;
        else metrics[output.metric] = value;
      } else if (role === 'updated_parameter' || role === 'updated_optimizer_state') {
        // Views of the packed output: the next step feeds them back as they lie.
        const tensor = placement
          ? { dtype: 'F32', shape: [...output.shape], data: packed.subarray(placement.offset, placement.offset + placement.length) }
          : tensorOf(output, results[output.name]);
        if (role === 'updated_parameter') updated[output.parameter] = tensor;
        else updatedState[output.parameter] = tensor;
      }
    }
    return { loss, metrics, parameters: updated, optimizerState: updatedState };
  }

  /** The Loop form of the training graph in its own session, made on the first call that can use
   *  it: {session, graph}, or null where it does not apply. Only on the CPU's providers: with
   *  WebGPU in the list the Loop node would run on the CPU and move every step's tensors between
   *  the two, which is the cost it exists to save. */
  #loopRunner() {
    this.#loop ??= (async () => {
      const providers = this.executionProviders ?? defaultExecutionProviders();
      if (!providers.every((provider) => ['wasm', 'cpu'].includes(typeof provider === 'string' ? provider : provider?.name))) return null;
      const graph = loopTrainingGraph(this.plan.graphs.train, this.plan.manifest.train);
      if (!graph) return null;
      const options = { ...sessionDefaults(), executionProviders: providers, graphOptimizationLevel: 'all', logSeverityLevel: 3 };
      // A runtime that refuses the rewrite still trains, one step per run.
      const session = await runtime().InferenceSession.create(graph.bytes, options).catch(() => null);
      return session && { session, graph };
    })();
    return this.#loop;
  }

  /** Whether stepMany() takes its steps in one session.run (the Loop form applies). */
  async stepsTogether() { return Boolean(await this.#loopRunner()); }

  /**
   * `count` updates, one per batch, on `count` consecutive equal batches: `features` holds
   * count * batch examples, `labels` their labels. The results are bit for bit those of `count`
   * calls of step(), each fed the last one's parameters and state; where the Loop form applies
   * (stepsTogether()) they come from one session.run, so the parameters cross the runtime's
   * binding once instead of `count` times.
   * @returns {Promise<{losses: number[], metrics: Record<string, number>[], parameters: object, optimizerState: object}>}
   */
  async stepMany(parameters, features, labels, count, { learningRate, optimizerState, globalParameters } = {}) {
    const featureValues = toTypedArray(features, this.featuresInput.dtype);
    const labelValues = toTypedArray(labels, this.labelsInput.dtype);
    const batch = featureValues.length / (count * this.featureSize);
    if (!(Number.isInteger(count) && count >= 1) || !Number.isInteger(batch) || batch < 1 || labelValues.length !== count * batch * this.labelSize) {
      throw new FedgridError(`stepMany needs ${count} equal batches: got ${featureValues.length} feature values and ${labelValues.length} labels for examples of shape [${this.featureShape}]`);
    }
    const loop = count > 1 ? await this.#loopRunner() : null;
    if (!loop) {
      const results = { losses: [], metrics: [], parameters, optimizerState };
      const featureStride = batch * this.featureSize;
      const labelStride = batch * this.labelSize;
      for (let k = 0; k < count; k += 1) {
        const result = await this.step(results.parameters, featureValues.subarray(k * featureStride, (k + 1) * featureStride),
          labelValues.subarray(k * labelStride, (k + 1) * labelStride), { learningRate, optimizerState: results.optimizerState, globalParameters });
        results.losses.push(result.loss);
        results.metrics.push(result.metrics);
        results.parameters = result.parameters;
        results.optimizerState = result.optimizerState;
      }
      return results;
    }
    const ort = runtime();
    const { session, graph } = loop;
    const state = this.usesOptimizerState ? optimizerState ?? this.initialOptimizerState() : null;
    const feeds = {
      [graph.steps]: new ort.Tensor('int64', BigInt64Array.of(BigInt(count)), []),
      [graph.features]: new ort.Tensor(this.featuresInput.dtype, featureValues, [count, batch, ...this.featureShape]),
      [graph.labels]: new ort.Tensor(this.labelsInput.dtype, labelValues, [count, batch, ...this.labelShape]),
    };
    for (const entry of graph.outer) {
      if (entry.role === 'learning_rate') feeds[entry.name] = this.#learningRateTensor(ort, learningRate ?? this.defaultLearningRate);
      else feedTensors(ort, feeds, [entry], globalParameters ?? parameters, 'global parameter');
    }
    for (const { entry, initial } of graph.carried) {
      const source = entry.role === 'parameter' ? parameters : state;
      const tensor = source[entry.parameter];
      if (!tensor) throw new FedgridError(`${entry.role === 'parameter' ? 'parameter' : 'optimizer state'} '${entry.parameter}' is missing`);
      feeds[initial] = new ort.Tensor(entry.dtype, tensor.data, entry.shape);
    }
    const results = await session.run(feeds);
    const updated = {};
    const updatedState = {};
    for (const { entry, output, final } of graph.carried) {
      (entry.role === 'parameter' ? updated : updatedState)[entry.parameter] = tensorOf(output, results[final]);
    }
    const losses = new Array(count).fill(0);
    const metrics = Array.from({ length: count }, () => ({}));
    for (const { entry, name } of graph.scanned) {
      if (entry.role !== 'loss' && entry.role !== 'metric') continue;
      const { data } = results[name];
      const stride = data.length / count; // one row per step; a scalar's row is one value
      for (let k = 0; k < count; k += 1) {
        const value = Number(data[k * stride]);
        if (entry.role === 'loss') losses[k] = value;
        else metrics[k][entry.metric] = value;
      }
    }
    return { losses, metrics, parameters: updated, optimizerState: state ? updatedState : {} };
  }

  async release() {
    await this.session?.release?.();
    const loop = await this.#loop;
    await loop?.session.release?.();
    if (this.forwardSession) await (await this.forwardSession).release?.();
  }
}

/** Plans with at most this many parameter values run packed by default. Packing saves a fixed
 *  cost per tensor but adds a copy of every parameter into and out of the flat tensors inside the
 *  graph: onnxruntime-node steps went 54 → 44 µs on digits_mlp (2,410 values), 601 → 593 µs on
 *  digits_cnn (6,090), but 307 → 351 µs on mcmahan_2nn (199,210). docs/sdk-js.md, "Performance". */
export const PACKED_PARAMETERS_LIMIT = 16384;

/** Tensors {name: {dtype, shape, data}} for [name, shape] pairs, their data views of one
 *  zero-filled buffer in that order. */
function contiguousTensors(pairs) {
  const buffer = new Float32Array(pairs.reduce((sum, [, shape]) => sum + product(shape), 0));
  const tensors = {};
  let offset = 0;
  for (const [name, shape] of pairs) {
    const length = product(shape);
    tensors[name] = { dtype: 'F32', shape: [...shape], data: buffer.subarray(offset, offset + length) };
    offset += length;
  }
  return tensors;
}

/** One packed input's vector: the source tensors' data where they already lie in the packed
 *  layout, one after the other in one buffer (the previous step's output, a round's start), else a
 *  new copy (a new one each time, so that concurrent steps never share it). */
function packedVector(input, source, what) {
  const { entries } = input;
  for (const entry of entries) {
    const tensor = source[entry.parameter];
    if (!tensor) throw new FedgridError(`${what} '${entry.parameter}' is missing`);
    if (tensor.data.length !== entry.length) {
      throw new FedgridError(`${what} '${entry.parameter}' holds ${tensor.data.length} values, its shape [${entry.shape}] needs ${entry.length}`);
    }
  }
  const first = source[entries[0].parameter].data;
  if (first instanceof Float32Array) {
    const start = first.byteOffset - entries[0].offset * 4;
    let inPlace = start >= 0;
    for (let i = 1; inPlace && i < entries.length; i += 1) {
      const data = source[entries[i].parameter].data;
      inPlace = data instanceof Float32Array && data.buffer === first.buffer && data.byteOffset === start + entries[i].offset * 4;
    }
    if (inPlace) return new Float32Array(first.buffer, start, input.length);
  }
  const vector = new Float32Array(input.length);
  for (const entry of entries) vector.set(source[entry.parameter].data, entry.offset);
  return vector;
}

function tensorOf(output, value) {
  return { dtype: MANIFEST_DTYPES[output.dtype], shape: [...value.dims], data: value.data };
}

function feedTensors(ort, feeds, entries, source, what) {
  for (const entry of entries) {
    const tensor = source[entry.parameter];
    if (!tensor) throw new FedgridError(`${what} '${entry.parameter}' is missing`);
    feeds[entry.name] = new ort.Tensor(entry.dtype, tensor.data, entry.shape);
  }
}

/** Copy rows order[begin..begin+size) of `source` (rows of `width` values) into `target`. */
function gatherRows(source, target, order, begin, size, width) {
  if (width === 1) {
    for (let k = 0; k < size; k += 1) target[k] = source[order[begin + k]];
    return;
  }
  for (let k = 0; k < size; k += 1) {
    const row = order[begin + k] * width;
    target.set(source.subarray(row, row + width), k * width);
  }
}

/** A copy of the plan's parameters, as views of one buffer in checkpoint order (the order of a
 *  packed session's parameter inputs, so its steps and FedProx anchor feed it without a copy). */
function copyTensors(tensors, names) {
  for (const name of names) {
    const tensor = tensors[name];
    if (!tensor) throw new FedgridError(`the checkpoint has no parameter '${name}' that the plan needs`);
    if (tensor.data.length !== product(tensor.shape)) throw new FedgridError(`parameter '${name}' holds ${tensor.data.length} values, not ${product(tensor.shape)} (shape [${tensor.shape}])`);
  }
  const out = contiguousTensors(names.map((name) => [name, tensors[name].shape]));
  for (const name of names) out[name].data.set(tensors[name].data);
  return out;
}

/**
 * Train on (features, labels) and return the diff start - trained (the thing a device reports).
 *
 * Unset options come from the plan's defaults. Each epoch visits every example once in batches of
 * batchSize (the last batch may be smaller), in an order drawn from SeededRandom(seed) when
 * shuffling. Training ends after `epochs`, at `maxUpdates`, when onBatch returns false, or when
 * `signal` aborts; an abort throws TrainingStoppedError whose `checkpoint` (a JSON-able object)
 * continues the same run when passed back as `resumeFrom`.
 */
export async function trainLocally(executor, parameters, options) {
  const { features, labels, onBatch, signal, resumeFrom } = options;
  const defaults = executor.defaults;
  const batchSize = Number(options.batchSize ?? defaults.batch_size ?? 32);
  const epochs = Number(options.epochs ?? defaults.epochs ?? 1);
  const maxUpdates = options.maxUpdates ?? defaults.max_updates ?? null;
  const shuffle = options.shuffle ?? defaults.shuffle ?? true;
  const learningRate = Number(options.learningRate ?? executor.defaultLearningRate);
  if (!(batchSize >= 1 && epochs >= 1)) throw new FedgridError('batchSize and epochs must be >= 1');

  const featureValues = toTypedArray(features, executor.featuresInput.dtype);
  const labelValues = toTypedArray(labels, executor.labelsInput.dtype);
  const count = featureValues.length / executor.featureSize;
  const labelWidth = product(executor.labelsInput.shape.slice(1).map(Number));
  if (!Number.isInteger(count) || count < 1 || labelValues.length !== count * labelWidth) {
    throw new FedgridError(`need a whole number of examples of shape [${executor.featureShape}] and one label each (got ${featureValues.length} feature values and ${labelValues.length} labels)`);
  }

  let run;
  if (resumeFrom) {
    run = decodeTrainingState(resumeFrom, executor.plan.contentHash, count);
  } else {
    const start = copyTensors(parameters, executor.parameterNames);
    run = {
      start,
      current: start,
      optimizerState: executor.usesOptimizerState ? executor.initialOptimizerState() : null,
      random: new SeededRandom(options.seed ?? 0),
      epoch: 0,
      position: 0,
      order: null,
      updates: 0,
      samples: 0,
      seen: new Uint8Array(count),
      weightedLoss: 0,
      weightedMetrics: {},
      losses: [],
      settings: { batchSize, epochs, maxUpdates, shuffle, learningRate },
    };
  }
  const { settings } = run;
  const featureSize = executor.featureSize;
  // Several full batches per session.run where the executor can (stepMany), as many as
  // `stepsPerRun` and as fit in RUN_FEATURE_BYTES of gathered features.
  const batchBytes = settings.batchSize * featureSize * featureValues.BYTES_PER_ELEMENT;
  const perRun = Math.max(1, Math.min(Math.floor(Number(options.stepsPerRun ?? STEPS_PER_RUN)) || 1, Math.floor(RUN_FEATURE_BYTES / batchBytes)));
  const together = perRun > 1 && await executor.stepsTogether();
  const buffered = together ? perRun : 1;
  const batchFeatures = new (featureValues.constructor)(buffered * settings.batchSize * featureSize);
  const batchLabels = new (labelValues.constructor)(buffered * settings.batchSize * labelWidth);
  /** The next `size` examples of the epoch: gathered into the buffers when shuffling (the buffers
   *  themselves when they fill them, so a step reuses its tensors), else where they lie. */
  const examples = (begin, size) => {
    if (!settings.shuffle) {
      return [featureValues.subarray(begin * featureSize, (begin + size) * featureSize), labelValues.subarray(begin * labelWidth, (begin + size) * labelWidth)];
    }
    gatherRows(featureValues, batchFeatures, run.order, begin, size, featureSize);
    gatherRows(labelValues, batchLabels, run.order, begin, size, labelWidth);
    const whole = size * featureSize === batchFeatures.length;
    return [whole ? batchFeatures : batchFeatures.subarray(0, size * featureSize), whole ? batchLabels : batchLabels.subarray(0, size * labelWidth)];
  };
  /** Account one update on the `size` examples from the epoch's position. */
  const record = (size, loss, metrics) => {
    const begin = run.position;
    run.position += size;
    run.updates += 1;
    for (let k = begin; k < begin + size; k += 1) run.seen[run.order[k]] = 1;
    run.samples += size;
    run.losses.push(loss);
    run.weightedLoss += loss * size;
    for (const metric in metrics) {
      if (metric !== 'num_samples') run.weightedMetrics[metric] = (run.weightedMetrics[metric] ?? 0) + metrics[metric] * size;
    }
  };
  const stepOptions = () => ({ learningRate: settings.learningRate, optimizerState: run.optimizerState, globalParameters: run.start });
  let stop = false;
  for (; run.epoch < settings.epochs && !stop; run.epoch += 1, run.position = 0, run.order = null) {
    run.order ??= settings.shuffle ? run.random.permutation(count) : Array.from({ length: count }, (_, i) => i);
    while (run.position < count) {
      if (settings.maxUpdates != null && run.updates >= settings.maxUpdates) { stop = true; break; }
      if (signal?.aborted) throw new TrainingStoppedError(encodeTrainingState(run, executor.plan.contentHash));
      let steps = together ? Math.min(perRun, Math.floor((count - run.position) / settings.batchSize)) : 1;
      if (settings.maxUpdates != null) steps = Math.min(steps, settings.maxUpdates - run.updates);
      if (steps >= 2) {
        const [runFeatures, runLabels] = examples(run.position, steps * settings.batchSize);
        const before = stepOptions();
        let result = await executor.stepMany(run.current, runFeatures, runLabels, steps, before);
        for (let k = 0; k < steps; k += 1) {
          record(settings.batchSize, result.losses[k], result.metrics[k]);
          if (onBatch) {
            const verdict = await onBatch({ epoch: run.epoch, update: run.updates, batchSize: settings.batchSize, loss: result.losses[k], metrics: result.metrics[k] });
            if (verdict === false) stop = true;
          }
          // A round told to end, or to pause, after this update ends there as one run step by
          // step would have: the run's first k + 1 steps are taken again (the same arithmetic, so
          // the same parameters) and the loop's top ends or pauses it.
          if (stop || signal?.aborted) {
            if (k < steps - 1) {
              const taken = (k + 1) * settings.batchSize;
              result = await executor.stepMany(run.current, runFeatures.subarray(0, taken * featureSize), runLabels.subarray(0, taken * labelWidth), k + 1, before);
            }
            break;
          }
        }
        run.current = result.parameters;
        if (run.optimizerState) run.optimizerState = result.optimizerState;
        if (stop) break;
        continue;
      }
      const size = Math.min(settings.batchSize, count - run.position);
      const [stepFeatures, stepLabels] = examples(run.position, size);
      const result = await executor.step(run.current, stepFeatures, stepLabels, stepOptions());
      run.current = result.parameters;
      if (run.optimizerState) run.optimizerState = result.optimizerState;
      record(size, result.loss, result.metrics);
      if (onBatch) {
        const verdict = await onBatch({ epoch: run.epoch, update: run.updates, batchSize: size, loss: result.loss, metrics: result.metrics });
        if (verdict === false) { stop = true; break; }
      }
    }
  }
  const samples = Math.max(run.samples, 1);
  const metrics = { loss: run.weightedLoss / samples };
  for (const [metric, total] of Object.entries(run.weightedMetrics)) metrics[metric] = total / samples;
  const diff = {};
  for (const name of executor.parameterNames) {
    const before = run.start[name].data;
    const after = run.current[name].data;
    const delta = new Float32Array(before.length);
    for (let i = 0; i < before.length; i += 1) delta[i] = before[i] - after[i];
    diff[name] = { dtype: 'F32', shape: [...run.start[name].shape], data: delta };
  }
  return {
    diff,
    numSamples: run.seen.reduce((a, b) => a + b, 0),
    metrics,
    parameters: run.current,
    updates: run.updates,
    losses: run.losses,
  };
}

/** Full batches per session.run in a local round by default (trainLocally's `stepsPerRun`): from
 *  8 on, the binding's cost per run is an eighth of a step's or less (docs/sdk-js.md). */
export const STEPS_PER_RUN = 8;
/** At most this many bytes of features are gathered for one run of several steps. */
const RUN_FEATURE_BYTES = 4 * 1024 * 1024;

/** Rows per forward run in evaluateLocally: bounds the memory of a large set's outputs. */
const EVALUATION_BATCH = 1024;

/**
 * Score a checkpoint on labelled examples with the plan's forward graph, without training: what
 * an evaluation assignment reports. The plan's loss says how to read the output (logits for
 * `cross_entropy`, log-probabilities for `nll`, logits of {0,1} targets for `bce_with_logits`,
 * values for `mse`); accuracy is argmax == label (for BCE: logit > 0 == label > 0.5, over all
 * elements), loss the plan's mean loss. The same definitions as the Node's held-out scores
 * (plans/fedgrid_plans/scoring.py).
 * @returns {Promise<{metrics: {accuracy?: number, loss?: number}, numSamples: number}>}
 */
export async function evaluateLocally(executor, parameters, { features, labels }) {
  const lossName = executor.plan.manifest.training?.loss;
  const classIndex = ['int64', 'int32'].includes(executor.labelsInput.dtype);
  const featureValues = toTypedArray(features, 'float32');
  const count = featureValues.length / executor.featureSize;
  const labelValues = classIndex ? Float64Array.from(toTypedArray(labels, 'int64'), Number) : toTypedArray(labels, 'float32');
  if (!Number.isInteger(count) || count < 1 || labelValues.length % count !== 0 || (classIndex && labelValues.length !== count)) {
    throw new FedgridError(`need a whole number of examples of shape [${executor.featureShape}] and their labels (got ${featureValues.length} feature values and ${labelValues.length} labels)`);
  }
  let lossSum = 0;
  let correct = 0;
  let elements = 0;
  for (let begin = 0; begin < count; begin += EVALUATION_BATCH) {
    const end = Math.min(count, begin + EVALUATION_BATCH);
    const { data } = await executor.predict(parameters, featureValues.subarray(begin * executor.featureSize, end * executor.featureSize));
    const rows = end - begin;
    const width = data.length / rows;
    if (classIndex) {
      for (let r = 0; r < rows; r += 1) {
        const label = labelValues[begin + r];
        if (!(label >= 0 && label < width)) throw new FedgridError(`label ${label} is not one of the model's ${width} classes`);
        let top = -Infinity;
        let best = 0;
        for (let k = 0; k < width; k += 1) {
          const value = data[r * width + k];
          if (value > top) { top = value; best = k; }
        }
        correct += best === label ? 1 : 0;
        const picked = data[r * width + label];
        if (lossName === 'cross_entropy') {
          let sum = 0;
          for (let k = 0; k < width; k += 1) sum += Math.exp(data[r * width + k] - top);
          lossSum += top + Math.log(sum) - picked;
        } else if (lossName === 'nll') {
          lossSum -= picked;
        }
      }
      elements += rows;
    } else {
      const targets = labelValues.subarray(begin * width, end * width);
      if (targets.length !== data.length) throw new FedgridError(`labels must be shaped like the model's output (${width} values per example)`);
      for (let i = 0; i < data.length; i += 1) {
        const z = data[i];
        const y = targets[i];
        if (lossName === 'bce_with_logits') {
          correct += (z > 0) === (y > 0.5) ? 1 : 0;
          lossSum += Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)));
        } else if (lossName === 'mse') {
          lossSum += (z - y) ** 2;
        }
      }
      elements += data.length;
    }
  }
  const metrics = {};
  if (classIndex || lossName === 'bce_with_logits') metrics.accuracy = correct / Math.max(elements, 1);
  if (['cross_entropy', 'nll', 'bce_with_logits', 'mse'].includes(lossName)) metrics.loss = lossSum / Math.max(elements, 1);
  return { metrics, numSamples: count };
}
