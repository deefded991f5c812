// The shared conformance vectors (plans/conformance/*): the JavaScript executor must reproduce
// the reference PyTorch run's per-step losses and final parameters within the README's tolerance.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Plan, PlanExecutor, parseSafetensors } from '../src/index.js';

const VECTORS = fileURLToPath(new URL('../../../plans/conformance/', import.meta.url));
const names = readdirSync(VECTORS).filter((n) => existsSync(join(VECTORS, n, 'vector.json'))).sort();

function close(actual, expected, { rtol, atol }) {
  return Math.abs(actual - expected) <= atol + rtol * Math.abs(expected);
}

test('there are conformance vectors to check', () => {
  assert.ok(names.length >= 7, `found ${names.length} vectors in ${VECTORS}`);
});

for (const name of names) {
  test(`conformance vector ${name}`, async () => {
    const dir = join(VECTORS, name);
    const vector = JSON.parse(readFileSync(join(dir, 'vector.json'), 'utf8'));
    const plan = Plan.fromBytes(readFileSync(join(dir, 'plan.fgplan')));
    assert.equal(await plan.computeContentHash(), vector.plan_content_hash);
    const executor = await PlanExecutor.create(plan);
    const start = parseSafetensors(readFileSync(join(dir, 'start.safetensors'))).tensors;
    const batches = parseSafetensors(readFileSync(join(dir, 'batches.safetensors'))).tensors;
    const final = parseSafetensors(readFileSync(join(dir, 'final.safetensors'))).tensors;
    let params = start;
    let state = executor.usesOptimizerState ? executor.initialOptimizerState() : undefined;
    let worstLoss = 0;
    for (let i = 0; i < vector.steps; i += 1) {
      const result = await executor.step(params, batches[`features/${i}`].data, batches[`labels/${i}`].data, {
        learningRate: vector.learning_rate,
        optimizerState: state,
        globalParameters: start,
      });
      assert.ok(close(result.loss, vector.expected_loss[i], vector.tolerance.loss),
        `step ${i}: loss ${result.loss} vs ${vector.expected_loss[i]}`);
      worstLoss = Math.max(worstLoss, Math.abs(result.loss - vector.expected_loss[i]));
      if ('accuracy' in result.metrics) {
        assert.ok(Math.abs(result.metrics.accuracy - vector.expected_accuracy[i]) <= 1e-6, `step ${i}: accuracy`);
      }
      if ('num_samples' in result.metrics) assert.equal(result.metrics.num_samples, vector.batch_sizes[i]);
      params = result.parameters;
      if (state) state = result.optimizerState;
    }
    let worstParameter = 0;
    for (const [key, expected] of Object.entries(final)) {
      const actual = params[key].data;
      assert.deepEqual(params[key].shape, expected.shape, key);
      for (let j = 0; j < expected.data.length; j += 1) {
        const difference = Math.abs(actual[j] - expected.data[j]);
        worstParameter = Math.max(worstParameter, difference);
        if (!close(actual[j], expected.data[j], vector.tolerance.parameters)) {
          assert.fail(`${key}[${j}]: ${actual[j]} vs ${expected.data[j]}`);
        }
      }
    }
    // The largest differences, for docs/sdk-js.md (run with --test-reporter=spec to see them).
    console.log(`# ${name}: max |loss diff| ${worstLoss.toExponential(2)}, max |param diff| ${worstParameter.toExponential(2)}`);
    await executor.release();
  });
}
