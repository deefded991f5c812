// Secure aggregation in the JS SDK: the mask PRG matches the Python core's bytes, and a secure
// cycle with JS (over HTTP and WebSocket) and Python devices together (one Python device dropping after sharing its keys)
// yields the plain mean of the survivors' updates within the quantisation error.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { Client, parseSafetensors } from '../src/index.js';
import { degreeAndThreshold, mask } from '../src/secagg.js';
import { hostModel, listCycles, retrieveModel, startNode, vectorData } from './support/node.mjs';
import { runPythonDevice } from './support/python_device.mjs';

const STEP = 16 / (2 ** 22 - 1); // one quantisation step with the default parameters

let node;
before(async () => { node = await startNode(); });
after(async () => { await node?.stop(); });

test('the mask PRG is the Python core\'s, word for word', async () => {
  // fedgrid_protocol.secagg.crypto.mask(bytes(range(32)), 8, modulus), pinned from Python.
  const seed = Uint8Array.from({ length: 32 }, (_, i) => i);
  assert.deepEqual(Array.from(await mask(seed, 8, 2 ** 32)), [3053490418, 3500099882, 1788539817, 2155294429, 2926992880, 3852450122, 832304806, 1026998856]);
  assert.deepEqual(Array.from(await mask(seed, 8, 2 ** 16)), [37106, 18730, 62377, 11997, 24048, 47434, 63142, 49736]);
});

test('neighbours and threshold are derived as the Python core derives them', () => {
  const defaults = { num_shares: null, reconstruction_threshold: 0.5 };
  assert.deepEqual([2, 3, 10, 100, 1000].map((n) => degreeAndThreshold(defaults, n).k), [1, 2, 8, 14, 20]);
  assert.deepEqual([2, 10, 100].map((n) => degreeAndThreshold(defaults, n).t), [1, 5, 8]);
  assert.equal(degreeAndThreshold({ num_shares: 0.5, reconstruction_threshold: 0.5 }, 11).k, 6);
});

test('a secure cycle of JS and Python devices, one dropping, averages the survivors', { timeout: 120_000 }, async () => {
  const name = 'js-secagg-mixed';
  await hostModel(node, { name, clientConfig: { batch_size: 4, epochs: 1 }, serverConfig: { max_diffs: 3, max_workers: 4, min_diffs: 2, cycle_length: 300, num_cycles: 1, secure_aggregation: { round_timeout: 2 } } });
  const start = (await retrieveModel(node, { name, checkpoint: 1 })).tensors;
  const pythonDiff = join(mkdtempSync(join(tmpdir(), 'fedgrid-secagg-')), 'diff.safetensors');
  const { features, labels } = vectorData();
  const jsDevice = async (url) => {
    const client = new Client({ url });
    const job = client.newJob({ modelName: name, modelVersion: '1.0' });
    const assignment = await job.request({ wait: 20 });
    assert.equal(assignment.status, 'accepted');
    assert.ok(assignment.secureAggregation);
    const result = await job.train({ data: features, labels });
    const answer = await job.report(result);
    assert.equal(answer.secure, true);
    return result.diff;
  };
  const [jsDiffs] = await Promise.all([
    Promise.all([jsDevice(node.url), jsDevice(node.wsUrl)]), // HTTP and WebSocket
    runPythonDevice(node.url, name, 'honest', pythonDiff),
    runPythonDevice(node.url, name, 'drop'),
  ]);
  let cycle;
  for (let i = 0; i < 300 && cycle?.status !== 'completed'; i += 1) {
    [cycle] = await listCycles(node, { name });
    if (cycle.status !== 'completed') await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(cycle.status, 'completed');
  assert.equal(cycle.reported, 3);
  const diffs = [...jsDiffs, parseSafetensors(readFileSync(pythonDiff)).tensors];
  const next = (await retrieveModel(node, { name, checkpoint: 2 })).tensors;
  for (const [key, tensor] of Object.entries(start)) {
    for (let i = 0; i < tensor.data.length; i += 1) {
      const mean = diffs.reduce((sum, diff) => sum + diff[key].data[i], 0) / diffs.length;
      const expected = tensor.data[i] - mean;
      if (Math.abs(next[key].data[i] - expected) > STEP + 1e-6) assert.fail(`${key}[${i}]: ${next[key].data[i]} vs ${expected}`);
    }
  }
});
