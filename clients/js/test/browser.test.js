// End to end in a real headless Chromium: pages served by a real Node load the bundle from
// /js/fedgrid.js, train with onnxruntime-web (WASM from /js/ort/) and report; the Node's next
// checkpoint must be the old one minus the reported diff. Needs `npm run build` first.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { launchChromium } from './support/browser.mjs';
import { parseSafetensors } from '../src/index.js';
import { PYTHON, REPO, VECTORS, hostModel, retrieveModel, startNode, waitForCheckpoint } from './support/node.mjs';

const DIST = fileURLToPath(new URL('../dist/', import.meta.url));
let node;
let browser;

before(async () => {
  assert.ok(existsSync(`${DIST}fedgrid.js`), 'run `npm run build` before the browser tests');
  node = await startNode({ env: { FEDGRID_JS_ASSETS: DIST } });
  browser = await launchChromium();
});
after(async () => {
  await browser?.stop();
  await node?.stop();
});

function assertCheckpointMovedByDiff(before, afterwards, diff) {
  for (const [name, tensor] of Object.entries(before)) {
    const delta = diff[name];
    assert.ok(delta, `the diff has ${name}`);
    let changed = 0;
    for (let i = 0; i < tensor.data.length; i += 1) {
      const expected = Math.fround(tensor.data[i] - delta[i]);
      if (Math.abs(afterwards[name].data[i] - expected) > 1e-6) assert.fail(`${name}[${i}]: ${afterwards[name].data[i]} vs ${expected}`);
      if (delta[i] !== 0) changed += 1;
    }
    assert.ok(changed > 0, `${name} changed`);
  }
}

test('the example page trains a digits shard in Chromium and reports; the Node applies exactly that diff', async () => {
  const name = 'browser-example';
  await hostModel(node, { name, vector: 'digits_mlp', clientConfig: { batch_size: 32, epochs: 1 }, serverConfig: { max_diffs: 1, min_diffs: 1 } });
  const start = await retrieveModel(node, { name, checkpoint: 1 });
  const page = await browser.newPage();
  await page.goto(`${node.url}/examples/browser-device?model=${name}&shard=1&shards=4&autostart=1`);
  await page.waitForFunction(() => ['reported', 'error', 'rejected'].includes(window.fedgridExample?.state), null, { timeout: 120_000 });
  const outcome = await page.evaluate(() => {
    const { state, error, report, result, losses } = window.fedgridExample;
    return {
      state, error, report, losses,
      numSamples: result?.numSamples,
      diff: result && Object.fromEntries(Object.entries(result.diff).map(([k, t]) => [k, Array.from(t.data)])),
      status: document.getElementById('status').textContent,
      chartDrawn: document.getElementById('chart').toDataURL().length > 3000,
    };
  });
  assert.equal(outcome.state, 'reported', `${outcome.status} ${JSON.stringify(outcome.error)}\n${page.consoleMessages.join('\n')}`);
  assert.equal(outcome.numSamples, 449); // shard 1 of 4 of 1797 digits: indices 1, 5, ..., 1793
  assert.equal(outcome.losses.length, Math.ceil(449 / 32));
  assert.ok(outcome.chartDrawn);
  assert.match(outcome.status, /Reported to cycle 1/);
  await waitForCheckpoint(node, { name, number: 2 });
  const next = await retrieveModel(node, { name, checkpoint: 2 });
  assertCheckpointMovedByDiff(start.tensors, next.tensors, outcome.diff);
  await page.close();
});

