// The packed training graph (src/packed_graph.js) is a way of running a plan, not another
// computation: a packed executor's steps and rounds must equal the plan's own graph bit for bit —
// losses, metrics (their order too), parameters and optimizer state — on the native runtime and on
// onnxruntime-web's WASM, whatever form the caller's tensors come in, also when steps overlap.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as ortWeb from 'onnxruntime-web';

import { FedgridError, PlanExecutor, trainLocally } from '../src/index.js';
import { PACKED_PARAMETERS_LIMIT } from '../src/executor.js';
import { packTrainingGraph } from '../src/packed_graph.js';
import { assertSameTensors, bits, planBytes, startOf } from './support/bit_for_bit.mjs';
import { trainingGraphOf, vectorData, withDefaultOpset } from './support/node.mjs';

function assertSameStep(actual, expected, what) {
  assert.equal(actual.loss, expected.loss, `${what}: loss`);
  assert.deepEqual(Object.entries(actual.metrics), Object.entries(expected.metrics), `${what}: metrics`);
  assertSameTensors(actual.parameters, expected.parameters, `${what}: parameters`);
  assertSameTensors(actual.optimizerState, expected.optimizerState, `${what}: optimizer state`);
}

/** The vectors' first batches, 8 examples each, the labels as plain numbers. */
function batches(vector, executor, count) {
  const { features, labels } = vectorData(vector);
  return Array.from({ length: count }, (_, i) => ({
    features: features.slice(i * 8 * executor.featureSize, (i + 1) * 8 * executor.featureSize),
    labels: labels.slice(i * 8, (i + 1) * 8),
  }));
}

const SMALL_VECTORS = ['digits_mlp', 'digits_mlp_momentum_fedprox', 'digits_cnn', 'logistic_regression'];

for (const vector of SMALL_VECTORS) {
  test(`${vector}: packed steps equal the plan's own graph bit for bit`, async () => {
    const packed = await PlanExecutor.create(planBytes(vector));
    const plain = await PlanExecutor.create(planBytes(vector), { packTensors: false });
    assert.ok(packed.packing, 'a small plan runs packed by default');
    assert.equal(plain.packing, null);
    const start = startOf(vector);
    let [packedParameters, plainParameters] = [start, start];
    let [packedState, plainState] = [packed.initialOptimizerState(), plain.initialOptimizerState()];
    for (const [i, batch] of batches(vector, packed, 4).entries()) {
      const options = (optimizerState) => ({ learningRate: 0.3, optimizerState, globalParameters: start });
      const a = await packed.step(packedParameters, batch.features, batch.labels, options(packedState));
      const b = await plain.step(plainParameters, batch.features, batch.labels, options(plainState));
      assertSameStep(a, b, `step ${i}`);
      // Fed back as they came: the packed results are views of one output, the plain ones not.
      [packedParameters, plainParameters] = [a.parameters, b.parameters];
      if (packed.usesOptimizerState) [packedState, plainState] = [a.optimizerState, b.optimizerState];
    }
    await packed.release();
    await plain.release();
  });
}

test('a packed round equals an unpacked one (shuffled, momentum and FedProx, last batch smaller)', async () => {
  const vector = 'digits_mlp_momentum_fedprox';
  const { features, labels } = vectorData(vector);
  const start = startOf(vector);
  const options = { features, labels, batchSize: 5, epochs: 2, seed: 7, learningRate: 0.2 };
  const packed = await PlanExecutor.create(planBytes(vector));
  const plain = await PlanExecutor.create(planBytes(vector), { packTensors: false });
  assert.ok(labels.length % 5 !== 0, 'the data leave a smaller last batch');
  const a = await trainLocally(packed, start, options);
  const b = await trainLocally(plain, start, options);
  assert.deepEqual(a.losses, b.losses);
  assert.deepEqual(a.metrics, b.metrics);
  assert.equal(a.numSamples, b.numSamples);
  assertSameTensors(a.diff, b.diff, 'diff');
  assertSameTensors(a.parameters, b.parameters, 'parameters');
});

test('packed steps take tensors in any form and leave them, and earlier results, untouched', async () => {
  const vector = 'digits_mlp';
  const executor = await PlanExecutor.create(planBytes(vector));
  const start = startOf(vector);
  const [batch] = batches(vector, executor, 1);
  const first = await executor.step(start, batch.features, batch.labels);
  const firstCopy = Object.fromEntries(Object.entries(first.parameters).map(([name, t]) => [name, { ...t, data: Float32Array.from(t.data) }]));
  // The same values as separate arrays, plain number arrays, and views into a larger buffer at
  // another offset than the packed layout's.
  const separate = Object.fromEntries(Object.entries(first.parameters).map(([name, t]) => [name, { ...t, data: Float32Array.from(t.data) }]));
  const numbers = Object.fromEntries(Object.entries(first.parameters).map(([name, t]) => [name, { ...t, data: Array.from(t.data) }]));
  const total = Object.values(first.parameters).reduce((sum, t) => sum + t.data.length, 0);
  const shifted = new Float32Array(total + 3);
  let offset = 3;
  const misplaced = {};
  for (const [name, t] of Object.entries(first.parameters).reverse()) {
    shifted.set(t.data, offset);
    misplaced[name] = { ...t, data: shifted.subarray(offset, offset + t.data.length) };
    offset += t.data.length;
  }
  const expected = await executor.step(first.parameters, batch.features, batch.labels);
  for (const [what, parameters] of Object.entries({ separate, numbers, misplaced })) {
    assertSameStep(await executor.step(parameters, batch.features, batch.labels), expected, what);
  }
  assertSameTensors(first.parameters, firstCopy, 'the first step\'s results after being fed back');
  assert.deepEqual(bits(shifted.subarray(3)), bits(Float32Array.from(Object.values(misplaced).flatMap((t) => Array.from(t.data)))), 'the caller\'s buffer');
});

