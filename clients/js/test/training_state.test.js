// Stop and resume without a Node: the paused run is JSON, refuses to resume on other data or
// another plan, and resuming gives exactly the uninterrupted result.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { FedgridError, FormatError, PlanExecutor, TrainingStoppedError, loadTrainingCheckpoint, parseSafetensors, trainLocally } from '../src/index.js';
import { VECTORS, vectorData } from './support/node.mjs';

const executor = await PlanExecutor.create(readFileSync(`${VECTORS}/digits_mlp_momentum_fedprox/plan.fgplan`));
const start = parseSafetensors(readFileSync(`${VECTORS}/digits_mlp_momentum_fedprox/start.safetensors`)).tensors;
const { features, labels } = vectorData('digits_mlp_momentum_fedprox');
const options = { features, labels, batchSize: 3, epochs: 3, seed: 11 };

async function stopAt(update) {
  const controller = new AbortController();
  try {
    await trainLocally(executor, start, { ...options, signal: controller.signal, onBatch: (b) => { if (b.update === update) controller.abort(); } });
  } catch (error) {
    assert.ok(error instanceof TrainingStoppedError);
    return JSON.parse(JSON.stringify(error.checkpoint));
  }
  throw new Error('did not stop');
}

test('a run stopped twice (mid-epoch, at an epoch boundary) and resumed equals the uninterrupted run, momentum included', async () => {
  const whole = await trainLocally(executor, start, options);
  const perEpoch = Math.ceil(labels.length / 3);
  let saved = await stopAt(4);
  assert.equal(saved.updates, 4);
  const controller = new AbortController();
  try {
    await trainLocally(executor, start, { ...options, resumeFrom: saved, signal: controller.signal, onBatch: (b) => { if (b.update === perEpoch) controller.abort(); } });
    assert.fail('did not stop');
  } catch (error) {
    saved = JSON.parse(JSON.stringify(error.checkpoint));
  }
  assert.equal(saved.updates, perEpoch);
  const resumed = await trainLocally(executor, start, { ...options, resumeFrom: saved });
  assert.equal(resumed.updates, whole.updates);
  assert.deepEqual(resumed.losses, whole.losses);
  assert.deepEqual(resumed.metrics, whole.metrics);
  assert.equal(resumed.numSamples, labels.length);
  for (const [name, tensor] of Object.entries(whole.diff)) assert.deepEqual(Array.from(resumed.diff[name].data), Array.from(tensor.data), name);
});

test('resuming refuses other data, another plan, or something that is not a checkpoint', async () => {
  const saved = await stopAt(2);
  await assert.rejects(trainLocally(executor, start, { ...options, features: features.subarray(0, 64 * 10), labels: labels.slice(0, 10), resumeFrom: saved }), (e) => e instanceof FedgridError && /same data/.test(e.message));
  await assert.rejects(trainLocally(executor, start, { ...options, resumeFrom: { ...saved, planHash: 'sha256:other' } }), /start a new round/);
  await assert.rejects(trainLocally(executor, start, { ...options, resumeFrom: { updates: 3 } }), FormatError);
});

test('the IndexedDB helpers say what to do in Node.js', async () => {
  await assert.rejects(loadTrainingCheckpoint('x'), /IndexedDB is not available here; keep JSON.stringify/);
});
