// Secure aggregation in the JS SDK: the mask PRG matches the Python core's bytes, and a secure
// cycle with JS (over HTTP and WebSocket) and Python devices together (one Python device dropping after sharing its keys)
// yields the plain mean of the survivors' updates within the quantisation error. With
// differential privacy (clip_at: device) the JS clip is the Python SDK's on the shared vector,
// and in a mixed cycle every device clips before masking: the checkpoint moves by the clipped
// updates' sum over max_diffs.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { Client, parseSafetensors } from '../src/index.js';
import { clipToNorm, degreeAndThreshold, encodeEntries, encodeKeys, flatten, mask } from '../src/secagg.js';
import { VECTORS, hostModel, listCycles, retrieveModel, startNode, vectorData } from './support/node.mjs';
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
  await hostModel(node, { name, clientConfig: { batch_size: 4, epochs: 1 }, serverConfig: { max_diffs: 3, max_workers: 4, min_diffs: 2, cycle_length: 300, num_cycles: 1, secure_aggregation: { round_timeout: 5 } } });
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

test('the clip before masking is the Python SDK\'s on the shared vector', () => {
  const folder = join(VECTORS, 'secagg_clip');
  const update = flatten(parseSafetensors(readFileSync(join(folder, 'diff.safetensors'))).tensors);
  const expected = parseSafetensors(readFileSync(join(folder, 'clipped.safetensors'))).tensors;
  const { rtol, cases } = JSON.parse(readFileSync(join(folder, 'cases.json'), 'utf8'));
  assert.equal(cases.length, 4);
  for (const { clip_norm: clipNorm, norm, clipped, scaled } of cases) {
    const got = clipToNorm(update, clipNorm);
    const want = expected[clipped].data;
    assert.equal(got.length, want.length);
    assert.equal(got === update, !scaled, `clip_norm ${clipNorm}: scaled only above the norm`);
    for (let i = 0; i < want.length; i += 1) {
      if (Math.abs(got[i] - want[i]) > rtol * Math.abs(want[i])) assert.fail(`clip_norm ${clipNorm}, [${i}]: ${got[i]} vs ${want[i]}`);
    }
    assert.ok(Math.abs(Math.hypot(...update) - norm) <= rtol * norm);
  }
  assert.equal(clipToNorm(update, null), update); // no differential privacy: no clip
  assert.deepEqual(Array.from(clipToNorm(Float64Array.of(0, 0), 1)), [0, 0]);
  assert.throws(() => clipToNorm(Float64Array.of(1, NaN), 1), /not finite/);
});