test('overlapping packed steps on one executor each get their own results', async () => {
  const vector = 'digits_mlp';
  const executor = await PlanExecutor.create(planBytes(vector));
  const start = startOf(vector);
  const inputs = batches(vector, executor, 3);
  const sequential = [];
  for (const batch of inputs) sequential.push(await executor.step(start, batch.features, batch.labels));
  const overlapping = await Promise.all(inputs.map((batch) => executor.step(start, batch.features, batch.labels)));
  overlapping.forEach((result, i) => assertSameStep(result, sequential[i], `batch ${i}`));
});

test('plans above PACKED_PARAMETERS_LIMIT run unpacked by default, and the same when packing is asked for', async () => {
  const vector = 'mcmahan_2nn';
  const executor = await PlanExecutor.create(planBytes(vector));
  const values = executor.parameterNames.reduce((sum, name) => sum + startOf(vector)[name].data.length, 0);
  assert.ok(values > PACKED_PARAMETERS_LIMIT, `${values} parameter values`);
  assert.equal(executor.packing, null);
  const packed = await PlanExecutor.create(planBytes(vector), { packTensors: true });
  assert.ok(packed.packing);
  const [batch] = batches(vector, executor, 1);
  const start = startOf(vector);
  assertSameStep(await packed.step(start, batch.features, batch.labels), await executor.step(start, batch.features, batch.labels), vector);
});

test('a packed step names a missing or misshapen parameter as the plain one does', async () => {
  const vector = 'digits_mlp';
  const executor = await PlanExecutor.create(planBytes(vector));
  const start = startOf(vector);
  const [batch] = batches(vector, executor, 1);
  const [name] = executor.parameterNames;
  const { [name]: _, ...missing } = start;
  await assert.rejects(executor.step(missing, batch.features, batch.labels), (error) => error instanceof FedgridError && error.message === `parameter '${name}' is missing`);
  const short = { ...start, [name]: { ...start[name], data: start[name].data.subarray(1) } };
  await assert.rejects(executor.step(short, batch.features, batch.labels), (error) => error instanceof FedgridError && /holds \d+ values/.test(error.message));
});

test('the packed graph computes what the plan\'s graph does on onnxruntime-web (WASM) too', async () => {
  ortWeb.env.wasm.numThreads = 1;
  const vector = 'digits_mlp_momentum_fedprox';
  const executor = await PlanExecutor.create(planBytes(vector), { packTensors: false });
  const section = executor.plan.manifest.train;
  const packing = packTrainingGraph(executor.plan.graphs.train, section);
  const options = { graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  const plainSession = await ortWeb.InferenceSession.create(executor.plan.graphs.train, options);
  const packedSession = await ortWeb.InferenceSession.create(packing.bytes, options);
  const start = startOf(vector);
  const [batch] = batches(vector, executor, 1);
  const state = executor.initialOptimizerState();
  // Momentum non-zero, so that a misplaced state entry would show.
  for (const tensor of Object.values(state)) tensor.data.forEach((_, i, data) => { data[i] = ((i % 7) - 3) / 100; });
  const sourceOf = { parameter: start, optimizer_state: state, global_parameter: start };
  const common = {
    features: new ortWeb.Tensor('float32', batch.features, [8, executor.featureSize]),
    labels: new ortWeb.Tensor('int64', BigInt64Array.from(batch.labels, BigInt), [8]),
    learning_rate: new ortWeb.Tensor('float32', Float32Array.of(0.3), []),
  };
  const plainFeeds = { ...common };
  for (const entry of section.inputs.filter((e) => sourceOf[e.role])) {
    plainFeeds[entry.name] = new ortWeb.Tensor('float32', sourceOf[entry.role][entry.parameter].data, entry.shape);
  }
  const packedFeeds = { ...common };
  for (const input of packing.inputs) {
    const vectorValues = new Float32Array(input.length);
    for (const entry of input.entries) vectorValues.set(sourceOf[input.role][entry.parameter].data, entry.offset);
    packedFeeds[input.name] = new ortWeb.Tensor('float32', vectorValues, [input.length]);
  }
  const plain = await plainSession.run(plainFeeds);
  const packed = await packedSession.run(packedFeeds, packing.fetches);
  const flat = packed[packing.output.name].data;
  assert.equal(flat.length, packing.output.length);
  for (const { entry, offset, length } of packing.output.entries) {
    assert.deepEqual(bits(flat.subarray(offset, offset + length)), bits(plain[entry.name].data), entry.name);
  }
  for (const name of packing.fetches.slice(1)) assert.deepEqual(packed[name].data, plain[name].data, name);
  await plainSession.release();
  await packedSession.release();
});

test('packTrainingGraph leaves plans it cannot pack alone', () => {
  const { graph, section, changed } = trainingGraphOf('digits_mlp');
  assert.ok(packTrainingGraph(graph, section), 'as it is, it packs');
  assert.equal(packTrainingGraph(graph, changed((s) => { s.inputs.find((e) => e.role === 'parameter').dtype = 'float64'; })), null,
    'a parameter input that is not float32');
  assert.equal(packTrainingGraph(graph, changed((s) => { s.outputs[0].name = 'fedgrid.packed/outputs'; })), null,
    'a name the packed graph would use');
  // Split takes its sizes as an input from opset 13 on.
  assert.equal(packTrainingGraph(withDefaultOpset(graph, 12), section), null, 'an opset before 13');
});
