// Multi-threaded WASM in a real headless Chromium: a Node serves its example page cross-origin
// isolated (COOP + COEP, apps/node/fedgrid_node/isolation.py), so the SDK defaults to several
// threads, ONNX Runtime starts its worker threads, and training comes out as on one thread. A Node
// with --cross-origin-isolation off serves the same page without those headers: one thread.
// The pages see 4 logical cores (DevTools emulation): the default is half of them, and this
// machine may have only 2. Needs `npm run build` first.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { launchChromium } from './support/browser.mjs';
import { hostModel, startNode, waitForCheckpoint } from './support/node.mjs';

const DIST = fileURLToPath(new URL('../dist/', import.meta.url));
let isolated;
let plain;
let browser;
const EMULATED_CORES = 4;

before(async () => {
  assert.ok(existsSync(`${DIST}fedgrid.js`), 'run `npm run build` before the browser tests');
  [isolated, plain] = await Promise.all([
    startNode({ env: { FEDGRID_JS_ASSETS: DIST } }),
    startNode({ env: { FEDGRID_JS_ASSETS: DIST }, extraArgs: ['--cross-origin-isolation', 'off'] }),
  ]);
  browser = await launchChromium();
});
after(async () => {
  await browser?.stop();
  await isolated?.stop();
  await plain?.stop();
});

/** Train and report one shard on the example page; the page's outcome, its runtime line and how
 *  many dedicated workers (ONNX Runtime's threads) it started. */
async function trainOnExamplePage(node, model, query = '') {
  const page = await browser.newPage();
  await (await browser.context.newCDPSession(page)).send('Emulation.setHardwareConcurrencyOverride', { hardwareConcurrency: EMULATED_CORES });
  const answer = await page.goto(`${node.url}/examples/browser-device?model=${model}&shard=2&shards=4&autostart=1${query}`);
  await page.waitForFunction(() => ['reported', 'error', 'rejected'].includes(window.fedgridExample?.state), null, { timeout: 120_000 });
  const outcome = await page.evaluate(() => {
    const { state, error, report, result, losses, runtime } = window.fedgridExample;
    return {
      state, error, report, losses, runtime,
      isolated: window.crossOriginIsolated,
      cores: navigator.hardwareConcurrency,
      runtimeLine: document.getElementById('runtime').textContent,
      numSamples: result?.numSamples,
      diff: result && Object.fromEntries(Object.entries(result.diff).map(([k, t]) => [k, Array.from(t.data)])),
    };
  });
  outcome.workers = page.workers().length;
  outcome.headers = answer.headers();
  assert.equal(outcome.state, 'reported', `${JSON.stringify(outcome.error)}\n${page.consoleMessages.join('\n')}`);
  await page.close();
  return outcome;
}

test('a page the Node serves is cross-origin isolated and trains on several threads, as it does on one', async () => {
  const clientConfig = { batch_size: 32, epochs: 1, shuffle: false }; // the same batches on both runs
  for (const name of ['threads-one', 'threads-many']) {
    await hostModel(isolated, { name, vector: 'digits_cnn', clientConfig, serverConfig: { max_diffs: 1, min_diffs: 1 } });
  }
  const one = await trainOnExamplePage(isolated, 'threads-one', '&threads=1');
  const many = await trainOnExamplePage(isolated, 'threads-many');

  assert.equal(many.isolated, true);
  assert.equal(many.headers['cross-origin-opener-policy'], 'same-origin');
  assert.equal(many.headers['cross-origin-embedder-policy'], 'require-corp');
  assert.equal(many.cores, EMULATED_CORES);
  assert.equal(many.runtime.threads, 2); // half the cores; after training: the threads the WASM runs

  assert.ok(many.workers >= many.runtime.threads - 1, `${many.workers} workers for ${many.runtime.threads} threads`);
  assert.match(many.runtimeLine, new RegExp(`onnxruntime-web \\(wasm\\), ${many.runtime.threads} threads \\(cross-origin isolated page\\)`));

  assert.equal(one.runtime.threads, 1); // ?threads=1 overrides the default
  assert.equal(one.workers, 0);
  assert.match(one.runtimeLine, /, 1 thread \(cross-origin isolated page\)/);

  // The same training: same samples and updates, losses and diffs equal up to the order in which
  // threads add partial sums.
  assert.equal(many.numSamples, one.numSamples);
  assert.equal(many.losses.length, one.losses.length);
  many.losses.forEach((loss, i) => assert.ok(Math.abs(loss - one.losses[i]) <= 1e-4 * Math.max(1, Math.abs(one.losses[i])), `update ${i + 1}: ${loss} vs ${one.losses[i]}`));
  for (const [key, values] of Object.entries(one.diff)) {
    values.forEach((value, j) => { if (Math.abs(many.diff[key][j] - value) > 1e-5) assert.fail(`${key}[${j}]: ${many.diff[key][j]} vs ${value}`); });
  }
  await waitForCheckpoint(isolated, { name: 'threads-many', number: 2 }); // and the Node took the report
});

test('with --cross-origin-isolation off the page has no COOP/COEP and trains on one thread', async () => {
  await hostModel(plain, { name: 'not-isolated', vector: 'digits_mlp', clientConfig: { batch_size: 32, epochs: 1 }, serverConfig: { max_diffs: 1, min_diffs: 1 } });
  const outcome = await trainOnExamplePage(plain, 'not-isolated');
  assert.equal(outcome.headers['cross-origin-opener-policy'], undefined);
  assert.equal(outcome.headers['cross-origin-embedder-policy'], undefined);
  assert.equal(outcome.isolated, false);
  assert.equal(outcome.cores, EMULATED_CORES);
  assert.equal(outcome.runtime.threads, 1);
  assert.equal(outcome.workers, 0);
  assert.match(outcome.runtimeLine, /, 1 thread \(page not cross-origin isolated: one thread\)/);
});