test('a page using the bundle API stops training, keeps it in IndexedDB, reloads, resumes and reports', async () => {
  const name = 'browser-resume';
  await hostModel(node, { name, vector: 'digits_mlp', clientConfig: { batch_size: 16, epochs: 2 }, serverConfig: { max_diffs: 1, min_diffs: 1 } });
  const start = await retrieveModel(node, { name, checkpoint: 1 });
  const page = await browser.newPage();
  await page.goto(`${node.url}/examples/browser-device?model=${name}`); // any Node page with the bundle
  const stopped = await page.evaluate(async (modelName) => {
    const { Client, TrainingStoppedError, saveTrainingCheckpoint, parseSafetensors } = window.fedgrid;
    const bytes = new Uint8Array(await (await fetch('/js/examples/digits.safetensors')).arrayBuffer());
    const { tensors } = parseSafetensors(bytes);
    const data = Float32Array.from(tensors.pixels.data.subarray(0, 200 * 64), (v) => v / 16);
    const labels = Array.from(tensors.labels.data.subarray(0, 200));
    const job = new Client({ url: location.origin, transport: 'websocket' }).newJob({ modelName });
    const assignment = await job.request();
    const controller = new AbortController();
    try {
      await job.train({ data, labels, signal: controller.signal, onBatch: ({ update }) => { if (update === 7) controller.abort(); } });
      return { stopped: false };
    } catch (error) {
      if (!(error instanceof TrainingStoppedError)) throw error;
      await saveTrainingCheckpoint('resume-test', error.checkpoint);
      return { stopped: true, updates: error.checkpoint.updates, cycle: assignment.cycle, transport: job.transport.kind };
    }
  }, name);
  assert.deepEqual(stopped, { stopped: true, updates: 7, cycle: 1, transport: 'websocket' });
  await page.reload();
  const resumed = await page.evaluate(async (modelName) => {
    const { Client, loadTrainingCheckpoint, deleteTrainingCheckpoint, parseSafetensors } = window.fedgrid;
    const saved = await loadTrainingCheckpoint('resume-test');
    const bytes = new Uint8Array(await (await fetch('/js/examples/digits.safetensors')).arrayBuffer());
    const { tensors } = parseSafetensors(bytes);
    const data = Float32Array.from(tensors.pixels.data.subarray(0, 200 * 64), (v) => v / 16);
    const labels = Array.from(tensors.labels.data.subarray(0, 200));
    const job = new Client({ url: location.origin }).newJob({ modelName });
    const result = await job.train({ data, labels, resumeFrom: saved });
    const report = await job.report(result);
    await deleteTrainingCheckpoint('resume-test');
    return {
      updates: result.updates, numSamples: result.numSamples, report, left: await loadTrainingCheckpoint('resume-test'),
      diff: Object.fromEntries(Object.entries(result.diff).map(([k, t]) => [k, Array.from(t.data)])),
    };
  }, name);
  assert.equal(resumed.updates, 2 * Math.ceil(200 / 16));
  assert.equal(resumed.numSamples, 200);
  assert.equal(resumed.report.status, 'success');
  assert.equal(resumed.left, undefined);
  await waitForCheckpoint(node, { name, number: 2 });
  const next = await retrieveModel(node, { name, checkpoint: 2 });
  assertCheckpointMovedByDiff(start.tensors, next.tensors, resumed.diff);
  await page.close();
});

// A Python device: the Python SDK (clients/python) trains digits shard 0 of 4 and reports; it
// writes the diff it reported so the test can check the average.
const PYTHON_DEVICE = `
import json, sys
import fedgrid
from fedgrid_plans import tensors
from fedgrid_plans.digits import load_digits_arrays
url, model, out = sys.argv[1:4]
features, labels = load_digits_arrays((64,))
job = fedgrid.Client(url).new_job(model)
assignment = job.request()
result = assignment.train((features[0::4], labels[0::4]), progress=False)
answer = assignment.report(result)
open(out, "wb").write(tensors.encode(result.diff))
print(json.dumps({"cycle": answer["cycle"], "num_samples": result.num_samples}))
`;

