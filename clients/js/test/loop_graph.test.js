// The Loop form of the training graph (src/loop_graph.js) is a way of running a local round, not
// another computation: a round that takes several steps per session.run must equal the same round
// taken one step per run bit for bit — losses, metrics, sample counts, diff and parameters — on
// every conformance plan, when it ends or pauses inside a run, on the native runtime and on
// onnxruntime-web's WASM.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as ortWeb from 'onnxruntime-web';

import { Plan, PlanExecutor, TrainingStoppedError, trainLocally } from '../src/index.js';
import { STEPS_PER_RUN } from '../src/executor.js';
import { loopTrainingGraph } from '../src/loop_graph.js';
import { runtime } from '../src/runtime.js';
import { assertSameTensors, bits, planBytes, startOf } from './support/bit_for_bit.mjs';
import { trainingGraphOf, vectorData, withDefaultOpset } from './support/node.mjs';

function assertSameRound(actual, expected, what) {
  assert.equal(actual.updates, expected.updates, `${what}: updates`);
  assert.deepEqual(actual.losses, expected.losses, `${what}: losses`);
  assert.deepEqual(Object.entries(actual.metrics), Object.entries(expected.metrics), `${what}: metrics`);
  assert.equal(actual.numSamples, expected.numSamples, `${what}: samples`);
  assertSameTensors(actual.diff, expected.diff, `${what}: diff`);
  assertSameTensors(actual.parameters, expected.parameters, `${what}: parameters`);
}

/** session.run calls made while `body` runs, on every session of the runtime. */
async function countingRuns(body) {
  const { InferenceSession } = runtime();
  const original = InferenceSession.prototype.run;
  let runs = 0;
  InferenceSession.prototype.run = function run(...args) {
    runs += 1;
    return original.apply(this, args);
  };
  try {
    await body();
  } finally {
    InferenceSession.prototype.run = original;
  }
  return runs;
}

// Every plan the conformance vectors hold: MLPs and CNNs, momentum and FedProx (state carried
// through the Loop, global parameters from outside it), int64 metrics among the scanned outputs.
const VECTOR_NAMES = ['digits_mlp', 'digits_mlp_momentum_fedprox', 'digits_cnn', 'logistic_regression', 'mcmahan_2nn', 'mcmahan_cnn', 'pygrid_mlp'];

for (const vector of VECTOR_NAMES) {
  test(`${vector}: a round of several steps per run equals one step per run bit for bit`, async () => {
    const executor = await PlanExecutor.create(planBytes(vector));
    assert.equal(await executor.stepsTogether(), true, 'the plan runs in the Loop form on the native runtime');
    const start = startOf(vector);
    const { features, labels } = vectorData(vector);
    // 29 examples: batches of 3 leave a last batch of 2, so a run of 8 full batches, one of the
    // single remaining full batch, and the smaller last batch each take their own path.
    const cases = {
      shuffled: { batchSize: 3, epochs: 2, seed: 5, learningRate: 0.2 },
      'in order': { batchSize: 2, shuffle: false },
      'maxUpdates inside a run': { batchSize: 2, maxUpdates: 11, seed: 1 },
    };
    for (const [what, options] of Object.entries(cases)) {
      const one = await trainLocally(executor, start, { features, labels, ...options, stepsPerRun: 1 });
      const many = await trainLocally(executor, start, { features, labels, ...options });
      assertSameRound(many, one, what);
    }
    await executor.release();
  });
}

test(`a round takes its full batches ${STEPS_PER_RUN} per session.run, the rest one per run`, async () => {
  const vector = 'mcmahan_2nn';
  const executor = await PlanExecutor.create(planBytes(vector));
  await executor.stepsTogether();
  const { features, labels } = vectorData(vector);
  // 29 examples in batches of 2: 14 full batches (runs of 8 and 6) and a last batch of 1.
  const runs = await countingRuns(() => trainLocally(executor, startOf(vector), { features, labels, batchSize: 2 }));
  assert.equal(runs, 3);
  assert.equal(await countingRuns(() => trainLocally(executor, startOf(vector), { features, labels, batchSize: 2, stepsPerRun: 1 })), 15);
  assert.equal(await countingRuns(() => trainLocally(executor, startOf(vector), { features, labels, batchSize: 2, stepsPerRun: 5 })), 4, 'runs of 5, 5 and 4, then the last batch');
});

