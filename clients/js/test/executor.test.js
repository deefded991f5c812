// What the executor's per-step shortcuts must not change: inputs in every accepted form convert to
// the same typed arrays, a step's learning rate is the one asked for even though the scalar tensor
// is reused, an in-order round (batches fed in place, not copied) equals the same steps done by
// hand, and no step writes into an earlier step's results or the caller's data.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { PlanExecutor, parseSafetensors, trainLocally } from '../src/index.js';
import { toTypedArray } from '../src/executor.js';
import { VECTORS, vectorData } from './support/node.mjs';

const VECTOR = 'digits_mlp_momentum_fedprox'; // learning rate, momentum and FedProx inputs
const executor = await PlanExecutor.create(readFileSync(`${VECTORS}/${VECTOR}/plan.fgplan`));
const start = parseSafetensors(readFileSync(`${VECTORS}/${VECTOR}/start.safetensors`)).tensors;
const { features, labels } = vectorData(VECTOR);

function bits(array) { return Array.from(new Uint8Array(array.buffer, array.byteOffset, array.byteLength)); }

function assertSameTensors(actual, expected, what) {
  assert.deepEqual(Object.keys(actual), Object.keys(expected), what);
  for (const name of Object.keys(expected)) {
    assert.deepEqual(actual[name].shape, expected[name].shape, `${what}: ${name} shape`);
    assert.deepEqual(bits(actual[name].data), bits(expected[name].data), `${what}: ${name}`);
  }
}

test('labels and features convert the same from flat arrays, nested arrays, rows and typed arrays', () => {
  const int64 = BigInt64Array.of(3n, 0n, 9n, 2n);
  assert.deepEqual(toTypedArray([3, 0, 9, 2], 'int64'), int64);
  assert.deepEqual(toTypedArray([3.7, 0, 9.2, 2], 'int64'), int64, 'truncated toward zero');
  assert.deepEqual(toTypedArray([[3, 0], [9, 2]], 'int64'), int64);
  assert.deepEqual(toTypedArray([3n, 0n, 9n, 2n], 'int64'), int64);
  assert.deepEqual(toTypedArray(Int32Array.of(3, 0, 9, 2), 'int64'), int64);
  assert.deepEqual(toTypedArray([Int32Array.of(3, 0), Int32Array.of(9, 2)], 'int64'), int64);
  assert.deepEqual(toTypedArray(Float64Array.of(-1.5, -0.5), 'int64'), BigInt64Array.of(-1n, 0n));
  assert.equal(toTypedArray(int64, 'int64'), int64, 'the right type passes through uncopied');
  assert.deepEqual(toTypedArray(7, 'int64'), BigInt64Array.of(7n));

  const float32 = Float32Array.of(0.1, 2, -3.5, 4);
  assert.deepEqual(toTypedArray([0.1, 2, -3.5, 4], 'float32'), float32);
  assert.deepEqual(toTypedArray([[0.1, 2], [-3.5, 4]], 'float32'), float32);
  assert.deepEqual(toTypedArray([[[0.1], [2]], [[-3.5], [4]]], 'float32'), float32);
  assert.deepEqual(toTypedArray(Float64Array.of(0.1, 2, -3.5, 4), 'float32'), float32);
  assert.deepEqual(toTypedArray([Float32Array.of(0.1, 2), Float32Array.of(-3.5, 4)], 'float32'), float32);
  assert.deepEqual(toTypedArray(BigInt64Array.of(1n, -2n), 'float32'), Float32Array.of(1, -2));
  assert.throws(() => toTypedArray([1], 'bfloat16'), /not supported/);
});

test('a step uses the learning rate it is given, also after steps with another rate', async () => {
  const batch = { features: features.subarray(0, 4 * executor.featureSize), labels: labels.slice(0, 4) };
  const state = executor.initialOptimizerState();
  const step = (runner, learningRate) => runner.step(start, batch.features, batch.labels, { learningRate, optimizerState: state, globalParameters: start });
  await step(executor, 0.5);
  await step(executor, 0.5);
  const after = await step(executor, 0.05);
  const fresh = await PlanExecutor.create(executor.plan);
  const expected = await step(fresh, 0.05);
  await fresh.release();
  assert.equal(after.loss, expected.loss);
  assertSameTensors(after.parameters, expected.parameters, 'rate 0.05 after 0.5');
  const other = await step(executor, 0.5);
  assert.notDeepEqual(bits(other.parameters[executor.parameterNames[0]].data), bits(after.parameters[executor.parameterNames[0]].data));
});

test('an in-order round equals the same steps by hand, and leaves the data and every result untouched', async () => {
  const batchSize = 4;
  const featuresBefore = Float32Array.from(features);
  const round = await trainLocally(executor, start, { features, labels, batchSize, epochs: 1, shuffle: false, learningRate: 0.1 });

  let parameters = start;
  let optimizerState = executor.initialOptimizerState();
  const results = [];
  const snapshots = [];
  for (let begin = 0; begin < labels.length; begin += batchSize) {
    const end = Math.min(labels.length, begin + batchSize);
    const result = await executor.step(parameters, features.slice(begin * executor.featureSize, end * executor.featureSize), labels.slice(begin, end),
      { learningRate: 0.1, optimizerState, globalParameters: start });
    results.push(result);
    snapshots.push(Object.fromEntries(Object.entries(result.parameters).map(([name, t]) => [name, { shape: t.shape, data: Float32Array.from(t.data) }])));
    parameters = result.parameters;
    optimizerState = result.optimizerState;
  }
  assert.equal(round.updates, results.length);
  assert.deepEqual(round.losses, results.map((r) => r.loss));
  assertSameTensors(round.parameters, parameters, 'in-order round vs steps by hand');
  assert.deepEqual(bits(features), bits(featuresBefore), 'the caller\'s features are not written to');
  // Later steps did not write into earlier steps' results.
  results.forEach((result, i) => assertSameTensors(result.parameters, snapshots[i], `step ${i} result`));
});