test('a mixed cycle: a browser device and a Python device report into one cycle and FedAvg weighs them by num_samples', async () => {
  const name = 'mixed-cycle';
  await hostModel(node, { name, vector: 'digits_mlp', clientConfig: { batch_size: 32, epochs: 1 }, serverConfig: { max_diffs: 2, min_diffs: 2, max_workers: 2 } });
  const start = await retrieveModel(node, { name, checkpoint: 1 });
  const page = await browser.newPage();
  await page.goto(`${node.url}/examples/browser-device?model=${name}&shard=1&shards=3&autostart=1`);
  await page.waitForFunction(() => ['reported', 'error', 'rejected'].includes(window.fedgridExample?.state), null, { timeout: 120_000 });
  const browserDevice = await page.evaluate(() => {
    const { state, status, report, result } = window.fedgridExample;
    return { state, status, report, numSamples: result?.numSamples, diff: result && Object.fromEntries(Object.entries(result.diff).map(([k, t]) => [k, Array.from(t.data)])) };
  });
  assert.equal(browserDevice.state, 'reported', page.consoleMessages.join('\n'));
  assert.equal(browserDevice.numSamples, 599); // shard 1 of 3: indices 1, 4, ..., 1795
  // One report of two: the cycle is still open, checkpoint 2 does not exist yet.
  assert.equal((await retrieveModel(node, { name })).number, 1);

  const scratch = mkdtempSync(join(tmpdir(), 'fedgrid-mixed-'));
  try {
    const out = join(scratch, 'python-diff.safetensors');
    const { stdout } = await promisify(execFile)(PYTHON, ['-c', PYTHON_DEVICE, node.url, name, out], { cwd: REPO, timeout: 120_000 });
    const pythonDevice = JSON.parse(stdout.trim().split('\n').pop());
    assert.equal(pythonDevice.cycle, browserDevice.report.cycle);
    assert.equal(pythonDevice.num_samples, 450); // shard 0 of 4
    const pythonDiff = parseSafetensors(readFileSync(out)).tensors;
    await waitForCheckpoint(node, { name, number: 2 });
    const next = await retrieveModel(node, { name, checkpoint: 2 });
    const [nB, nP] = [browserDevice.numSamples, pythonDevice.num_samples];
    for (const [key, tensor] of Object.entries(start.tensors)) {
      for (let i = 0; i < tensor.data.length; i += 1) {
        const average = (nB * browserDevice.diff[key][i] + nP * pythonDiff[key].data[i]) / (nB + nP);
        const expected = tensor.data[i] - average;
        if (Math.abs(next.tensors[key].data[i] - expected) > 1e-6) assert.fail(`${key}[${i}]: ${next.tensors[key].data[i]} vs ${expected}`);
      }
    }
    // Not the unweighted mean PyGrid computed: the two differ wherever the diffs do.
    const key = Object.keys(start.tensors)[0];
    const i = browserDevice.diff[key].findIndex((v, j) => Math.abs(v - pythonDiff[key].data[j]) > 1e-3);
    const unweighted = start.tensors[key].data[i] - (browserDevice.diff[key][i] + pythonDiff[key].data[i]) / 2;
    assert.ok(Math.abs(next.tensors[key].data[i] - unweighted) > 1e-5);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    await page.close();
  }
});

test('every conformance vector matches in Chromium too (the bundle, onnxruntime-web WASM)', async () => {
  const names = readdirSync(VECTORS).filter((n) => existsSync(join(VECTORS, n, 'vector.json'))).sort();
  const page = await browser.newPage();
  // The vectors are not something a Node serves; hand them to the page on the Node's origin.
  await page.route('**/conformance-vectors/**', (route) => {
    const relative = new URL(route.request().url()).pathname.split('/conformance-vectors/')[1];
    route.fulfill({ status: 200, contentType: 'application/octet-stream', body: readFileSync(join(VECTORS, relative)) });
  });
  await page.goto(`${node.url}/examples/browser-device`);
  const results = await page.evaluate(async (vectorNames) => {
    const { PlanExecutor, parseSafetensors } = window.fedgrid;
    const get = async (path) => new Uint8Array(await (await fetch(`/conformance-vectors/${path}`)).arrayBuffer());
    const close = (a, e, { rtol, atol }) => Math.abs(a - e) <= atol + rtol * Math.abs(e);
    const out = [];
    for (const name of vectorNames) {
      const vector = JSON.parse(new TextDecoder().decode(await get(`${name}/vector.json`)));
      const executor = await PlanExecutor.create(await get(`${name}/plan.fgplan`));
      const start = parseSafetensors(await get(`${name}/start.safetensors`)).tensors;
      const batches = parseSafetensors(await get(`${name}/batches.safetensors`)).tensors;
      const final = parseSafetensors(await get(`${name}/final.safetensors`)).tensors;
      const failures = [];
      let params = start;
      let state = executor.usesOptimizerState ? executor.initialOptimizerState() : undefined;
      for (let i = 0; i < vector.steps; i += 1) {
        const r = await executor.step(params, batches[`features/${i}`].data, batches[`labels/${i}`].data, { learningRate: vector.learning_rate, optimizerState: state, globalParameters: start });
        if (!close(r.loss, vector.expected_loss[i], vector.tolerance.loss)) failures.push(`step ${i} loss ${r.loss} vs ${vector.expected_loss[i]}`);
        if ('num_samples' in r.metrics && r.metrics.num_samples !== vector.batch_sizes[i]) failures.push(`step ${i} num_samples`);
        params = r.parameters;
        if (state) state = r.optimizerState;
      }
      let worst = 0;
      for (const [key, expected] of Object.entries(final)) {
        for (let j = 0; j < expected.data.length; j += 1) {
          worst = Math.max(worst, Math.abs(params[key].data[j] - expected.data[j]));
          if (!close(params[key].data[j], expected.data[j], vector.tolerance.parameters)) { failures.push(`${key}[${j}]`); break; }
        }
      }
      out.push({ name, failures, worst });
      await executor.release();
    }
    return out;
  }, names);
  assert.deepEqual(results.map((r) => r.name), names);
  for (const result of results) assert.deepEqual(result.failures, [], `${result.name} (largest parameter difference ${result.worst})`);
  await page.close();
});