test('a private secure cycle of JS and Python devices releases the clipped sum over max_diffs', { timeout: 120_000 }, async () => {
  const name = 'js-secagg-dp';
  const clip = 0.01;
  const z = 1e-5; // noise z·clip/max_diffs far below the quantisation step: the mean is measured
  const maxDiffs = 2;
  await hostModel(node, { name, clientConfig: { batch_size: 4, epochs: 1 }, serverConfig: { max_diffs: maxDiffs, max_workers: 3, min_diffs: 2, cycle_length: 300, num_cycles: 1, secure_aggregation: { round_timeout: 5 }, differential_privacy: { noise_multiplier: z, population: 100, clip, clip_at: 'device' } } });
  const start = (await retrieveModel(node, { name, checkpoint: 1 })).tensors;
  const pythonDiff = join(mkdtempSync(join(tmpdir(), 'fedgrid-secagg-dp-')), 'diff.safetensors');
  const { features, labels } = vectorData();
  const jsDevice = async (url) => {
    const client = new Client({ url });
    const job = client.newJob({ modelName: name, modelVersion: '1.0' });
    const assignment = await job.request({ wait: 20 });
    assert.equal(assignment.secureAggregation.clip_norm, clip);
    assert.equal(assignment.secureAggregation.clipping_range, clip); // the range follows the clip
    const result = await job.train({ data: features, labels });
    assert.equal((await job.report(result)).secure, true);
    return result.diff;
  };
  const [jsDiffs] = await Promise.all([
    Promise.all([jsDevice(node.url), jsDevice(node.wsUrl)]),
    runPythonDevice(node.url, name, 'honest', pythonDiff),
  ]);
  let cycle;
  for (let i = 0; i < 300 && cycle?.status !== 'completed'; i += 1) {
    [cycle] = await listCycles(node, { name });
    if (cycle.status !== 'completed') await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(cycle.status, 'completed');
  assert.equal(cycle.reported, 3);
  assert.equal(cycle.privacy.noise_stddev, z * clip / maxDiffs);
  // The expected step, computed here from the diffs: each scaled to L2 norm `clip` (all were above).
  const diffs = [...jsDiffs, parseSafetensors(readFileSync(pythonDiff)).tensors];
  const scales = diffs.map((diff) => {
    const norm = Math.sqrt(Object.values(diff).reduce((sum, t) => sum + t.data.reduce((s, v) => s + v * v, 0), 0));
    assert.ok(norm > 2 * clip, `a diff of norm ${norm} would not be clipped`);
    return clip / norm;
  });
  const next = (await retrieveModel(node, { name, checkpoint: 2 })).tensors;
  const tolerance = (3 / maxDiffs) * (2 * clip) / (2 ** 22 - 1) + 6 * z * clip / maxDiffs + 1e-7;
  let unclippedWouldDiffer = false;
  for (const [key, tensor] of Object.entries(start)) {
    for (let i = 0; i < tensor.data.length; i += 1) {
      const sum = diffs.reduce((total, diff, d) => total + scales[d] * diff[key].data[i], 0);
      const expected = tensor.data[i] - sum / maxDiffs;
      if (Math.abs(next[key].data[i] - expected) > tolerance) assert.fail(`${key}[${i}]: ${next[key].data[i]} vs ${expected}`);
      const unclipped = tensor.data[i] - diffs.reduce((total, diff) => total + diff[key].data[i], 0) / maxDiffs;
      if (Math.abs(next[key].data[i] - unclipped) > 100 * tolerance) unclippedWouldDiffer = true;
    }
  }
  assert.ok(unclippedWouldDiffer);
});

/** Resolves with the answer to `event` once `client` got it (the Node stored the message). */
function acknowledged(client, event) {
  const original = client.transport.call.bind(client.transport);
  let done;
  const answered = new Promise((resolve) => { done = resolve; });
  client.transport.call = async (name, ...rest) => {
    const answer = await original(name, ...rest);
    if (name === event) done(answer);
    return answer;
  };
  return answered;
}

/** Holds `client`'s `event` until open() (a device slow to send); reached resolves when held. */
function gate(client, event) {
  const original = client.transport.call.bind(client.transport);
  let open;
  let reach;
  const opened = new Promise((resolve) => { open = resolve; });
  const reached = new Promise((resolve) => { reach = resolve; });
  client.transport.call = async (name, ...rest) => {
    if (name === event) { reach(); await opened; }
    return original(name, ...rest);
  };
  return { open, reached };
}

test('JS devices (HTTP and WebSocket) carry a secure cycle across a kill -9 of the Node', { timeout: 180_000 }, async () => {
  const crashing = await startNode();
  const clients = [crashing.url, crashing.wsUrl, crashing.url].map((url) => new Client({ url }));
  try {
    const name = 'js-secagg-restart';
    await hostModel(crashing, { name, clientConfig: { batch_size: 4, epochs: 1 }, serverConfig: { max_diffs: 3, max_workers: 3, min_diffs: 2, cycle_length: 300, num_cycles: 1, secure_aggregation: { round_timeout: 120 } } });
    const start = (await retrieveModel(crashing, { name, checkpoint: 1 })).tensors;
    const { features, labels } = vectorData();
    // Two devices' masked inputs are acknowledged (so stored) before the crash; the third is
    // held until the Node is back.
    const stored = clients.slice(0, 2).map((client) => acknowledged(client, 'secagg-masked-input'));
    const late = gate(clients[2], 'secagg-masked-input');
    const runs = clients.map(async (client) => {
      const job = client.newJob({ modelName: name, modelVersion: '1.0' });
      assert.equal((await job.request({ wait: 20 })).status, 'accepted');
      const result = await job.train({ data: features, labels });
      assert.equal((await job.report(result)).secure, true);
      return result.diff;
    });
    runs.forEach((run) => run.catch(() => {})); // awaited below; a failure is reported there
    await Promise.all([...stored, late.reached]);
    await crashing.kill();
    await crashing.restart();
    late.open();
    const diffs = await Promise.all(runs);
    let cycle;
    for (let i = 0; i < 300 && cycle?.status !== 'completed'; i += 1) {
      [cycle] = await listCycles(crashing, { name });
      if (cycle.status !== 'completed') await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(cycle.status, 'completed');
    assert.equal(cycle.reported, 3);
    const next = (await retrieveModel(crashing, { name, checkpoint: 2 })).tensors;
    for (const [key, tensor] of Object.entries(start)) {
      for (let i = 0; i < tensor.data.length; i += 1) {
        const mean = diffs.reduce((sum, diff) => sum + diff[key].data[i], 0) / diffs.length;
        const expected = tensor.data[i] - mean;
        if (Math.abs(next[key].data[i] - expected) > STEP + 1e-6) assert.fail(`${key}[${i}]: ${next[key].data[i]} vs ${expected}`);
      }
    }
  } finally {
    clients.forEach((client) => client.close());
    await crashing.stop();
  }
});

test('the binary round messages are the Python SDK\'s, byte for byte, on the shared vector', () => {
  const hex = (bytes) => Buffer.from(bytes).toString('hex');
  const bytes = (text) => Uint8Array.from(Buffer.from(text, 'hex'));
  const cases = JSON.parse(readFileSync(join(VECTORS, 'secagg_wire', 'cases.json'), 'utf8'));
  assert.equal(cases.public_keys.length, 1);
  for (const { c_public: c, s_public: s, encoded } of cases.public_keys) assert.equal(hex(encodeKeys(bytes(c), bytes(s))), encoded);
  assert.equal(cases.entries.length, 3);
  for (const { values, encoded } of cases.entries) {
    // A Map in decreasing order: the encoding sorts the indices as numbers.
    const map = new Map(Object.entries(values).map(([i, value]) => [Number(i), bytes(value)]).sort(([a], [b]) => b - a));
    assert.equal(hex(encodeEntries(map)), encoded);
  }
  assert.throws(() => encodeKeys(new Uint8Array(31), new Uint8Array(32)), /32 bytes/);
  assert.throws(() => encodeEntries(new Map([[0, Uint8Array.of(1)]])), /out of range/);
});
