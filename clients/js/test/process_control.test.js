// participate() across a researcher's pause, resume and stop, against a real Fedgrid Node.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Client } from '../src/index.js';
import { FINISHED_TIMEOUT } from '../src/job.js';
import { hostModel, startNode, vectorData } from './support/node.mjs';

let node;
before(async () => { node = await startNode(); });
after(async () => { await node?.stop(); });

async function control(event, name) {
  const answer = await fetch(`${node.url}/model-centric/${event}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${node.adminToken}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, version: '1.0' }),
  });
  assert.equal(answer.status, 200, await answer.clone().text());
  return answer.json();
}

async function until(condition, what) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((resolve) => { setTimeout(resolve, 50); });
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('participate() waits out a pause (process_paused) and finishes after the resume', { timeout: 120_000 }, async () => {
  const name = 'js-paused';
  // A 2 s cycle: the paused rejections tell the device to come back within 2 s.
  await hostModel(node, { name, clientConfig: { batch_size: 8, max_updates: 1 }, serverConfig: { max_diffs: 1, num_cycles: 3, cycle_length: 2 } });
  const job = new Client({ url: node.url }).newJob({ modelName: name });
  const rejections = [];
  job.on('rejected', ({ reason, timeout }) => rejections.push([reason, timeout]));
  const { features, labels } = vectorData();
  let paused = false;
  const running = job.participate({
    data: features, labels, wait: 1,
    onReport: async () => { if (!paused) { paused = true; await control('pause-process', name); } },
  });
  let ended = false;
  running.finally(() => { ended = true; });
  // The device's own record of the answer (the Node counts a rejection before the device reads it).
  await until(async () => ended || rejections.some(([r]) => r === 'process_paused'), 'a paused rejection');
  assert.equal(ended, false, 'participate() ended while the model was paused');
  const [reason, timeout] = rejections.find(([r]) => r === 'process_paused');
  assert.equal(reason, 'process_paused');
  assert.ok(timeout > 0 && timeout <= 2.5, String(timeout));
  assert.equal((await control('resume-process', name)).process_status, 'active');
  const reports = await running;
  assert.equal(reports.length, 3);
  assert.equal((await job.request()).reason, 'training_finished');
});

test('participate() ends cleanly when the researcher stops the model', { timeout: 60_000 }, async () => {
  const name = 'js-stopped';
  await hostModel(node, { name, clientConfig: { batch_size: 8, max_updates: 1 }, serverConfig: { max_diffs: 1, num_cycles: 50, cycle_length: 600 } });
  const job = new Client({ url: node.wsUrl }).newJob({ modelName: name });
  const { features, labels } = vectorData();
  let stopped;
  const reports = await job.participate({
    data: features, labels,
    onReport: async () => { stopped ??= await control('stop-process', name); },
  });
  assert.deepEqual(reports.map((r) => r.cycle), [1]);
  assert.deepEqual(stopped.cycle, { sequence: 2, status: 'abandoned', checkpoint: 2 });
  const answer = await job.request();
  // Final, like training_finished: the SDK fills in an hour, so a loop on `timeout` waits.
  assert.deepEqual([answer.status, answer.reason, answer.timeout], ['rejected', 'training_stopped', FINISHED_TIMEOUT]);
  assert.equal(job.finished, true);
});