test("the example page's Stop keeps progress in IndexedDB; after a reload Resume finishes and reports", async () => {
  const name = 'browser-example-resume';
  await hostModel(node, { name, vector: 'digits_mlp', clientConfig: { batch_size: 4, epochs: 4 }, serverConfig: { max_diffs: 1, min_diffs: 1 } });
  const page = await browser.newPage();
  const url = `${node.url}/examples/browser-device?model=${name}&shard=0&shards=8`; // 225 digits
  await page.goto(url);
  await page.click('#train');
  await page.waitForFunction(() => window.fedgridExample.losses.length >= 10);
  await page.click('#stop');
  await page.waitForFunction(() => window.fedgridExample.state !== 'training');
  assert.equal(await page.evaluate(() => window.fedgridExample.state), 'stopped');
  assert.match(await page.textContent('#status'), /progress saved in this browser/);
  await page.reload();
  await page.waitForSelector('#resume:not([disabled])');
  await page.click('#resume');
  await page.waitForFunction(() => ['reported', 'error'].includes(window.fedgridExample.state), null, { timeout: 120_000 });
  const outcome = await page.evaluate(() => ({ ...window.fedgridExample, result: { updates: window.fedgridExample.result.updates, numSamples: window.fedgridExample.result.numSamples } }));
  assert.equal(outcome.state, 'reported', JSON.stringify(outcome.error));
  assert.equal(outcome.result.numSamples, 225);
  assert.equal(outcome.result.updates, 4 * Math.ceil(225 / 4));
  assert.equal(outcome.losses.length, outcome.result.updates); // the chart continues where it stopped
  assert.equal(outcome.report.cycle, 1);
  assert.equal(await page.isDisabled('#resume'), true); // the saved progress was removed
  await page.close();
});

test('the ES-module bundle (/js/fedgrid.mjs) finds its WASM next to itself and trains', async () => {
  const page = await browser.newPage();
  await page.route('**/conformance-vectors/**', (route) => {
    const relative = new URL(route.request().url()).pathname.split('/conformance-vectors/')[1];
    route.fulfill({ status: 200, contentType: 'application/octet-stream', body: readFileSync(join(VECTORS, relative)) });
  });
  await page.goto(`${node.url}/examples/browser-device`);
  const loss = await page.evaluate(async () => {
    const fedgridModule = await import('/js/fedgrid.mjs');
    const get = async (path) => new Uint8Array(await (await fetch(`/conformance-vectors/${path}`)).arrayBuffer());
    const executor = await fedgridModule.PlanExecutor.create(await get('digits_mlp/plan.fgplan'));
    const batches = fedgridModule.parseSafetensors(await get('digits_mlp/batches.safetensors')).tensors;
    const start = fedgridModule.parseSafetensors(await get('digits_mlp/start.safetensors')).tensors;
    return (await executor.step(start, batches['features/0'].data, batches['labels/0'].data, { learningRate: 0.1 })).loss;
  });
  const vector = JSON.parse(readFileSync(join(VECTORS, 'digits_mlp/vector.json'), 'utf8'));
  assert.ok(Math.abs(loss - vector.expected_loss[0]) <= 1e-5, `${loss} vs ${vector.expected_loss[0]}`);
  await page.close();
});

