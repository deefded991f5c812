// Secure aggregation in a real headless Chromium: devices in a page served by a real Node (the
// bundle from /js/fedgrid.js, WebCrypto's X25519 in a secure context) run a secure cycle, on
// their own and together with Python SDK devices; the Node's next checkpoint is the old one minus
// the devices' mean diff, within one quantisation step. Needs `npm run build` first.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { launchChromium } from './support/browser.mjs';
import { parseSafetensors } from '../src/index.js';
import { hostModel, listCycles, retrieveModel, startNode, waitForCheckpoint } from './support/node.mjs';
import { runPythonDevice } from './support/python_device.mjs';

const DIST = fileURLToPath(new URL('../dist/', import.meta.url));
const STEP = 16 / (2 ** 22 - 1); // one quantisation step with the default parameters
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

/** Browser devices in one page, each training on 64 digits and reporting through the SDK (which
 *  runs the secure rounds): their answers and diffs, or the error. */
async function browserDevices(page, modelName, transports) {
  return page.evaluate(async ({ modelName, transports }) => {
    const { Client, parseSafetensors } = window.fedgrid;
    const bytes = new Uint8Array(await (await fetch('/js/examples/digits.safetensors')).arrayBuffer());
    const { tensors } = parseSafetensors(bytes);
    const device = async (shard, transport) => {
      const rows = Array.from({ length: 64 }, (_, i) => shard * 64 + i);
      const data = Float32Array.from(rows.flatMap((r) => Array.from(tensors.pixels.data.subarray(r * 64, (r + 1) * 64), (v) => v / 16)));
      const labels = rows.map((r) => Number(tensors.labels.data[r]));
      const job = new Client({ url: location.origin, transport }).newJob({ modelName });
      const assignment = await job.request({ wait: 20 });
      const result = await job.train({ data, labels });
      const report = await job.report(result);
      return { secure: Boolean(assignment.secureAggregation), report, diff: Object.fromEntries(Object.entries(result.diff).map(([k, t]) => [k, Array.from(t.data)])) };
    };
    try {
      return { devices: await Promise.all(transports.map((transport, shard) => device(shard, transport))) };
    } catch (error) {
      return { error: `${error.name}: ${error.message}` };
    }
  }, { modelName, transports });
}

/** The checkpoint after the cycle is the one before minus the mean of `diffs`, within a step. */
function assertMovedByMean(start, next, diffs) {
  for (const [key, tensor] of Object.entries(start.tensors)) {
    for (let i = 0; i < tensor.data.length; i += 1) {
      const mean = diffs.reduce((sum, diff) => sum + diff[key][i], 0) / diffs.length;
      if (Math.abs(next.tensors[key].data[i] - (tensor.data[i] - mean)) > STEP + 1e-6) assert.fail(`${key}[${i}]: ${next.tensors[key].data[i]} vs ${tensor.data[i] - mean}`);
    }
  }
}

test('three browser devices run a secure cycle; the checkpoint moves by their mean diff', { timeout: 120_000 }, async () => {
  const name = 'browser-secagg';
  await hostModel(node, { name, vector: 'digits_mlp', clientConfig: { batch_size: 32, epochs: 1 }, serverConfig: { max_diffs: 3, max_workers: 3, min_diffs: 2, num_cycles: 1, secure_aggregation: true } });
  const start = await retrieveModel(node, { name, checkpoint: 1 });
  const page = await browser.newPage();
  await page.goto(`${node.url}/examples/browser-device?model=${name}`); // any Node page with the bundle
  const outcome = await browserDevices(page, name, ['http', 'websocket', 'http']);
  assert.equal(outcome.error, undefined, `${outcome.error}\n${page.consoleMessages.join('\n')}`);
  for (const { secure, report } of outcome.devices) {
    assert.equal(secure, true);
    assert.equal(report.secure, true);
  }
  await waitForCheckpoint(node, { name, number: 2 });
  const [cycle] = await listCycles(node, { name });
  assert.equal(cycle.reported, 3);
  const next = await retrieveModel(node, { name, checkpoint: 2 });
  assertMovedByMean(start, next, outcome.devices.map(({ diff }) => diff));
  await page.close();
});

test('browser and Python devices share one secure cycle, a Python device dropping after its keys', { timeout: 180_000 }, async () => {
  const name = 'browser-python-secagg';
  await hostModel(node, { name, vector: 'digits_mlp', clientConfig: { batch_size: 32, epochs: 1 }, serverConfig: { max_diffs: 3, max_workers: 4, min_diffs: 2, cycle_length: 300, num_cycles: 1, secure_aggregation: { round_timeout: 2 } } });
  const start = await retrieveModel(node, { name, checkpoint: 1 });
  const pythonDiff = join(mkdtempSync(join(tmpdir(), 'fedgrid-secagg-')), 'diff.safetensors');
  const page = await browser.newPage();
  await page.goto(`${node.url}/examples/browser-device?model=${name}`);
  const [outcome] = await Promise.all([
    browserDevices(page, name, ['http', 'websocket']),
    runPythonDevice(node.url, name, 'honest', pythonDiff),
    runPythonDevice(node.url, name, 'drop'),
  ]);
  assert.equal(outcome.error, undefined, `${outcome.error}\n${page.consoleMessages.join('\n')}`);
  assert.ok(outcome.devices.every(({ secure, report }) => secure && report.secure));
  await waitForCheckpoint(node, { name, number: 2 });
  const [cycle] = await listCycles(node, { name });
  assert.equal(cycle.reported, 3); // two browsers and the Python device that stayed
  const python = parseSafetensors(readFileSync(pythonDiff)).tensors;
  const diffs = [...outcome.devices.map(({ diff }) => diff),
    Object.fromEntries(Object.entries(python).map(([k, t]) => [k, Array.from(t.data)]))];
  assertMovedByMean(start, await retrieveModel(node, { name, checkpoint: 2 }), diffs);
  await page.close();
});