test('a round that ends or pauses inside a run ends where one step per run would', async () => {
  const vector = 'digits_mlp_momentum_fedprox';
  const executor = await PlanExecutor.create(planBytes(vector));
  const start = startOf(vector);
  const { features, labels } = vectorData(vector);
  const options = { features, labels, batchSize: 3, epochs: 2, seed: 9 };
  for (const update of [1, 3, 8, 12]) {
    const endAt = (stepsPerRun) => trainLocally(executor, start, { ...options, stepsPerRun, onBatch: (report) => report.update < update });
    const [one, many] = [await endAt(1), await endAt(undefined)];
    assert.equal(many.updates, update);
    assertSameRound(many, one, `ended at update ${update}`);

    const pauseAt = async (stepsPerRun) => {
      const controller = new AbortController();
      const error = await trainLocally(executor, start, { ...options, stepsPerRun, signal: controller.signal, onBatch: (report) => { if (report.update === update) controller.abort(); } })
        .then(() => null, (thrown) => thrown);
      assert.ok(error instanceof TrainingStoppedError, 'the round pauses');
      return JSON.parse(JSON.stringify(error.checkpoint));
    };
    const [pausedOne, pausedMany] = [await pauseAt(1), await pauseAt(undefined)];
    assert.equal(pausedMany.updates, update);
    assert.deepEqual(pausedMany, pausedOne, `paused at update ${update}: the same checkpoint`);
    const resumed = await trainLocally(executor, start, { ...options, resumeFrom: pausedMany });
    assertSameRound(resumed, await trainLocally(executor, start, options), `resumed from update ${update}`);
  }
});

test('stepMany equals as many steps, and takes them one by one where the Loop form does not apply', async () => {
  const vector = 'digits_mlp_momentum_fedprox';
  const start = startOf(vector);
  const { features, labels } = vectorData(vector);
  const looped = await PlanExecutor.create(planBytes(vector));
  const stepwise = await PlanExecutor.create(planBytes(vector), { loopSteps: false });
  assert.equal(await looped.stepsTogether(), true);
  assert.equal(await stepwise.stepsTogether(), false);
  const count = 4;
  const width = looped.featureSize;
  let parameters = start;
  let optimizerState = looped.initialOptimizerState();
  const losses = [];
  for (let k = 0; k < count; k += 1) {
    const step = await looped.step(parameters, features.subarray(k * 5 * width, (k + 1) * 5 * width), labels.slice(k * 5, (k + 1) * 5),
      { learningRate: 0.3, optimizerState, globalParameters: start });
    losses.push(step.loss);
    ({ parameters, optimizerState } = step);
  }
  for (const executor of [looped, stepwise]) {
    const many = await executor.stepMany(start, features.subarray(0, count * 5 * width), labels.slice(0, count * 5), count,
      { learningRate: 0.3, globalParameters: start });
    assert.deepEqual(many.losses, losses);
    assert.equal(many.metrics.length, count);
    assert.ok(many.metrics.every((metrics) => metrics.num_samples === 5));
    assertSameTensors(many.parameters, parameters, 'parameters');
    assertSameTensors(many.optimizerState, optimizerState, 'optimizer state');
  }
  await assert.rejects(looped.stepMany(start, features.subarray(0, 7 * width), labels.slice(0, 7), 2), /2 equal batches/);
  for (const count of [0, -1, 1.5, Number.NaN, '2']) {
    await assert.rejects(looped.stepMany(start, features.subarray(0, 4 * width), labels.slice(0, 4), count), /equal batches/, `count ${String(count)}`);
  }
});