test('the WebGPU bundle (/js/fedgrid.webgpu.js) trains within tolerance, on WebGPU or, without a GPU, on WASM', async () => {
  const page = await browser.newPage();
  await page.route('**/conformance-vectors/**', (route) => {
    const relative = new URL(route.request().url()).pathname.split('/conformance-vectors/')[1];
    route.fulfill({ status: 200, contentType: 'application/octet-stream', body: readFileSync(join(VECTORS, relative)) });
  });
  await page.route('**/webgpu-page', (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><script src="/js/fedgrid.webgpu.js"></script>' }));
  await page.goto(`${node.url}/webgpu-page`);
  const outcome = await page.evaluate(async () => {
    const get = async (path) => new Uint8Array(await (await fetch(`/conformance-vectors/${path}`)).arrayBuffer());
    const adapter = navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
    const executor = await fedgrid.PlanExecutor.create(await get('digits_cnn/plan.fgplan'));
    const batches = fedgrid.parseSafetensors(await get('digits_cnn/batches.safetensors')).tensors;
    let params = fedgrid.parseSafetensors(await get('digits_cnn/start.safetensors')).tensors;
    const losses = [];
    for (let i = 0; batches[`features/${i}`]; i += 1) {
      const result = await executor.step(params, batches[`features/${i}`].data, batches[`labels/${i}`].data, { learningRate: 0.1 });
      losses.push(result.loss);
      params = result.parameters;
    }
    return { losses, gpu: Boolean(adapter) };
  });
  const vector = JSON.parse(readFileSync(join(VECTORS, 'digits_cnn/vector.json'), 'utf8'));
  assert.equal(outcome.losses.length, vector.steps);
  outcome.losses.forEach((loss, i) => {
    const { rtol, atol } = vector.tolerance.loss;
    assert.ok(Math.abs(loss - vector.expected_loss[i]) <= atol + rtol * Math.abs(vector.expected_loss[i]), `step ${i} (gpu: ${outcome.gpu}): ${loss} vs ${vector.expected_loss[i]}`);
  });
  await page.close();
});

test('with a WebGPU adapter (SwiftShader, software) the WebGPU bundle trains on WebGPU within tolerance', async () => {
  // --enable-unsafe-webgpu: headless Chromium then offers SwiftShader's Vulkan-on-the-CPU adapter.
  const gpuBrowser = await launchChromium({ args: ['--enable-unsafe-webgpu'] });
  try {
    const page = await gpuBrowser.newPage();
    // Counts the command buffers the page submits to a GPU queue: ONNX Runtime's WebGPU kernels.
    await page.addInitScript(() => {
      window.gpuSubmits = 0;
      if (!globalThis.GPUQueue) return;
      const submit = GPUQueue.prototype.submit;
      GPUQueue.prototype.submit = function countedSubmit(...args) { window.gpuSubmits += 1; return submit.apply(this, args); };
    });
    await page.route('**/conformance-vectors/**', (route) => {
      const relative = new URL(route.request().url()).pathname.split('/conformance-vectors/')[1];
      route.fulfill({ status: 200, contentType: 'application/octet-stream', body: readFileSync(join(VECTORS, relative)) });
    });
    await page.route('**/webgpu-page', (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><script src="/js/fedgrid.webgpu.js"></script>' }));
    await page.goto(`${node.url}/webgpu-page`);
    const vector = JSON.parse(readFileSync(join(VECTORS, 'digits_cnn/vector.json'), 'utf8'));
    const outcome = await page.evaluate(async (learningRate) => {
      const get = async (path) => new Uint8Array(await (await fetch(`/conformance-vectors/${path}`)).arrayBuffer());
      const adapter = await navigator.gpu.requestAdapter();
      const executor = await fedgrid.PlanExecutor.create(await get('digits_cnn/plan.fgplan'));
      const batches = fedgrid.parseSafetensors(await get('digits_cnn/batches.safetensors')).tensors;
      let params = fedgrid.parseSafetensors(await get('digits_cnn/start.safetensors')).tensors;
      const losses = [];
      for (let i = 0; batches[`features/${i}`]; i += 1) {
        const result = await executor.step(params, batches[`features/${i}`].data, batches[`labels/${i}`].data, { learningRate });
        losses.push(result.loss);
        params = result.parameters;
      }
      return { losses, adapter: adapter?.info.architecture, providers: fedgrid.runtimeInfo().executionProviders, submits: window.gpuSubmits };
    }, vector.learning_rate);
    assert.equal(outcome.adapter, 'swiftshader');
    assert.deepEqual(outcome.providers, ['webgpu', 'wasm']);
    assert.ok(outcome.submits > vector.steps, `${outcome.submits} GPU submissions for ${vector.steps} steps`);
    assert.equal(outcome.losses.length, vector.steps);
    outcome.losses.forEach((loss, i) => {
      const { rtol, atol } = vector.tolerance.loss;
      assert.ok(Math.abs(loss - vector.expected_loss[i]) <= atol + rtol * Math.abs(vector.expected_loss[i]), `step ${i}: ${loss} vs ${vector.expected_loss[i]}`);
    });
  } finally {
    await gpuBrowser.stop();
  }
});
