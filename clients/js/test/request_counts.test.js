// How often a device asks a real Node for things: the plan once per job (not twice per cycle),
// and nothing in a tight loop once the model has finished training.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as sdk from '../src/index.js';
import { FINISHED_TIMEOUT } from '../src/job.js';
import { hostModel, startNode, vectorData } from './support/node.mjs';

let node;
before(async () => { node = await startNode(); });
after(async () => { await node?.stop(); });

/** A fetch that counts the requests per path, for `new Client({fetch})`. */
function countingFetch() {
  const counts = {};
  const fetchImpl = (url, init) => {
    const path = new URL(url).pathname;
    counts[path] = (counts[path] ?? 0) + 1;
    return fetch(url, init);
  };
  return { counts, fetchImpl };
}

test('participate() downloads the plan once for three cycles and stops when training finishes', async () => {
  const name = 'js-counted';
  await hostModel(node, { name, clientConfig: { batch_size: 8, epochs: 1 }, serverConfig: { max_diffs: 1, num_cycles: 3 } });
  const { counts, fetchImpl } = countingFetch();
  const client = new sdk.Client({ url: node.url, fetch: fetchImpl });
  const job = client.newJob({ modelName: name });
  const { features, labels } = vectorData();
  const reports = await job.participate({ data: features, labels, wait: 1 });
  assert.deepEqual(reports.map((r) => r.cycle), [1, 2, 3]);
  assert.equal(counts['/model-centric/get-plan'], 1, JSON.stringify(counts));
  assert.equal(counts['/model-centric/get-model'], 3, JSON.stringify(counts));
  // Three accepted requests and the one that heard `training_finished`: then it stopped.
  assert.equal(counts['/model-centric/cycle-request'], 4, JSON.stringify(counts));
  assert.equal(job.finished, true);

  // A loop that waits each rejection's `timeout` backs off for an hour instead of spinning.
  const outcome = await job.request();
  assert.deepEqual([outcome.status, outcome.reason, outcome.timeout], ['rejected', 'training_finished', FINISHED_TIMEOUT]);
  client.close();
});

/** The browser quick start of docs/sdk-js.md, as printed there. */
function documentedQuickStart() {
  const page = readFileSync(fileURLToPath(new URL('../../../docs/sdk-js.md', import.meta.url)), 'utf8');
  const start = page.indexOf('## Quick start');
  const script = page.slice(start).match(/<script>\n([\s\S]*?)<\/script>/);
  assert.ok(script, 'docs/sdk-js.md has a browser quick start');
  return script[1];
}

test("the documented quick start trains until the model finishes, then schedules nothing", async () => {
  const name = 'digits_mlp'; // the snippet's model
  await hostModel(node, { name, clientConfig: { batch_size: 8, epochs: 1 }, serverConfig: { max_diffs: 1, num_cycles: 2 } });
  const { counts, fetchImpl } = countingFetch();
  const { features, labels } = vectorData();
  const timers = [];
  const jobs = [];
  let finished;
  const done = new Promise((resolve) => { finished = resolve; });
  // The page's globals: the SDK (with the counting fetch), the data, and a setTimeout that runs
  // the callback at once but records the delay, so the test waits on the Node and not on clocks.
  const fedgrid = {
    ...sdk,
    Client: class extends sdk.Client {
      constructor(options) { super({ ...options, fetch: fetchImpl }); }
      newJob(options) {
        const job = super.newJob(options);
        job.on('rejected', ({ reason }) => { if (reason === 'training_finished') finished(); });
        jobs.push(job);
        return job;
      }
    },
  };
  const setTimeoutRecorded = (callback, delay) => { timers.push(delay); queueMicrotask(callback); };
  const run = new Function('fedgrid', 'location', 'features', 'labels', 'draw', 'console', 'setTimeout', documentedQuickStart());
  run(fedgrid, { origin: node.url }, features, labels, () => {}, { error: (...args) => assert.fail(args.join(' ')) }, setTimeoutRecorded);
  await done;
  const [job] = jobs;
  assert.equal(job.finished, true);
  assert.equal(counts['/model-centric/report'], 2, JSON.stringify(counts));
  assert.equal(counts['/model-centric/get-plan'], 1, JSON.stringify(counts));
  const requests = counts['/model-centric/cycle-request'];
  // Let every callback the page queued run: a page that asked again would add a request.
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(counts['/model-centric/cycle-request'], requests);
  assert.ok(timers.every((delay) => delay >= 1000), `timers: ${timers}`);
  for (const each of jobs) each.client.close();
});