test('the Loop form computes what the plan\'s graph does on onnxruntime-web (WASM) too', async () => {
  ortWeb.env.wasm.numThreads = 1;
  const vector = 'digits_mlp_momentum_fedprox';
  const plan = Plan.fromBytes(planBytes(vector));
  const section = plan.manifest.train;
  const loop = loopTrainingGraph(plan.graphs.train, section);
  const options = { graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  const plainSession = await ortWeb.InferenceSession.create(plan.graphs.train, options);
  const loopSession = await ortWeb.InferenceSession.create(loop.bytes, options);
  const start = startOf(vector);
  const { features, labels } = vectorData(vector);
  const [count, batch, width] = [3, 8, 64];
  const learningRate = new ortWeb.Tensor('float32', Float32Array.of(0.3), []);
  const sourceOf = { parameter: start, global_parameter: start };
  let carried = {};
  for (const entry of section.inputs) {
    if (entry.role === 'parameter') carried[entry.name] = start[entry.parameter].data;
    // Momentum non-zero, so that a misplaced state entry would show.
    if (entry.role === 'optimizer_state') carried[entry.name] = new Float32Array(entry.shape.reduce((a, b) => a * b, 1)).map((_, i) => ((i % 7) - 3) / 100);
  }
  const initial = { ...carried };
  const losses = [];
  for (let k = 0; k < count; k += 1) {
    const feeds = {
      features: new ortWeb.Tensor('float32', features.slice(k * batch * width, (k + 1) * batch * width), [batch, width]),
      labels: new ortWeb.Tensor('int64', BigInt64Array.from(labels.slice(k * batch, (k + 1) * batch), BigInt), [batch]),
      learning_rate: learningRate,
    };
    for (const entry of section.inputs) {
      if (entry.name in carried) feeds[entry.name] = new ortWeb.Tensor('float32', carried[entry.name], entry.shape);
      else if (sourceOf[entry.role]) feeds[entry.name] = new ortWeb.Tensor('float32', sourceOf[entry.role][entry.parameter].data, entry.shape);
    }
    const results = await plainSession.run(feeds);
    losses.push(results.loss.data[0]);
    carried = Object.fromEntries(loop.carried.map(({ entry, output }) => [entry.name, results[output.name].data]));
  }
  const feeds = {
    [loop.steps]: new ortWeb.Tensor('int64', BigInt64Array.of(BigInt(count)), []),
    [loop.features]: new ortWeb.Tensor('float32', features.slice(0, count * batch * width), [count, batch, width]),
    [loop.labels]: new ortWeb.Tensor('int64', BigInt64Array.from(labels.slice(0, count * batch), BigInt), [count, batch]),
    learning_rate: learningRate,
  };
  for (const entry of loop.outer.filter((e) => e.role === 'global_parameter')) feeds[entry.name] = new ortWeb.Tensor('float32', start[entry.parameter].data, entry.shape);
  for (const { entry, initial: name } of loop.carried) feeds[name] = new ortWeb.Tensor('float32', initial[entry.name], entry.shape);
  const results = await loopSession.run(feeds);
  for (const { entry, final } of loop.carried) assert.deepEqual(bits(results[final].data), bits(carried[entry.name]), entry.name);
  const lossName = loop.scanned.find(({ entry }) => entry.role === 'loss').name;
  assert.deepEqual(Array.from(results[lossName].data), losses);
  await plainSession.release();
  await loopSession.release();
});

test('loopTrainingGraph leaves graphs it cannot loop alone', () => {
  const { graph, section, changed } = trainingGraphOf('digits_mlp');
  assert.ok(loopTrainingGraph(graph, section), 'as it is, it loops');
  assert.equal(loopTrainingGraph(graph, changed((s) => { s.inputs.push({ name: 'dropout_seed', role: 'seed', dtype: 'int64', shape: [] }); })), null,
    'an input role it does not know where to put');
  assert.equal(loopTrainingGraph(graph, changed((s) => { s.outputs = s.outputs.filter((e) => e.role !== 'updated_parameter' || e.parameter !== s.inputs.find((i) => i.role === 'parameter').parameter); })), null,
    'a parameter without its updated output');
  assert.equal(loopTrainingGraph(graph, changed((s) => { s.outputs[0].name = 'fedgrid.loop/steps'; })), null, 'a name the Loop form uses');
  assert.equal(loopTrainingGraph(withDefaultOpset(graph, 10), section), null, 'an opset before 11');
});

test('stepsPerRun below 1, or not a number, takes one step per run; above the data, what there is', async () => {
  const vector = 'digits_mlp';
  const executor = await PlanExecutor.create(planBytes(vector));
  const { features, labels } = vectorData(vector);
  const options = { features, labels, batchSize: 2, seed: 3 };
  const expected = await trainLocally(executor, startOf(vector), { ...options, stepsPerRun: 1 });
  for (const stepsPerRun of [0, -5, 'many', Number.NaN, 1e9, Infinity]) {
    let result;
    const runs = await countingRuns(async () => { result = await trainLocally(executor, startOf(vector), { ...options, stepsPerRun }); });
    assertSameRound(result, expected, `stepsPerRun ${String(stepsPerRun)}`);
    // 29 examples in batches of 2: 14 full batches and a last one of 1.
    assert.equal(runs, stepsPerRun >= 14 ? 2 : 15, `stepsPerRun ${String(stepsPerRun)}: runs`);
  }
});
